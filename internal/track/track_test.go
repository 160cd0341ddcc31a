package track

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

var t0 = time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)

// stream builds event sequences in the order the kernel emits them (as the
// privileged tests recorded them on 6.18).
type stream struct {
	evs []events.Event
}

func hdr(ms int, cookie uint64, local, remote string, pid uint32) events.Header {
	return events.Header{Time: t0.Add(time.Duration(ms) * time.Millisecond), Cookie: cookie, Family: 4, Netns: 7,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		Owner: events.Owner{PID: pid, Comm: "app"}}
}

func (s *stream) state(h events.Header, old, new events.State) *stream {
	ev := &events.StateChange{Header: h, Old: old, New: new}
	s.evs = append(s.evs, ev)
	return s
}

func (s *stream) add(ev events.Event) *stream { s.evs = append(s.evs, ev); return s }

func (s *stream) timer(h events.Header, action events.TimerAction, sub events.State, timeout time.Duration) *stream {
	return s.add(&events.TimewaitTimer{Header: h, Action: action, Substate: sub, Timeout: timeout, TimeoutKnown: timeout > 0})
}

const (
	client = "10.0.0.1:40000"
	server = "10.0.0.2:80"
)

// activeClose is a client socket (cookie 1) that closes first and goes to
// TIME_WAIT, as the kernel reports it: the TIME_WAIT socket's timer is armed
// before the full socket moves to CLOSE.
func activeClose() *stream {
	s := &stream{}
	return s.state(hdr(0, 1, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent).
		state(hdr(1, 1, client, server, 10), events.StateSynSent, events.StateEstablished).
		state(hdr(101, 1, client, server, 10), events.StateEstablished, events.StateFinWait1).
		state(hdr(102, 1, client, server, 10), events.StateFinWait1, events.StateFinWait2).
		timer(hdr(150, 1, client, server, 10), events.TimerStart, events.StateTimeWait, time.Minute).
		state(hdr(150, 1, client, server, 10), events.StateFinWait2, events.StateClose).
		add(&events.Destroy{Header: hdr(150, 1, client, server, 10), State: events.StateClose})
}

// serverActiveClose is an accepted socket (cookie 5) that closes first and
// goes to TIME_WAIT on the server's side.
func serverActiveClose() *stream {
	s := &stream{}
	return s.state(hdr(0, 5, server, client, 20), events.StateEstablished, events.StateFinWait1).
		state(hdr(1, 5, server, client, 20), events.StateFinWait1, events.StateFinWait2).
		timer(hdr(2, 5, server, client, 20), events.TimerStart, events.StateTimeWait, time.Minute).
		state(hdr(2, 5, server, client, 20), events.StateFinWait2, events.StateClose)
}

func run(tr *Tracker, evs []events.Event, end time.Time) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		out = appendKept(out, tr.Process(ev))
	}
	return appendKept(out, tr.Flush(end))
}

// appendKept appends copies of what the tracker reuses at its next call.
func appendKept(out, made []events.Event) []events.Event {
	for _, ev := range made {
		switch e := ev.(type) {
		case *events.Summary:
			c := *e
			c.History = slices.Clone(e.History)
			ev = &c
		case *events.TimewaitEnter:
			c := *e
			ev = &c
		case *events.TimewaitEnd:
			c := *e
			ev = &c
		}
		out = append(out, ev)
	}
	return out
}

