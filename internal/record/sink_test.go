package record

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/flow"
)

// The recorder as a sink: records and losses as they come, a tick only for
// the polls the pipeline had use for, the end with the loss and the peak;
// the size limit is told once.
func TestRecorderSink(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Kernel: "6.18", Names: decode.Names{HZ: 250}, RecordSize: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	wanted := time.Unix(100, 0)
	sink := w.Sink(func(now time.Time) bool { return now.Equal(wanted) }, func() { t.Error("full without a limit") }, func() { t.Error("rotated without a limit") })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sink.Record([]byte{1, 2, 3, 4}))
	must(sink.Poll(time.Unix(99, 0)))
	must(sink.Lost(2))
	must(sink.Poll(wanted))
	must(sink.End(flow.End{At: time.Unix(0, 300), Duration: 200, Loss: events.Loss{Total: 2, ByKind: map[string]uint64{"state": 2}}, QueuePeak: 64}))
	rec, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{Rec: []byte{1, 2, 3, 4}}, {Lost: 2}, {Tick: wanted},
		{End: &End{UnixNs: 300, DurationNs: 200, Lost: 2, LostByKind: map[string]uint64{"state": 2}, QueuePeak: 64}}}
	if !reflect.DeepEqual(rec.Items, want) {
		t.Errorf("items\n%+v\nwant\n%+v", rec.Items, want)
	}
}

func TestRecorderSinkFull(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Kernel: "6.18", RecordSize: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	told := 0
	sink := w.Sink(func(time.Time) bool { return false }, func() { told++ }, func() { t.Error("rotated without keep") })
	for range 3 {
		if err := sink.Record([]byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		if err := sink.Poll(time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if told != 1 {
		t.Errorf("the limit was told %d times, want once", told)
	}
}
