package track

import (
	"slices"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Without --pid the kernel names a socket's owner only on the transitions
// its owner makes (connect, listen, close) and keeps no state clock: the
// tracker fills both in on the events it shows.
func TestOwnerAndStateTimesFromHistory(t *testing.T) {
	anon := func(ms int, cookie uint64, local, remote string) events.Header {
		h := hdr(ms, cookie, local, remote, 0)
		h.Owner = events.Owner{}
		return h
	}
	listenAt := func(addr string) events.Header { return hdr(0, 0, addr, "0.0.0.0:0", 20) }
	child := func(ms int) events.Header { return anon(ms, 5, server, client) }
	childStory := func(s *stream) *stream {
		return s.state(child(10), events.StateListen, events.StateSynRecv).
			state(child(12), events.StateSynRecv, events.StateEstablished).
			add(&events.Retransmit{Header: child(13), State: events.StateEstablished})
	}
	twenty, unknown := []uint32{20, 20, 20}, []uint32{0, 0, 0}
	tests := []struct {
		name       string
		stream     *stream
		wantOwners []uint32 // of the events of cookie 5 shown, in order
	}{
		{"child of a listener on its address",
			childStory((&stream{}).state(listenAt(server), events.StateClose, events.StateListen)), twenty},
		{"child of a wildcard listener",
			childStory((&stream{}).state(listenAt("0.0.0.0:80"), events.StateClose, events.StateListen)), twenty},
		{"child of a listener there before tracing",
			childStory((&stream{}).add(&events.Snapshot{Header: listenAt("0.0.0.0:80"), State: events.StateListen})), twenty},
		{"listeners of two processes on one port (SO_REUSEPORT): not told",
			childStory((&stream{}).state(listenAt(server), events.StateClose, events.StateListen).
				state(hdr(1, 0, server, "0.0.0.0:0", 30), events.StateClose, events.StateListen)), unknown},
		{"listener closed before the connection",
			childStory((&stream{}).state(listenAt(server), events.StateClose, events.StateListen).
				state(anon(5, 0, server, "0.0.0.0:0"), events.StateListen, events.StateClose)), unknown},
		{"no listener seen", childStory(&stream{}), unknown},
		{"SO_REUSEPORT hand-over: the old process's listener closed",
			childStory((&stream{}).state(listenAt(server), events.StateClose, events.StateListen).
				state(hdr(1, 0, server, "0.0.0.0:0", 30), events.StateClose, events.StateListen).
				state(anon(2, 0, server, "0.0.0.0:0"), events.StateListen, events.StateClose)), unknown},
		{"SO_REUSEPORT hand-over, the closing listener's owner known",
			childStory((&stream{}).state(listenAt(server), events.StateClose, events.StateListen).
				state(hdr(1, 0, server, "0.0.0.0:0", 30), events.StateClose, events.StateListen).
				state(hdr(2, 0, server, "0.0.0.0:0", 30), events.StateListen, events.StateClose)), twenty},
		{"listener in the snapshot and seen listening, closed once",
			childStory((&stream{}).add(&events.Snapshot{Header: listenAt(server), State: events.StateListen}).
				state(listenAt(server), events.StateClose, events.StateListen).
				state(anon(2, 0, server, "0.0.0.0:0"), events.StateListen, events.StateClose)), twenty},
		{"child whose first owned event is its close: owned from then on",
			(&stream{}).state(child(10), events.StateListen, events.StateSynRecv).
				state(child(12), events.StateSynRecv, events.StateEstablished).
				state(hdr(20, 5, server, client, 40), events.StateEstablished, events.StateFinWait1).
				state(child(21), events.StateFinWait1, events.StateFinWait2), []uint32{0, 0, 40, 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint32
			for _, ev := range run(New(Options{}), tc.stream.evs, t0.Add(time.Second)) {
				if ev.Head().Cookie == 5 && ev.Type() != events.TypeSummary {
					got = append(got, ev.Head().Owner.PID)
				}
			}
			if !slices.Equal(got, tc.wantOwners) {
				t.Errorf("owners %v, want %v", got, tc.wantOwners)
			}
		})
	}
}

func TestStateTimesFromHistory(t *testing.T) {
	h := func(ms int) events.Header { return hdr(ms, 1, client, server, 0) }
	s := (&stream{}).state(hdr(0, 1, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent).
		state(h(3), events.StateSynSent, events.StateEstablished).
		add(&events.StateChange{Header: h(10), Old: events.StateEstablished, New: events.StateFinWait1,
									PrevState: 5 * time.Millisecond, PrevStateKnown: true}). // the kernel's clock, under --pid, wins
		state(h(20), events.StateFinWait2, events.StateClose) // FIN_WAIT1 -> FIN_WAIT2 was lost: not timed
	var got []time.Duration
	for _, ev := range run(New(Options{}), s.evs, t0.Add(time.Second)) {
		if sc, ok := ev.(*events.StateChange); ok {
			if !sc.PrevStateKnown {
				got = append(got, -1)
				continue
			}
			got = append(got, sc.PrevState)
		}
	}
	want := []time.Duration{-1, 3 * time.Millisecond, 5 * time.Millisecond, -1}
	if len(got) != len(want) {
		t.Fatalf("prev states %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("prev states %v, want %v", got, want)
		}
	}
}

// The full socket's move to CLOSE after its TIME_WAIT socket took over ends
// its FIN_WAIT2, not the TIME_WAIT that began just before.
func TestStateTimeAtTimewaitHandover(t *testing.T) {
	var last *events.StateChange
	for _, ev := range run(New(Options{}), activeClose().evs, t0.Add(time.Second)) {
		if sc, ok := ev.(*events.StateChange); ok {
			last = sc
		}
	}
	if last.Old != events.StateFinWait2 || !last.PrevStateKnown || last.PrevState != 48*time.Millisecond {
		t.Errorf("%s -> %s after %v (known %v), want FIN_WAIT2 after 48ms", last.Old, last.New, last.PrevState, last.PrevStateKnown)
	}
}

// A history dropped to stay within MaxSockets is not taken, when its socket
// shows up again, for one that began before tracing.
func TestDroppedHistory(t *testing.T) {
	tr := New(Options{MaxSockets: 1})
	s := activeClose()                                                                      // cookie 1 enters TIME_WAIT
	s.state(hdr(200, 2, "10.0.0.1:0", server, 10), events.StateClose, events.StateSynSent). // drops cookie 1's history
												state(hdr(201, 2, "10.0.0.1:40001", server, 10), events.StateSynSent, events.StateEstablished).
												timer(hdr(60150, 1, client, server, 10), events.TimerExpire, events.StateTimeWait, 0). // drops cookie 2's
												state(hdr(60200, 2, "10.0.0.1:40001", server, 10), events.StateEstablished, events.StateFinWait1).
												state(hdr(60201, 2, "10.0.0.1:40001", server, 10), events.StateFinWait1, events.StateClose).
												add(&events.Destroy{Header: hdr(60201, 2, "10.0.0.1:40001", server, 10), State: events.StateClose})
	var end *events.TimewaitEnd
	var sum *events.Summary
	for _, ev := range run(tr, s.evs, t0.Add(61*time.Second)) {
		switch e := ev.(type) {
		case *events.TimewaitEnd:
			end = e
		case *events.Summary:
			if e.Cookie == 2 {
				sum = e
			}
		}
	}
	if tr.Evicted() != 2 {
		t.Fatalf("%d histories dropped, want 2", tr.Evicted())
	}
	if end == nil || end.AgeKnown || !end.HistoryDropped {
		t.Errorf("TIME_WAIT end %+v, want age unknown, history dropped", end)
	}
	if sum == nil || sum.BeforeTrace || !sum.HistoryDropped || len(sum.History) != 2 || sum.History[0].DurationKnown {
		t.Errorf("summary %+v, want ESTABLISHED for how long unknown, then FIN_WAIT1; history dropped, not begun before tracing", sum)
	}
}
