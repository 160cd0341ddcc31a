package metrics

import (
	"testing"
	"time"
)

func TestHealthSink(t *testing.T) {
	m := New(nil)
	evicted, queued := uint64(0), int64(0)
	sink := m.Sink(func() uint64 { return evicted }, func() int64 { return queued })
	if err := sink.Lost(7); err != nil {
		t.Fatal(err)
	}
	evicted, queued = 3, 4096
	if err := sink.Poll(time.Now()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"tcptrace_events_lost_total": 7, "tcptrace_histories_evicted_total": 3, "tcptrace_output_queue_bytes": 4096} {
		if got := gathered(t, m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func gathered(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			ms := f.GetMetric()
			if len(ms) != 1 {
				t.Fatalf("%s has %d series", name, len(ms))
			}
			if c := ms[0].GetCounter(); c != nil {
				return c.GetValue()
			}
			return ms[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
