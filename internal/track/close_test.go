package track

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

var netipClient, netipServer = netip.MustParseAddrPort(client), netip.MustParseAddrPort(server)

// us is a header at a microsecond of the trace, on the client's socket
// (cookie 1) unless the socket is given.
func us(n int, local, remote string) events.Header {
	h := hdr(0, 1, local, remote, 10)
	h.Time = t0.Add(time.Duration(n) * time.Microsecond)
	return h
}

// established is the client's connection (cookie 1) up to ESTABLISHED.
func established() *stream {
	s := &stream{}
	return s.state(us(0, "10.0.0.1:0", server), events.StateClose, events.StateSynSent).
		state(us(1000, client, server), events.StateSynSent, events.StateEstablished)
}

// finWait2 adds our FIN (at 100 ms) and its ACK (at 102 ms).
func finWait2(s *stream) *stream {
	return s.state(us(100000, client, server), events.StateEstablished, events.StateFinWait1).
		state(us(102000, client, server), events.StateFinWait1, events.StateFinWait2)
}

// timewaitAt adds the peer's FIN making a TIME_WAIT socket at the given
// microsecond, and the full socket's end.
func timewaitAt(s *stream, n int) *stream {
	return s.timer(us(n, client, server), events.TimerStart, events.StateTimeWait, time.Minute).
		state(us(n, client, server), events.StateFinWait2, events.StateClose).
		add(&events.Destroy{Header: us(n, client, server), State: events.StateClose})
}

// Socket options as the kernel reads them at a move to CLOSE.
var (
	optionsRead     = events.CloseOptions{Known: true}
	lingerZero      = events.CloseOptions{Known: true, LingerZero: true}
	linger2Negative = events.CloseOptions{Known: true, Linger2Negative: true}
)

// closeWith adds a move to CLOSE with the socket's options as it moved.
func closeWith(s *stream, n int, from events.State, options events.CloseOptions) *stream {
	return s.add(&events.StateChange{Header: us(n, client, server), Old: from, New: events.StateClose, Options: options})
}

func destroyed(s *stream, n int, local, remote string) *stream {
	return s.add(&events.Destroy{Header: us(n, local, remote), State: events.StateClose})
}

func rstSent(s *stream, n int, state events.State, reason string) *stream {
	return s.add(&events.ResetSent{Header: us(n, client, server), State: state, Reason: reason})
}

func rstReceived(s *stream, n int, state events.State) *stream {
	return s.add(&events.ResetReceived{Header: us(n, client, server), State: state})
}

