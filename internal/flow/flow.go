// Package flow is the shape of every run, live or replayed: a source (the
// kernel's ring buffer, or a recording) hands its records, the losses it
// learns of and the passing of time to a chain of sinks (the pipeline, the
// recorder, the metrics, the status line), in order.
package flow

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Sink takes what a source gives. A source calls Record for each record,
// Lost when the count of records the kernel dropped grows, Poll once it has
// given every record up to a time, and End once.
type Sink interface {
	// Record takes one record as the kernel laid it out. The bytes are the
	// source's: a sink keeping them copies them.
	Record(rec []byte) error
	// Lost says the kernel has dropped total records so far.
	Lost(total uint64) error
	// Poll says every record up to now was given.
	Poll(now time.Time) error
	// End says the run is over.
	End(end End) error
}

// End is how a run ended.
type End struct {
	At       time.Time
	Duration time.Duration
	Loss     events.Loss
	// QueuePeak is the most bytes of records that waited for the sinks.
	QueuePeak int64
	// Programs is what each BPF program cost, when measured (--bpf-stats).
	Programs []events.ProgramCost
}

// Chain is a sink handing everything to each of its sinks in turn; the
// first error stops it.
type Chain []Sink

func (c Chain) Record(rec []byte) error {
	for _, s := range c {
		if err := s.Record(rec); err != nil {
			return err
		}
	}
	return nil
}

func (c Chain) Lost(total uint64) error {
	for _, s := range c {
		if err := s.Lost(total); err != nil {
			return err
		}
	}
	return nil
}

func (c Chain) Poll(now time.Time) error {
	for _, s := range c {
		if err := s.Poll(now); err != nil {
			return err
		}
	}
	return nil
}

func (c Chain) End(end End) error {
	for _, s := range c {
		if err := s.End(end); err != nil {
			return err
		}
	}
	return nil
}

// Losses turns the running count of lost records a source reads into Lost
// calls: one each time the count grows.
type Losses struct {
	told uint64
}

// Told is the last total told.
func (l *Losses) Told() uint64 { return l.told }

// Update tells sink of a total that grew since the last call.
func (l *Losses) Update(sink Sink, total uint64) error {
	if total <= l.told {
		return nil
	}
	l.told = total
	return sink.Lost(total)
}
