package pipeline_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/flow"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/rollup"
)

// The pipeline as a sink: output leaves at each poll, a poll where a
// roll-up is due writes it, a loss marks the stories open then, and the
// end closes them and writes the stats with the queue's peak.
func TestPipelineSink(t *testing.T) {
	boot := time.Unix(1700000000, 0)
	var out bytes.Buffer
	p, err := pipeline.New(pipeline.Config{Names: names, Boot: boot, Format: "json", Stdout: &out, Stderr: io.Discard}, newEnv())
	if err != nil {
		t.Fatal(err)
	}
	sink := p.Sink()
	recs := churn(30, 9)
	half := len(recs) / 2
	for _, rec := range recs[:half] {
		if err := sink.Record(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), decode.RecordSize)); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != 0 {
		t.Fatalf("written before the poll: %d bytes", out.Len())
	}
	if err := sink.Poll(boot.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"type":"state"`) {
		t.Fatalf("the poll wrote no events: %q", out.String())
	}
	if strings.Contains(out.String(), `"type":"finding_summary"`) {
		t.Fatal("a roll-up before its interval ended")
	}
	if err := sink.Lost(1); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[half:] {
		if err := sink.Record(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), decode.RecordSize)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Poll(boot.Add(rollup.Interval + time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"type":"finding_summary"`) {
		t.Error("no roll-up at the poll after its interval")
	}
	if err := sink.End(flow.End{At: boot.Add(2 * rollup.Interval), Duration: time.Minute, Loss: events.Loss{Total: 1}, QueuePeak: 4096}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"incomplete":true`) {
		t.Error("no story marked incomplete after the loss")
	}
	if !strings.Contains(out.String(), `"lost":1,`) || !strings.Contains(out.String(), `"queue_peak_bytes":4096`) {
		t.Errorf("stats without the loss or the queue's peak: %q", out.String()[strings.LastIndex(out.String(), `{"type":"stats"`):])
	}
}
