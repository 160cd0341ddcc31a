package pipeline

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/flow"
)

// Sink feeds a pipeline from a source: records are decoded, tracked,
// explained and written; each poll lets time pass where something waits
// on it and writes out what is buffered.
func (p *Pipeline) Sink() flow.Sink { return pipelineSink{p} }

type pipelineSink struct{ p *Pipeline }

func (s pipelineSink) Record(rec []byte) error { return s.p.Record(rec) }

func (s pipelineSink) Lost(uint64) error {
	s.p.RecordsLost()
	return nil
}

func (s pipelineSink) Poll(now time.Time) error {
	if s.p.Waiting(now) {
		if err := s.p.Tick(now); err != nil {
			return err
		}
	}
	return s.p.Flush()
}

func (s pipelineSink) End(end flow.End) error {
	s.p.SetQueuePeak(end.QueuePeak)
	s.p.SetProgramCosts(end.Programs)
	return s.p.Finish(end.At, end.Loss, end.Duration)
}