func TestCloseShapes(t *testing.T) {
	zeroed := "0.0.0.0:40000" // tcp_disconnect() zeroes the local address (unbound) and the remote port
	tests := []struct {
		name string
		evs  *stream
		want events.Close
		// from is a part of the words the inference, or what showed the
		// rule, must hold.
		from string
		end  events.End
	}{
		{name: "three segments, from timing",
			evs:  timewaitAt(finWait2(established()), 102005),
			want: events.Close{Shape: events.ShapeThreeSegment, FirstFIN: "local", HalfClose: 2005 * time.Microsecond, HalfCloseKnown: true, Inferred: true},
			end:  "open", from: "looks the same"},
		{name: "four segments, from timing",
			evs:  timewaitAt(finWait2(established()), 150000),
			want: events.Close{Shape: events.ShapeFourSegment, FirstFIN: "local", HalfClose: 50 * time.Millisecond, HalfCloseKnown: true, Inferred: true},
			end:  "open", from: "FIN_WAIT2 lasting 48 ms"},
		{name: "three segments, the FIN seen in FIN_WAIT1",
			evs: timewaitAt(finWait2(established().
				add(&events.Segment{Header: us(101990, client, server), State: events.StateFinWait1, Flags: tcpFIN | 0x10})), 150000),
			want: events.Close{Shape: events.ShapeThreeSegment, FirstFIN: "local", HalfClose: 1990 * time.Microsecond, HalfCloseKnown: true},
			end:  "open"},
		{name: "four segments, the FIN seen in FIN_WAIT2",
			evs: timewaitAt(finWait2(established()).
				add(&events.Segment{Header: us(102010, client, server), State: events.StateFinWait2, Flags: tcpFIN | 0x10}), 102020),
			want: events.Close{Shape: events.ShapeFourSegment, FirstFIN: "local", HalfClose: 2010 * time.Microsecond, HalfCloseKnown: true},
			end:  "open"},
		{name: "four segments, a FIN_WAIT2 minisock moved to TIME_WAIT",
			evs: orphanClose().add(&events.TimewaitTimer{Header: hdr(62104, 1, client, server, 0), Action: events.TimerExpire,
				Substate: events.StateTimeWait, Expires: -2 * time.Millisecond, ExpiresKnown: true, Tick: 4 * time.Millisecond}),
			// Re-armed at 2102 ms to within a tick either way: from 2098 ms.
			want: events.Close{Shape: events.ShapeFourSegment, FirstFIN: "local", HalfClose: 1998 * time.Millisecond, HalfCloseKnown: true,
				HalfCloseWithin: 8 * time.Millisecond},
			end: "timewait_expired"},
		{name: "four segments, the FIN seen reaching the FIN_WAIT2 minisock",
			evs: orphanClose().add(&events.TimewaitSegment{Header: hdr(3000, 1, client, server, 0), Substate: events.StateFinWait2,
				Verdict: "ACK", Flags: tcpFIN | 0x10}),
			want: events.Close{Shape: events.ShapeFourSegment, FirstFIN: "local", HalfClose: 2900 * time.Millisecond, HalfCloseKnown: true},
			end:  "open"},
		{name: "the peer's FIN never came",
			evs:  orphanClose().timer(hdr(60102, 1, client, server, 0), events.TimerExpire, events.StateFinWait2, 0),
			want: events.Close{Shape: events.ShapeLocalFirst, FirstFIN: "local"},
			end:  "timewait_expired"},
		{name: "simultaneous",
			evs: established().state(us(100000, client, server), events.StateEstablished, events.StateFinWait1).
				state(us(100300, client, server), events.StateFinWait1, events.StateClosing).
				timer(us(300000, client, server), events.TimerStart, events.StateTimeWait, time.Minute).
				state(us(300000, client, server), events.StateClosing, events.StateClose),
			want: events.Close{Shape: events.ShapeSimultaneous, FirstFIN: "local", HalfClose: 300 * time.Microsecond, HalfCloseKnown: true},
			end:  "open"},
		{name: "peer first",
			evs: destroyed(established().state(us(100000, client, server), events.StateEstablished, events.StateCloseWait).
				state(us(250000, client, server), events.StateCloseWait, events.StateLastAck).
				state(us(251000, client, server), events.StateLastAck, events.StateClose), 251000, client, server),
			want: events.Close{Shape: events.ShapePeerFirst, FirstFIN: "peer", HalfClose: 150 * time.Millisecond, HalfCloseKnown: true},
			end:  "closed"},
		{name: "peer first, began before tracing",
			evs: destroyed((&stream{}).state(us(250000, client, server), events.StateCloseWait, events.StateLastAck).
				state(us(251000, client, server), events.StateLastAck, events.StateClose), 251000, client, server),
			want: events.Close{Shape: events.ShapePeerFirst, FirstFIN: "peer"},
			end:  "closed"},
		{name: "SO_LINGER 0",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, lingerZero),
				100030, events.StateClose, "TCP_STATE"), 100040, zeroed, "10.0.0.2:0"),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleLingerZero,
				ResetReason: "TCP_STATE", Counter: "TcpExt.TCPAbortOnData"},
			end: "reset", from: "SO_LINGER {1, 0} read off the socket"},
		{name: "SO_LINGER 0, recorded before options were read",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, events.CloseOptions{}),
				100030, events.StateClose, "TCP_STATE"), 100040, zeroed, "10.0.0.2:0"),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleLingerZero,
				ResetReason: "TCP_STATE", Counter: "TcpExt.TCPAbortOnData", Inferred: true},
			end: "reset", from: "the remote port zeroed at the destroy) with the socket destroyed at once: close() with SO_LINGER {1, 0}"},
		{name: "SO_LINGER 0 on a kernel without RST reasons",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, lingerZero),
				100030, events.StateClose, ""), 100040, zeroed, "10.0.0.2:0"),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleLingerZero,
				Counter: "TcpExt.TCPAbortOnData"},
			end: "reset"},
		{name: "tcp_disconnect() without a destroy: connect(AF_UNSPEC)",
			evs: rstSent(closeWith(established(), 100000, events.StateEstablished, optionsRead),
				100030, events.StateClose, "TCP_STATE"),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleDisconnect,
				ResetReason: "TCP_STATE", Inferred: true},
			end: "reset", from: "connect(AF_UNSPEC)"},
		{name: "tcp_disconnect() with a destroy, without SO_LINGER {1, 0}",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, optionsRead),
				100030, events.StateClose, "TCP_STATE"), 100040, zeroed, "10.0.0.2:0"),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleDisconnect,
				ResetReason: "TCP_STATE", Inferred: true},
			end: "reset", from: "without SO_LINGER {1, 0}: connect(AF_UNSPEC), then close()"},
		{name: "tcp_abort(): ss -K",
			evs: destroyed(closeWith(rstSent(established(), 100000, events.StateEstablished, "TCP_STATE"),
				100010, events.StateEstablished, optionsRead), 200000, client, server),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleSocketDestroyed,
				ResetReason: "TCP_STATE", Inferred: true},
			end: "reset", from: "tcp_abort()"},
		{name: "unread data",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, optionsRead),
				100030, events.StateClose, "TCP_ABORT_ON_CLOSE"), 100040, client, server),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleUnreadData,
				ResetReason: "TCP_ABORT_ON_CLOSE", Counter: "TcpExt.TCPAbortOnClose"},
			end: "reset", from: "RST reason TCP_ABORT_ON_CLOSE"},
		{name: "unread data, the RST 40 ms after the move to CLOSE (a preempted CPU)",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, optionsRead),
				140000, events.StateClose, "TCP_ABORT_ON_CLOSE"), 140010, client, server),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleUnreadData,
				ResetReason: "TCP_ABORT_ON_CLOSE", Counter: "TcpExt.TCPAbortOnClose"},
			end: "reset", from: "RST reason TCP_ABORT_ON_CLOSE"},
		{name: "unread data on a kernel without RST reasons",
			evs: destroyed(rstSent(closeWith(established(), 100000, events.StateEstablished, optionsRead),
				100030, events.StateClose, ""), 100040, client, server),
			want: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleUnreadData,
				Counter: "TcpExt.TCPAbortOnClose", Inferred: true},
			end: "reset", from: "remote port intact"},
		{name: "TCP_LINGER2 < 0 as the ACK of our FIN came",
			evs: rstSent(destroyed(closeWith(finWait2(established()), 102001, events.StateFinWait2, linger2Negative),
				102002, client, server), 102005, events.StateClose, "TCP_ABORT_ON_DATA"),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleLinger2,
				ResetReason: "TCP_ABORT_ON_DATA", Counter: "TcpExt.TCPAbortOnData"},
			end: "reset", from: "TCP_LINGER2 < 0 read off the socket"},
		{name: "TCP_LINGER2 < 0 as the ACK of our FIN came, on a kernel without RST reasons",
			evs: rstSent(destroyed(closeWith(finWait2(established()), 102001, events.StateFinWait2, linger2Negative),
				102002, client, server), 102005, events.StateClose, ""),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleLinger2,
				Counter: "TcpExt.TCPAbortOnData"},
			end: "reset"},
		{name: "TCP_LINGER2 < 0 at close() in FIN_WAIT2",
			evs: destroyed(rstSent(closeWith(finWait2(established()), 500000, events.StateFinWait2, linger2Negative),
				500010, events.StateClose, "TCP_ABORT_ON_LINGER"), 500020, client, server),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleLinger2,
				ResetReason: "TCP_ABORT_ON_LINGER", Counter: "TcpExt.TCPAbortOnLinger"},
			end: "reset"},
		{name: "TCP_LINGER2 < 0 at close() in FIN_WAIT2, on a kernel without RST reasons",
			evs: destroyed(rstSent(closeWith(finWait2(established()), 500000, events.StateFinWait2, linger2Negative),
				500010, events.StateClose, ""), 500020, client, server),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleLinger2,
				Counter: "TcpExt.TCPAbortOnLinger"},
			end: "reset"},
		{name: "data with the ACK of our FIN after close()",
			evs: rstSent(destroyed(closeWith(finWait2(established()), 102001, events.StateFinWait2, optionsRead),
				102002, client, server), 102005, events.StateClose, "TCP_ABORT_ON_DATA"),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleDataAfterClose,
				ResetReason: "TCP_ABORT_ON_DATA", Counter: "TcpExt.TCPAbortOnData", Inferred: true},
			end: "reset", from: "TCP_LINGER2 not below 0"},
		{name: "TCP_ABORT_ON_DATA, recorded before options were read: no rule",
			evs: rstSent(destroyed(closeWith(finWait2(established()), 102001, events.StateFinWait2, events.CloseOptions{}),
				102002, client, server), 102005, events.StateClose, "TCP_ABORT_ON_DATA"),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, ResetReason: "TCP_ABORT_ON_DATA"},
			end:  "reset"},
		{name: "data after close()",
			evs: destroyed(rstSent(rstReceived(finWait2(established()), 200000, events.StateFinWait2).
				state(us(200002, client, server), events.StateFinWait2, events.StateClose),
				200005, events.StateClose, "TCP_ABORT_ON_DATA"), 200006, client, server),
			want: events.Close{Shape: events.ShapeAbort, FirstFIN: "local", State: events.StateFinWait2, Rule: events.RuleDataAfterClose,
				ResetReason: "TCP_ABORT_ON_DATA", Counter: "TcpExt.TCPAbortOnData", Inferred: true},
			end: "reset", from: "tcp_reset() run on the socket just before"},
		{name: "reset by the peer",
			evs: destroyed(rstReceived(established(), 200000, events.StateEstablished).
				state(us(200002, client, server), events.StateEstablished, events.StateClose), 300000, client, server),
			want: events.Close{Shape: events.ShapeResetByPeer, State: events.StateEstablished},
			end:  "reset"},
		{name: "reset by the peer, the move to CLOSE 40 ms after the RST (a preempted CPU)",
			evs: destroyed(rstReceived(established(), 200000, events.StateEstablished).
				state(us(240000, client, server), events.StateEstablished, events.StateClose), 300000, client, server),
			want: events.Close{Shape: events.ShapeResetByPeer, State: events.StateEstablished},
			end:  "reset"},
		{name: "reset by the peer, the descriptor still open at the end",
			evs: rstReceived(established(), 200000, events.StateEstablished).
				state(us(200002, client, server), events.StateEstablished, events.StateClose),
			want: events.Close{Shape: events.ShapeResetByPeer, State: events.StateEstablished},
			end:  "reset"},
		{name: "the keepalive timer's RST",
			evs: destroyed(rstSent(established(), 200000, events.StateEstablished, "TCP_KEEPALIVE_TIMEOUT").
				state(us(200002, client, server), events.StateEstablished, events.StateClose), 300000, client, server),
			want: events.Close{Shape: events.ShapeTimeout, State: events.StateEstablished, Rule: events.RuleKeepaliveTimeout,
				ResetReason: "TCP_KEEPALIVE_TIMEOUT"},
			end: "reset"},
		{name: "still open", evs: established(), want: events.Close{}, end: "open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(New(Options{}), tt.evs.evs, t0.Add(time.Hour))
			sum := only[*events.Summary](t, out)
			got := sum.Close
			if !strings.Contains(got.InferredFrom+got.SeenFrom, tt.from) || (got.InferredFrom == "") == got.Inferred ||
				got.Inferred && got.SeenFrom != "" {
				t.Errorf("inferred %v from %q, seen from %q: want one, holding %q", got.Inferred, got.InferredFrom, got.SeenFrom, tt.from)
			}
			got.InferredFrom, got.SeenFrom = "", ""
			if got != tt.want {
				t.Errorf("close %+v,\nwant  %+v", got, tt.want)
			}
			if sum.End != tt.end {
				t.Errorf("end %s, want %s", sum.End, tt.end)
			}
			for _, ev := range out {
				if _, ok := ev.(*events.Destroy); (ok || ev == events.Event(sum)) &&
					(ev.Head().Remote != netipServer || ev.Head().Local != netipClient) {
					t.Errorf("%s of %s <-> %s, want the connection's own addresses", ev.Type(), ev.Head().Local, ev.Head().Remote)
				}
			}
		})
	}
}

