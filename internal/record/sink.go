package record

import (
	"fmt"
	"time"

	"github.com/tcptrace/tcptrace/internal/flow"
)

// Sink records a run as a source gives it. waiting tells whether the
// pipeline has use for a poll's time: only those polls are recorded, as
// ticks, so that a replay lets time pass exactly where the run did. full is
// called once, when the size limit stops the recording; rotated each time
// it moves the recording to a new file instead.
func (w *Writer) Sink(waiting func(time.Time) bool, full, rotated func()) flow.Sink {
	return &recorderSink{w: w, waiting: waiting, full: full, rotated: rotated}
}

type recorderSink struct {
	w             *Writer
	waiting       func(time.Time) bool
	full, rotated func()
}

func (s *recorderSink) Record(rec []byte) error { return wrap(s.w.Rec(rec)) }

func (s *recorderSink) Lost(total uint64) error { return wrap(s.w.Lost(total)) }

func (s *recorderSink) Poll(now time.Time) error {
	if s.waiting(now) {
		if err := s.w.Tick(now); err != nil {
			return wrap(err)
		}
	}
	wasFull, rotations := s.w.Full(), s.w.Rotations()
	if err := s.w.Sync(now); err != nil {
		return wrap(err)
	}
	if !wasFull && s.w.Full() {
		s.full()
	}
	if s.w.Rotations() > rotations {
		s.rotated()
	}
	return nil
}

func (s *recorderSink) End(end flow.End) error {
	return wrap(s.w.Close(End{UnixNs: end.At.UnixNano(), DurationNs: int64(end.Duration), Lost: end.Loss.Total,
		LostByKind: end.Loss.ByKind, LostByCPU: end.Loss.ByCPU, QueuePeak: end.QueuePeak}))
}

func wrap(err error) error {
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