func only[T events.Event](t *testing.T, evs []events.Event) T {
	t.Helper()
	var found []T
	for _, ev := range evs {
		if e, ok := ev.(T); ok {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %T events, want 1", len(found), *new(T))
	}
	return found[0]
}

func history(s *events.Summary) string {
	var parts []string
	for _, p := range s.History {
		part := string(p.State)
		if p.Timewait {
			part = "tw:" + part
		}
		if p.DurationKnown {
			part += " " + p.Duration.String()
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " > ")
}

func TestTimewaitEnds(t *testing.T) {
	tests := []struct {
		name      string
		then      func(s *stream) *stream
		cause     events.EndCause
		inferred  bool
		end       events.End
		age       time.Duration
		successor uint64
	}{
		{"expired", func(s *stream) *stream {
			return s.timer(hdr(60150, 1, client, server, 0), events.TimerExpire, events.StateTimeWait, 0)
		}, events.CauseExpired, false, "timewait_expired", time.Minute, 0},
		{"killed by an RST", func(s *stream) *stream {
			return s.timer(hdr(5150, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0).
				add(&events.TimewaitRST{Header: hdr(5150, 1, client, server, 0), Substate: events.StateTimeWait})
		}, events.CauseRST, false, "timewait_rst", 5 * time.Second, 0},
		{"taken over by connect()", func(s *stream) *stream {
			return s.state(hdr(2000, 2, client, server, 11), events.StateClose, events.StateSynSent).
				timer(hdr(2000, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0).
				state(hdr(2001, 2, client, server, 11), events.StateSynSent, events.StateEstablished)
		}, events.CauseConnectReuse, true, "timewait_connect_reuse", 1850 * time.Millisecond, 2},
		{"stopped for no visible reason", func(s *stream) *stream {
			return s.timer(hdr(9150, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0)
		}, events.CauseUnknown, true, "timewait_unknown", 9 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(New(Options{}), tt.then(activeClose()).evs, t0.Add(time.Hour))
			enter := only[*events.TimewaitEnter](t, out)
			if enter.Substate != events.StateTimeWait || enter.Timeout != time.Minute {
				t.Errorf("enter %+v", enter)
			}
			end := only[*events.TimewaitEnd](t, out)
			if end.Cause != tt.cause || end.Inferred != tt.inferred || end.Age != tt.age || !end.AgeKnown ||
				end.Successor != tt.successor || end.Owner.PID != 10 {
				t.Errorf("end %+v, want cause %s inferred %v age %v successor %d owner 10", end, tt.cause, tt.inferred, tt.age, tt.successor)
			}
			var sum *events.Summary
			for _, ev := range out {
				if s, ok := ev.(*events.Summary); ok && s.Cookie == 1 {
					sum = s
				}
			}
			if sum == nil || sum.End != tt.end || sum.ClosedBy != "local" {
				t.Fatalf("summary %+v, want end %s closed by local", sum, tt.end)
			}
			want := "SYN_SENT 1ms > ESTABLISHED 100ms > FIN_WAIT1 1ms > FIN_WAIT2 48ms > tw:TIME_WAIT " + tt.age.String()
			if got := history(sum); got != want {
				t.Errorf("history %s\nwant    %s", got, want)
			}
		})
	}
}

// A FIN_WAIT2 TIME_WAIT socket re-armed as TIME_WAIT (cancel + start) is
// one TIME_WAIT life in two substates, not an early end.
func TestTimewaitRearm(t *testing.T) {
	s := activeClose()
	s.evs[4] = &events.TimewaitTimer{Header: hdr(150, 1, client, server, 10), Action: events.TimerStart,
		Substate: events.StateFinWait2, Timeout: time.Second, TimeoutKnown: true}
	s.timer(hdr(400, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0).
		timer(hdr(400, 1, client, server, 0), events.TimerStart, events.StateTimeWait, time.Minute).
		timer(hdr(60400, 1, client, server, 0), events.TimerExpire, events.StateTimeWait, 0)
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	var enters []*events.TimewaitEnter
	for _, ev := range out {
		if e, ok := ev.(*events.TimewaitEnter); ok {
			enters = append(enters, e)
		}
	}
	if len(enters) != 2 || enters[0].Substate != events.StateFinWait2 || enters[1].Substate != events.StateTimeWait {
		t.Errorf("enters %+v, want FIN_WAIT2 then TIME_WAIT", enters)
	}
	if mv := only[*events.TimewaitSubstate](t, out); mv.Inferred || !mv.TimeKnown || !mv.Time.Equal(t0.Add(400*time.Millisecond)) {
		t.Errorf("move %+v, want seen at 400 ms", mv)
	}
	end := only[*events.TimewaitEnd](t, out)
	if end.Cause != events.CauseExpired || end.Age != 60250*time.Millisecond {
		t.Errorf("end %+v, want expired after 60.25 s", end)
	}
	sum := only[*events.Summary](t, out)
	if got, want := history(sum), "SYN_SENT 1ms > ESTABLISHED 100ms > FIN_WAIT1 1ms > FIN_WAIT2 48ms > tw:FIN_WAIT2 250ms > tw:TIME_WAIT 1m0s"; got != want {
		t.Errorf("history %s\nwant    %s", got, want)
	}
}

// A TIME_WAIT socket re-armed in the same substate (it answered a segment
// with an ACK): a restart, and the life goes on to its expiry.
func TestTimewaitRestart(t *testing.T) {
	s := activeClose()
	s.timer(hdr(5150, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0).
		timer(hdr(5150, 1, client, server, 0), events.TimerStart, events.StateTimeWait, time.Minute).
		timer(hdr(65150, 1, client, server, 0), events.TimerExpire, events.StateTimeWait, 0)
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	var restarts []*events.TimewaitEnter
	for _, ev := range out {
		if e, ok := ev.(*events.TimewaitEnter); ok && e.Restart {
			restarts = append(restarts, e)
		}
	}
	if len(restarts) != 1 || restarts[0].Type() != events.TypeTimewaitRestart || restarts[0].Timeout != time.Minute ||
		!restarts[0].Time.Equal(t0.Add(5150*time.Millisecond)) {
		t.Errorf("restarts %+v, want one at 5.15 s with a 1 min timer", restarts)
	}
	if end := only[*events.TimewaitEnd](t, out); end.Cause != events.CauseExpired {
		t.Errorf("end %+v, want expired", end)
	}
}

// The precise hook saw a SYN verdict and the timer stopped, but no child
// followed (the handshake did not complete): still syn_accepted, observed,
// with the SYN's sequence against rcv_nxt.
func TestTimewaitSynVerdictWithoutChild(t *testing.T) {
	s := serverActiveClose()
	s.evs = append(s.evs, &events.TimewaitSegment{Header: hdr(3000, 5, server, client, 0), Substate: events.StateTimeWait,
		Verdict: "SYN", Flags: 0x02, Seq: 5000, RcvNxt: 4000})
	s.timer(hdr(3000, 5, server, client, 0), events.TimerCancel, events.StateTimeWait, 0)
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	end := only[*events.TimewaitEnd](t, out)
	if end.Cause != events.CauseSynAccepted || end.Inferred || end.Successor != 0 ||
		end.Syn != (events.SynInfo{Seq: 5000, SeqKnown: true}) || end.Last.Seq != 4000 || !end.Last.SeqKnown {
		t.Errorf("end %+v, want syn_accepted, observed, SYN 5000 against rcv_nxt 4000", end)
	}
	// A SYN verdict with no listener to take the SYN stops nothing (the
	// kernel answers with an ACK): a stop 2 s later is not its doing.
	s.evs[len(s.evs)-1].(*events.TimewaitTimer).Time = t0.Add(5 * time.Second)
	end = only[*events.TimewaitEnd](t, run(New(Options{}), s.evs, t0.Add(time.Hour)))
	if end.Cause != events.CauseUnknown || !end.Inferred {
		t.Errorf("end %+v, want unknown, inferred: the SYN verdict came 2 s before the stop", end)
	}
}

// The SYN of a child on the 4-tuple of a stopped TIME_WAIT, told with the
// child's birth (a birth held back in the kernel) or with its next move (a
// birth told at once, before the kernel gave the child those numbers): the
// same end, with the SYN as RFC 6191 evidence.
func TestTimewaitSynAcceptedSynTold(t *testing.T) {
	syn := events.SynInfo{Seq: 9000, SeqKnown: true, TSVal: 77, TSValKnown: true}
	for _, tt := range []struct {
		name      string
		withBirth bool
		moveTime  int
	}{
		{name: "with the birth", withBirth: true, moveTime: 17002},
		{name: "with the next move", moveTime: 17002},
		{name: "with a move 10 s later (TFO)", moveTime: 27001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := serverActiveClose().
				timer(hdr(17000, 5, server, client, 0), events.TimerCancel, events.StateTimeWait, 0).
				state(hdr(17001, 6, server, client, 20), events.StateListen, events.StateSynRecv).
				state(hdr(tt.moveTime, 6, server, client, 20), events.StateSynRecv, events.StateEstablished)
			births, moves := s.evs[len(s.evs)-2].(*events.StateChange), s.evs[len(s.evs)-1].(*events.StateChange)
			if tt.withBirth {
				births.Syn = syn
			} else {
				moves.Syn = syn
			}
			out := run(New(Options{}), s.evs, t0.Add(time.Hour))
			end := only[*events.TimewaitEnd](t, out)
			if end.Cause != events.CauseSynAccepted || end.Successor != 6 || end.Age != 16998*time.Millisecond {
				t.Errorf("end %+v, want syn_accepted by cookie 6, at the stop", end)
			}
			if wantSyn := syn; tt.moveTime > 17001+int(successorWindow/time.Millisecond) {
				// The move came after the window: the end was told without it.
				if end.Syn.SeqKnown {
					t.Errorf("SYN %+v, want none: told before the child moved", end.Syn)
				}
			} else if end.Syn != wantSyn {
				t.Errorf("SYN %+v, want %+v", end.Syn, wantSyn)
			}
		})
	}
}

// A birth waiting for its SYN is forgotten with the stop it waited on: a
// TIME_WAIT socket armed again, then stopped much later, is not ended for
// that child (whose move was lost); and a FIN_WAIT2 minisock, which takes
// no SYN, still gets its end at the trace's end.
func TestTimewaitSynAwaitedForgotten(t *testing.T) {
	rearmed := serverActiveClose().
		timer(hdr(17000, 5, server, client, 0), events.TimerCancel, events.StateTimeWait, 0).
		state(hdr(17001, 6, server, client, 20), events.StateListen, events.StateSynRecv).
		timer(hdr(17002, 5, server, client, 0), events.TimerStart, events.StateTimeWait, time.Minute).
		timer(hdr(44000, 5, server, client, 0), events.TimerCancel, events.StateTimeWait, 0)
	end := only[*events.TimewaitEnd](t, run(New(Options{}), rearmed.evs, t0.Add(time.Hour)))
	if end.Successor == 6 || end.Cause == events.CauseSynAccepted {
		t.Errorf("end %+v, want none of child 6, whose wait ended with the re-arm", end)
	}

	s := &stream{}
	minisock := s.state(hdr(0, 5, server, client, 20), events.StateEstablished, events.StateFinWait1).
		state(hdr(1, 5, server, client, 20), events.StateFinWait1, events.StateFinWait2).
		timer(hdr(2, 5, server, client, 20), events.TimerStart, events.StateFinWait2, time.Minute).
		state(hdr(2, 5, server, client, 20), events.StateFinWait2, events.StateClose).
		timer(hdr(17000, 5, server, client, 0), events.TimerCancel, events.StateFinWait2, 0).
		state(hdr(17001, 6, server, client, 20), events.StateListen, events.StateSynRecv)
	tr := New(Options{})
	var out []events.Event
	for _, ev := range minisock.evs {
		out = appendKept(out, tr.Process(ev))
	}
	out = appendKept(out, tr.Flush(t0.Add(17002*time.Millisecond)))
	end = only[*events.TimewaitEnd](t, out)
	if end.Cause == events.CauseSynAccepted {
		t.Errorf("end %+v: a FIN_WAIT2 minisock takes no SYN", end)
	}
}

// A server-side TIME_WAIT stopped, then a child on the same 4-tuple: the
// SYN was accepted (seed 003).
func TestTimewaitSynAccepted(t *testing.T) {
	s := serverActiveClose().
		timer(hdr(17000, 5, server, client, 0), events.TimerCancel, events.StateTimeWait, 0).
		state(hdr(17001, 6, server, client, 20), events.StateListen, events.StateSynRecv)
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	end := only[*events.TimewaitEnd](t, out)
	if end.Cause != events.CauseSynAccepted || !end.Inferred || end.Successor != 6 || end.Age != 16998*time.Millisecond {
		t.Errorf("end %+v", end)
	}
	for _, ev := range out {
		if sum, ok := ev.(*events.Summary); ok && sum.Cookie == 5 && !sum.BeforeTrace {
			t.Errorf("socket first seen in ESTABLISHED not marked as begun before tracing: %+v", sum)
		}
	}
}

func TestTimewaitOverflow(t *testing.T) {
	s := activeClose()
	s.evs = append(s.evs[:4], s.evs[5:]...) // no TIME_WAIT timer: none was made
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	o := only[*events.TimewaitOverflow](t, out)
	if o.State != events.StateFinWait2 || o.Cookie != 1 {
		t.Errorf("overflow %+v", o)
	}
	if sum := only[*events.Summary](t, out); sum.End != "timewait_overflow" {
		t.Errorf("summary end %s", sum.End)
	}

	// Closing from FIN_WAIT2 because of an RST is no overflow.
	s = activeClose()
	s.evs[4] = &events.ResetReceived{Header: hdr(149, 1, client, server, 10), State: events.StateFinWait2}
	for _, ev := range run(New(Options{}), s.evs, t0.Add(time.Hour)) {
		if _, ok := ev.(*events.TimewaitOverflow); ok {
			t.Error("an RST close reported as an overflow")
		}
	}
}

func TestPurged(t *testing.T) {
	s := activeClose()
	s.timer(hdr(1000, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0)
	gone := func(netns uint32) bool { return netns == 7 }
	out := run(New(Options{NetnsGone: gone}), s.evs, t0.Add(time.Hour))
	if end := only[*events.TimewaitEnd](t, out); end.Cause != events.CausePurged || !end.Inferred {
		t.Errorf("end %+v, want purged", end)
	}
}

func TestEviction(t *testing.T) {
	tr := New(Options{MaxSockets: 2})
	for c := uint64(1); c <= 5; c++ {
		tr.Process(&events.StateChange{Header: hdr(int(c), c, client, server, 1), Old: events.StateClose, New: events.StateSynSent})
	}
	if tr.Tracked() != 2 || tr.Evicted() != 3 {
		t.Errorf("tracked %d evicted %d, want 2 and 3", tr.Tracked(), tr.Evicted())
	}
	out := tr.Flush(t0.Add(time.Second))
	if len(out) != 2 {
		t.Fatalf("flush gave %d summaries, want 2", len(out))
	}
	// Summaries made in one call are distinct objects, and the next call
	// starts over with the same ones.
	if a, b := out[0].(*events.Summary), out[1].(*events.Summary); a == b || a.Cookie == b.Cookie {
		t.Errorf("flush summaries share an object or a cookie: %d, %d", a.Cookie, b.Cookie)
	}
	first := out[0]
	tr.Process(&events.StateChange{Header: hdr(9, 9, client, server, 1), Old: events.StateClose, New: events.StateSynSent})
	if again := tr.Flush(t0.Add(2 * time.Second)); len(again) != 1 || again[0] != first || again[0].Head().Cookie != 9 {
		t.Errorf("second flush: %d summaries, reused %v", len(again), len(again) == 1 && again[0] == first)
	}
}

func TestPassThroughAndPassiveClose(t *testing.T) {
	s := &stream{}
	s.state(hdr(0, 3, server, client, 20), events.StateListen, events.StateSynRecv).
		state(hdr(1, 3, server, client, 20), events.StateSynRecv, events.StateEstablished).
		add(&events.Retransmit{Header: hdr(5, 3, server, client, 20), State: events.StateEstablished}).
		state(hdr(100, 3, server, client, 20), events.StateEstablished, events.StateCloseWait).
		state(hdr(300, 3, server, client, 20), events.StateCloseWait, events.StateLastAck).
		state(hdr(301, 3, server, client, 20), events.StateLastAck, events.StateClose).
		add(&events.Destroy{Header: hdr(301, 3, server, client, 20), State: events.StateClose})
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	if len(out) != len(s.evs)+1 {
		t.Fatalf("%d events out, want the %d in plus a summary", len(out), len(s.evs))
	}
	sum := out[len(out)-1].(*events.Summary)
	if sum.End != "closed" || sum.ClosedBy != "peer" || sum.Retransmits != 1 || sum.BeforeTrace {
		t.Errorf("summary %+v", sum)
	}
	if got, want := history(sum), "SYN_RECV 1ms > ESTABLISHED 99ms > CLOSE_WAIT 200ms > LAST_ACK 1ms"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
}

// The RST that kills a TIME_WAIT socket, seen leaving the peer's listener:
// the late-segment story.
func TestTimewaitPeerRST(t *testing.T) {
	s := activeClose()
	s.timer(hdr(5150, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0)
	listener := hdr(5149, 0, server, "0.0.0.0:0", 20)
	s.evs = append(s.evs[:len(s.evs)-1], &events.ResetSent{Header: listener, State: events.StateListen, Reason: "TCP_FLAGS"}, s.evs[len(s.evs)-1])
	s.add(&events.TimewaitRST{Header: hdr(5150, 1, client, server, 0), Substate: events.StateTimeWait})
	end := only[*events.TimewaitEnd](t, run(New(Options{}), s.evs, t0.Add(time.Hour)))
	if end.Cause != events.CauseRST || !end.PeerRST || end.PeerRSTReason != "TCP_FLAGS" {
		t.Errorf("end %+v, want rst answered by the peer's listener", end)
	}
}

// TIME_WAIT sockets stopped early end as "unknown" each when its own
// successor window has passed, at the first event after it, not before.
func TestStoppedTimewaitsEndInTurn(t *testing.T) {
	tr := New(Options{})
	other := "10.0.0.1:40001"
	for _, ev := range []events.Event{
		&events.TimewaitTimer{Header: hdr(0, 1, client, server, 10), Action: events.TimerStart, Substate: events.StateTimeWait},
		&events.TimewaitTimer{Header: hdr(0, 2, other, server, 10), Action: events.TimerStart, Substate: events.StateTimeWait},
		&events.TimewaitTimer{Header: hdr(1000, 1, client, server, 10), Action: events.TimerCancel, Substate: events.StateTimeWait},
		&events.TimewaitTimer{Header: hdr(2000, 2, other, server, 10), Action: events.TimerCancel, Substate: events.StateTimeWait},
	} {
		tr.Process(ev)
	}
	unrelated := func(ms int) []uint64 {
		var ended []uint64
		for _, ev := range tr.Process(&events.Retransmit{Header: hdr(ms, 9, "10.0.0.9:1", server, 10)}) {
			if end, ok := ev.(*events.TimewaitEnd); ok && end.Cause == events.CauseUnknown {
				ended = append(ended, end.Cookie)
			}
		}
		return ended
	}
	for _, step := range []struct {
		ms   int
		want []uint64
	}{{3500, nil}, {4000, nil}, {4001, []uint64{1}}, {4500, nil}, {5001, []uint64{2}}, {9000, nil}} {
		if got := unrelated(step.ms); !slices.Equal(got, step.want) {
			t.Errorf("at %d ms: ended %v, want %v", step.ms, got, step.want)
		}
	}
}

// linger2Abort is a client (cookie 1) with TCP_LINGER2 < 0 whose FIN_WAIT2
// is aborted: FIN_WAIT2 -> CLOSE with no TIME_WAIT timer, and its RST, after
// the destroy (the ACK of our FIN found it orphaned: TCP_ABORT_ON_DATA) or
// before it (close() in FIN_WAIT2: TCP_ABORT_ON_LINGER).
func linger2Abort(rstAfterDestroy bool) *stream {
	s := &stream{}
	s.state(hdr(0, 1, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent).
		state(hdr(1, 1, client, server, 10), events.StateSynSent, events.StateEstablished).
		state(hdr(101, 1, client, server, 10), events.StateEstablished, events.StateFinWait1).
		state(hdr(102, 1, client, server, 10), events.StateFinWait1, events.StateFinWait2).
		state(hdr(102, 1, client, server, 10), events.StateFinWait2, events.StateClose)
	rst := &events.ResetSent{Header: hdr(103, 1, client, server, 10), State: events.StateClose, Reason: "TCP_ABORT_ON_LINGER"}
	destroy := &events.Destroy{Header: hdr(103, 1, client, server, 10), State: events.StateClose}
	if rstAfterDestroy {
		rst.Reason = "TCP_ABORT_ON_DATA"
		return s.add(destroy).add(rst)
	}
	return s.add(rst).add(destroy)
}

func TestLinger2AbortIsNoOverflow(t *testing.T) {
	for _, after := range []bool{true, false} {
		out := run(New(Options{}), linger2Abort(after).evs, t0.Add(time.Hour))
		for _, ev := range out {
			if _, ok := ev.(*events.TimewaitOverflow); ok {
				t.Errorf("RST after destroy %v: an abort reported as an overflow", after)
			}
		}
		if sum := only[*events.Summary](t, out); sum.End != "reset" {
			t.Errorf("RST after destroy %v: summary end %s, want reset", after, sum.End)
		}
	}
	// Without the RST it is an overflow, concluded once the RST can no
	// longer come, with the destroy's time (not before its evidence).
	s := linger2Abort(false)
	s.evs = append(s.evs[:5], s.evs[6:]...)
	s.add(&events.Retransmit{Header: hdr(2000, 9, "10.0.0.1:1", server, 0)})
	tr := New(Options{})
	var out []events.Event
	for i, ev := range s.evs {
		got := tr.Process(ev)
		if i < len(s.evs)-1 {
			for _, e := range got {
				if _, ok := e.(*events.TimewaitOverflow); ok {
					t.Fatalf("overflow concluded at event %d, before an RST could be ruled out", i)
				}
			}
		}
		out = appendKept(out, got)
	}
	o := only[*events.TimewaitOverflow](t, out)
	if !o.Time.Equal(t0.Add(103*time.Millisecond)) || o.State != events.StateFinWait2 {
		t.Errorf("overflow %+v, want at the destroy (103 ms), from FIN_WAIT2", o)
	}
}

// orphanClose is a client (cookie 1) that closed first: its orphaned
// FIN_WAIT2 is a minisock in substate FIN_WAIT2 (armed at 102 ms, 60 s).
func orphanClose() *stream {
	s := &stream{}
	return s.state(hdr(0, 1, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent).
		state(hdr(1, 1, client, server, 10), events.StateSynSent, events.StateEstablished).
		state(hdr(100, 1, client, server, 10), events.StateEstablished, events.StateFinWait1).
		state(hdr(102, 1, client, server, 10), events.StateFinWait1, events.StateFinWait2).
		timer(hdr(102, 1, client, server, 10), events.TimerStart, events.StateFinWait2, time.Minute).
		state(hdr(102, 1, client, server, 10), events.StateFinWait2, events.StateClose).
		add(&events.Destroy{Header: hdr(102, 1, client, server, 10), State: events.StateClose})
}

// The peer's FIN moves the minisock to TIME_WAIT silently (same-bucket
// re-arm); its expiry shows the new substate and, through expires, when.
func TestTimewaitSubstateMove(t *testing.T) {
	tick := 4 * time.Millisecond
	for _, tt := range []struct {
		name       string
		peer       bool // the peer's LAST_ACK is seen on the mirrored 4-tuple
		expires    bool // the timer's expires is reported
		at, within time.Duration
	}{
		{"from the timer", false, true, 2098 * time.Millisecond, 2 * tick},
		{"narrowed by the peer's LAST_ACK", true, true, 2100 * time.Millisecond, 1 * time.Millisecond},
		{"from the peer only", true, false, 2100 * time.Millisecond, 1 * time.Millisecond},
		{"time unknown", false, false, 62102 * time.Millisecond, 0},
		// A later segment re-armed the timer in the same bucket: the
		// timer dates that, not the move; the peer's LAST_ACK decides.
		{"re-armed later: the peer's LAST_ACK decides", true, true, 2100 * time.Millisecond, 1 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := orphanClose()
			if tt.peer {
				s.state(hdr(2100, 2, server, client, 20), events.StateCloseWait, events.StateLastAck).
					state(hdr(2101, 2, server, client, 20), events.StateLastAck, events.StateClose)
			}
			// Re-armed at 2102 ms for 60 s: due at 62102 ms, fired 2 ms late.
			exp := &events.TimewaitTimer{Header: hdr(62104, 1, client, server, 0), Action: events.TimerExpire,
				Substate: events.StateTimeWait}
			if tt.expires {
				exp.Expires, exp.ExpiresKnown, exp.Tick = -2*time.Millisecond, true, tick
				if tt.peer {
					exp.Expires = -4 * time.Millisecond // re-armed at 2100 ms
				}
				if strings.HasPrefix(tt.name, "re-armed later") {
					exp.Header = hdr(90000, 1, client, server, 0) // last armed at 30 s
					exp.Expires = 0
				}
			}
			out := run(New(Options{}), s.add(exp).evs, t0.Add(time.Hour))
			mv := only[*events.TimewaitSubstate](t, out)
			if mv.Old != events.StateFinWait2 || mv.New != events.StateTimeWait || mv.Timeout != time.Minute ||
				mv.TimeKnown != (tt.at != 62102*time.Millisecond) {
				t.Errorf("move %+v", mv)
			}
			if mv.TimeKnown && (!mv.Time.Equal(t0.Add(tt.at)) || mv.Within != tt.within) {
				t.Errorf("move at %v within %v, want at %v within %v (%s)", mv.Time.Sub(t0), mv.Within, tt.at, tt.within, mv.DerivedFrom)
			}
			end := only[*events.TimewaitEnd](t, out)
			if end.Substate != events.StateTimeWait || end.Cause != events.CauseExpired {
				t.Errorf("end %+v, want expired in TIME_WAIT", end)
			}
			var sum *events.Summary
			for _, ev := range out {
				if e, ok := ev.(*events.Summary); ok && e.Cookie == 1 {
					sum = e
				}
			}
			if got := history(sum); !strings.HasSuffix(got, "tw:FIN_WAIT2"+map[bool]string{true: " " + (tt.at - 102*time.Millisecond).String()}[mv.TimeKnown]+
				" > tw:TIME_WAIT"+map[bool]string{true: " " + (exp.Time.Sub(t0) - tt.at).String()}[mv.TimeKnown]) {
				t.Errorf("history %s", got)
			}
		})
	}
}

// A FIN_WAIT2 minisock that answers a SYN with an RST is killed: cause
// rst_answer, in FIN_WAIT2; a connection on the 4-tuple afterwards is no
// successor of it.
func TestTimewaitRSTAnswer(t *testing.T) {
	s := orphanClose()
	s.add(&events.ResetSent{Header: hdr(3000, 1, client, server, 0), State: events.StateTimeWait, Reason: "TCP_TIMEWAIT_SOCKET"}).
		timer(hdr(3000, 1, client, server, 0), events.TimerCancel, events.StateFinWait2, 0).
		state(hdr(3100, 3, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent).
		state(hdr(3101, 3, client, server, 10), events.StateSynSent, events.StateEstablished)
	out := run(New(Options{NetnsGone: func(uint32) bool { return true }}), s.evs, t0.Add(time.Hour))
	end := only[*events.TimewaitEnd](t, out)
	if end.Cause != events.CauseRSTAnswer || end.Substate != events.StateFinWait2 || end.Inferred ||
		end.RSTAnswerReason != "TCP_TIMEWAIT_SOCKET" || end.Successor != 0 || !end.Time.Equal(t0.Add(3000*time.Millisecond)) {
		t.Errorf("end %+v, want rst_answer in FIN_WAIT2 at 3 s, observed, no successor", end)
	}
}

// A FIN_WAIT2 minisock stopped early cannot have been taken over by a SYN
// or a connect() (the kernel allows neither): never syn_accepted on it.
func TestFinWait2NoSuccessor(t *testing.T) {
	s := orphanClose()
	s.timer(hdr(3000, 1, client, server, 0), events.TimerCancel, events.StateFinWait2, 0).
		state(hdr(3001, 4, server, client, 20), events.StateListen, events.StateSynRecv)
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	if end := only[*events.TimewaitEnd](t, out); end.Cause != events.CauseUnknown || end.Substate != events.StateFinWait2 {
		t.Errorf("end %+v, want unknown in FIN_WAIT2", end)
	}
}

// The peer's RST for a TIME_WAIT socket's 4-tuple that does not stop it:
// reported once no stop can follow; not when the timer stops right after.
func TestTimewaitRSTIgnored(t *testing.T) {
	peerRST := &events.ResetSent{Header: hdr(1000, 0, server, client, 0), State: events.StateListen, Reason: "TCP_FLAGS"}
	s := activeClose()
	s.add(peerRST).add(&events.Retransmit{Header: hdr(2500, 9, "10.0.0.1:1", server, 0)})
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	ig := only[*events.TimewaitRSTIgnored](t, out)
	if ig.Cookie != 1 || !ig.PeerRSTAt.Equal(t0.Add(time.Second)) || ig.PeerRSTReason != "TCP_FLAGS" || ig.AliveFor != 1500*time.Millisecond {
		t.Errorf("ignored %+v", ig)
	}

	s = activeClose()
	s.add(peerRST).timer(hdr(1000, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0).
		add(&events.TimewaitRST{Header: hdr(1000, 1, client, server, 0), Substate: events.StateTimeWait})
	out = run(New(Options{}), s.evs, t0.Add(time.Hour))
	for _, ev := range out {
		if _, ok := ev.(*events.TimewaitRSTIgnored); ok {
			t.Errorf("an RST that killed the TIME_WAIT socket reported as ignored")
		}
	}
	if end := only[*events.TimewaitEnd](t, out); end.Cause != events.CauseRST || !end.PeerRST {
		t.Errorf("end %+v, want rst from the peer", end)
	}
}

// An RST freed after a TIME_WAIT socket's timer stopped did not stop it
// where the kernel ignores RSTs (tcp_rfc1337 not 0, substate TIME_WAIT) or
// where a SYN was just accepted: the stop is told from the rest.
func TestTimewaitRSTThatCannotKill(t *testing.T) {
	rfc1337 := func(v int64) func(uint32) (sysctl.Snapshot, error) {
		value := sysctl.Value{Sysctl: sysctl.Sysctl{Name: sysctl.RFC1337}, Raw: strconv.FormatInt(v, 10), Present: true}
		return func(uint32) (sysctl.Snapshot, error) { return sysctl.Snapshot{Values: []sysctl.Value{value}}, nil }
	}
	for _, tc := range []struct {
		name    string
		rfc1337 int64
		synSeen bool
		// The RST reached the TIME_WAIT socket after the SYN (the fexit
		// hook reports it after the timer stop it caused).
		rstSeen bool
		want    events.EndCause
	}{
		{"tcp_rfc1337 = 0: the RST killed it", 0, false, false, events.CauseRST},
		{"tcp_rfc1337 = 1: ignored, a later RST", 1, false, false, events.CauseUnknown},
		{"tcp_rfc1337 = 2: ignored too (any value but 0)", 2, false, false, events.CauseUnknown},
		{"a SYN accepted just before", 0, true, false, events.CauseSynAccepted},
		{"a SYN answered with an ACK (no listener), then the peer's RST", 0, true, true, events.CauseRST},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := activeClose()
			if tc.synSeen {
				s.add(&events.TimewaitSegment{Header: hdr(5149, 1, client, server, 0), Verdict: "SYN", Flags: 0x02})
			}
			s.timer(hdr(5150, 1, client, server, 0), events.TimerCancel, events.StateTimeWait, 0)
			if tc.rstSeen {
				s.add(&events.TimewaitSegment{Header: hdr(5150, 1, client, server, 0), Verdict: "SUCCESS", Flags: tcpRST})
			}
			s.add(&events.TimewaitRST{Header: hdr(5300, 1, client, server, 0), Substate: events.StateTimeWait})
			out := run(New(Options{Sysctls: rfc1337(tc.rfc1337)}), s.evs, t0.Add(time.Hour))
			if end := only[*events.TimewaitEnd](t, out); end.Cause != tc.want {
				t.Errorf("end %+v, want cause %s", end, tc.want)
			}
		})
	}
}

// An overflow tells how many TIME_WAIT sockets its namespace held: those
// alive then, kept as records or not, and no other namespace's.
func TestTimewaitOverflowCount(t *testing.T) {
	tr := New(Options{})
	var c closer
	for n := range 3 {
		c.activeClose(tr, n, time.Duration(n)*time.Millisecond)
	}
	c.expire(tr, 1, time.Minute)
	elsewhere := hdr(60001, 50, "10.0.0.5:80", client, 0)
	elsewhere.Netns = 8
	tr.Process(&events.Snapshot{Header: elsewhere, State: events.StateTimeWait, Substate: events.StateTimeWait})
	s := &stream{}
	s.state(hdr(60002, 100, client, server, 10), events.StateEstablished, events.StateFinWait1).
		state(hdr(60003, 100, client, server, 10), events.StateFinWait1, events.StateFinWait2).
		state(hdr(60004, 100, client, server, 10), events.StateFinWait2, events.StateClose).
		add(&events.Destroy{Header: hdr(60004, 100, client, server, 10), State: events.StateClose})
	o := only[*events.TimewaitOverflow](t, run(tr, s.evs, t0.Add(time.Hour)))
	if o.Cookie != 100 || o.TimewaitSockets != 2 {
		t.Errorf("overflow %+v, want cookie 100 with 2 TIME_WAIT sockets alive", o)
	}
}