// A child's tcp_disconnect() with its destroy is close() with SO_LINGER
// {1, 0}, unless its listener closed before: that resets the connections
// not yet accepted the same way.
func TestCloseOfAChildDisconnected(t *testing.T) {
	for _, listenerClosed := range []bool{false, true} {
		s := &stream{}
		listener := hdr(0, 0, server, "0.0.0.0:0", 20)
		s.state(listener, events.StateClose, events.StateListen).
			state(hdr(10, 5, server, client, 0), events.StateListen, events.StateSynRecv).
			state(hdr(11, 5, server, client, 0), events.StateSynRecv, events.StateEstablished)
		if listenerClosed {
			listener.Time = t0.Add(99 * time.Millisecond)
			s.state(listener, events.StateListen, events.StateClose)
		}
		s.state(hdr(100, 5, server, client, 0), events.StateEstablished, events.StateClose).
			add(&events.ResetSent{Header: hdr(100, 5, server, client, 0), State: events.StateClose, Reason: "TCP_STATE"}).
			add(&events.Destroy{Header: hdr(100, 5, "10.0.0.2:80", "10.0.0.1:0", 0), State: events.StateClose})
		var sum *events.Summary
		for _, ev := range run(New(Options{}), s.evs, t0.Add(time.Hour)) {
			if e, ok := ev.(*events.Summary); ok && e.Cookie == 5 {
				sum = e
			}
		}
		want := map[bool]string{false: events.RuleLingerZero, true: events.RuleDisconnect}[listenerClosed]
		if sum == nil || sum.Close.Rule != want || sum.Owner.PID != 20 {
			t.Errorf("listener closed %v: summary %+v, want rule %s, owned by the listener's pid 20", listenerClosed, sum, want)
		}
	}
}

// A destroy with its remote side zeroed of a socket never seen (one that
// never connected, passed by the kernel's port filter) is shown as it is,
// and makes no story.
func TestDestroyOfASocketNeverSeen(t *testing.T) {
	d := &events.Destroy{Header: hdr(0, 9, "0.0.0.0:43965", "0.0.0.0:0", 0), State: events.StateClose}
	out := run(New(Options{}), []events.Event{d}, t0.Add(time.Hour))
	if len(out) != 1 || out[0] != d || d.Remote.Port() != 0 || d.Local.Port() != 43965 {
		t.Errorf("out %+v, want the destroy alone, as it came", out)
	}
}
