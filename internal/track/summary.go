package track

// A socket's story, told when it ends.

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// finish emits s's summary and forgets it.
func (t *Tracker) finish(s *socket, at time.Time, end events.End) {
	sum := t.summaries.next()
	history := sum.History[:0]
	*sum = events.Summary{Header: s.header, ClosedBy: s.closedBy, End: end,
		Retransmits: s.retransmits, ResetsSent: s.resetsSent, ResetsReceived: s.resetsRecv,
		BeforeTrace: s.beforeTrace, HistoryDropped: s.historyDropped, Incomplete: s.incomplete, History: history,
		Handshake: s.handshake, HandshakeKnown: s.handshakeKnown, Counters: s.counters, CountersKnown: s.countersKnown,
		Close: t.closeOf(s)}
	if s.born && s.destroyedFull {
		sum.Lifetime, sum.LifetimeKnown = s.fullEnd.Sub(s.bornAt), true
	}
	sum.Time = at
	for _, p := range s.phases {
		// The final CLOSE is where the story ends, not a phase of it.
		if p.State == events.StateClose && !p.Timewait && !p.DurationKnown {
			continue
		}
		if end == events.EndOpen && !p.DurationKnown {
			p.Duration, p.DurationKnown = at.Sub(p.Start), !p.Start.IsZero()
		}
		sum.History = append(sum.History, p)
	}
	// Nothing to tell of a socket seen only being destroyed (a listener:
	// see the cookie rule in bpf/).
	if len(s.phases) > 0 {
		t.out = append(t.out, sum)
	}
	t.forget(s)
}

// endOf says how a socket without a TIME_WAIT socket ended.
func endOf(s *socket) events.End {
	if s.end != "" {
		return s.end
	}
	switch {
	case s.closedBy == events.CloserReset || (s.lastReset != time.Time{} && s.closedBy == ""):
		return events.EndReset
	case !s.wasEstablished():
		return events.EndNeverEstablished
	}
	return events.EndClosed
}

// lastFullPhase is the socket's last phase as a full socket (not as its
// TIME_WAIT socket), if any.
func (s *socket) lastFullPhase() *events.Phase {
	for i := len(s.phases) - 1; i >= 0; i-- {
		if !s.phases[i].Timewait {
			return &s.phases[i]
		}
	}
	return nil
}

func (s *socket) reached(state events.State) bool {
	for _, p := range s.phases {
		if p.State == state {
			return true
		}
	}
	return false
}
