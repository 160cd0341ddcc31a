package metrics

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/flow"
)

// Sink keeps the run's own health in the metrics, as a source gives it:
// records the kernel lost, and at each poll the histories evicted so far
// (evicted) and the bytes of records waiting for the output (queued).
func (m *Metrics) Sink(evicted func() uint64, queued func() int64) flow.Sink {
	return healthSink{m: m, evicted: evicted, queued: queued}
}

type healthSink struct {
	m       *Metrics
	evicted func() uint64
	queued  func() int64
}

func (healthSink) Record([]byte) error { return nil }

func (s healthSink) Lost(total uint64) error {
	s.m.SetLost(total)
	return nil
}

func (s healthSink) Poll(time.Time) error {
	s.m.SetEvicted(s.evicted())
	s.m.SetQueueBytes(s.queued())
	return nil
}

func (s healthSink) End(flow.End) error { return nil }
