package track

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// closing is what a socket's events tell of how its connection closed
// beyond its states (its phases hold those, with their times): what
// closeOf needs when its story ends.
type closing struct {
	// The last RST it sent as a full socket, and the last tcp_reset() on it.
	rstSent     *events.ResetSent
	rstReceived *events.ResetReceived
	// timeout: a timer of it gave up.
	timeout *events.TimeoutAbort
	// peerFIN: where the precise hooks saw the peer's FIN arrive (fentry
	// on tcp_rcv_state_process, fexit on tcp_timewait_state_process).
	peerFIN      time.Time
	peerFINState events.State
	// moveWithin: its TIME_WAIT socket's move from FIN_WAIT2 to TIME_WAIT
	// (the peer's FIN) is known to lie within this after the TIME_WAIT
	// phase's start, from timewait_substate (0: seen as it happened).
	moveWithin time.Duration
	// remoteZeroed: its destroy showed its remote port 0, which is what
	// tcp_disconnect() leaves.
	remoteZeroed bool
	// options: its options that make a close an abort, as it moved to CLOSE.
	options events.CloseOptions
}

// oneSegment bounds the time the kernel takes over one received segment
// (from the ACK it carries to the FIN it carries): the same softirq.
const oneSegment = synVerdictLag

func (c *closing) resetSent(e *events.ResetSent) {
	// A TIME_WAIT socket's own RST (rst_answer) comes after the close.
	if e.State != events.StateTimeWait {
		c.rstSent = e
	}
}

// segment notes the peer's FIN reaching the full socket (fentry).
func (c *closing) segment(e *events.Segment) {
	if e.Flags&tcpFIN != 0 && !e.OutOfWindow && c.peerFIN.IsZero() {
		c.peerFIN, c.peerFINState = e.Time, e.State
	}
}

// timewaitSegment notes the peer's FIN reaching its FIN_WAIT2 minisock
// (fexit).
func (c *closing) timewaitSegment(e *events.TimewaitSegment) {
	if e.Flags&tcpFIN != 0 && e.Substate == events.StateFinWait2 && c.peerFIN.IsZero() {
		c.peerFIN, c.peerFINState = e.Time, events.StateFinWait2
	}
}

// moved notes its TIME_WAIT socket moving from FIN_WAIT2 to TIME_WAIT.
func (c *closing) moved(mv *events.TimewaitSubstate) {
	if mv.Old == events.StateFinWait2 && mv.New == events.StateTimeWait {
		c.moveWithin = mv.Within
	}
}

// timedOut reports that a timer of s gave up on its connection.
func (t *Tracker) timedOut(s *socket, abort *events.TimeoutAbort) {
	s.closing.timeout = abort
	t.out = append(t.out, abort)
}

// keepTuple gives a destroy whose remote port is 0 the addresses its
// socket had: tcp_disconnect() (a SO_LINGER {1, 0} close) zeroes the remote
// port, and the local address where bind() did not fix it, before the
// destroy. It tells whether it did.
func (t *Tracker) keepTuple(h *events.Header) bool {
	if h.Remote.Port() != 0 {
		return false
	}
	s := t.full(h.Cookie)
	if s == nil || s.header.Remote.Port() == 0 {
		return false
	}
	h.Local, h.Remote = s.header.Local, s.header.Remote
	return true
}

// overConnection tells whether s's connection is over though the socket
// lives on (in CLOSE, its descriptor still open): it ends as such, not as
// open.
func (s *socket) overConnection() bool {
	p := s.lastFullPhase()
	return s.tw == nil && p != nil && p.State == events.StateClose && len(s.phases) > 1
}

// enteredAt is when s first entered state as a full socket, zero if not
// known (it was in it when its history began); ok is false when it was
// not seen in it. The CLOSE a socket's life starts in is not entered.
func (s *socket) enteredAt(state events.State) (at time.Time, ok bool) {
	for i, p := range s.phases {
		switch {
		case p.State != state || p.Timewait || i == 0 && state == events.StateClose:
			continue
		case i == 0 && !p.DurationKnown && state != events.StateSynRecv:
			// Its start is the first transition's, less a time in it the
			// kernel did not report (a child's SYN_RECV starts at its birth).
			return time.Time{}, true
		}
		return p.Start, true
	}
	return time.Time{}, false
}

// wasEstablished tells whether s's connection was established: seen so, or
// in a later state when its history began.
func (s *socket) wasEstablished() bool {
	if s.reached(events.StateEstablished) {
		return true
	}
	if len(s.phases) == 0 || !s.beforeTrace {
		return false
	}
	switch s.phases[0].State {
	case events.StateSynSent, events.StateSynRecv, events.StateNewSynRecv, events.StateListen, events.StateClose:
		return false
	}
	return true
}

// timewaitPhases are the first two phases s lived as a TIME_WAIT socket.
func (s *socket) timewaitPhases() (first, second *events.Phase) {
	for i := range s.phases {
		if !s.phases[i].Timewait {
			continue
		}
		if first == nil {
			first = &s.phases[i]
			continue
		}
		return first, &s.phases[i]
	}
	return first, nil
}

// firstFIN says who sent the first FIN: the state s left ESTABLISHED for
// (a TIME_WAIT socket seen alone, from before tracing, tells no close).
func (s *socket) firstFIN() events.Closer {
	for _, p := range s.phases {
		if p.Timewait {
			continue
		}
		switch p.State {
		case events.StateFinWait1, events.StateFinWait2, events.StateClosing:
			return events.CloserLocal
		case events.StateCloseWait, events.StateLastAck:
			return events.CloserPeer
		}
	}
	return ""
}

// near tells whether two events are of one kernel action.
func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -oneSegment && d < oneSegment
}

// closeOf tells how s's connection closed, from what its events show.
func (t *Tracker) closeOf(s *socket) events.Close {
	if s.reached(events.StateListen) {
		return events.Close{}
	}
	c := events.Close{FirstFIN: s.firstFIN()}
	closedAt, closed := s.enteredAt(events.StateClose)
	rst, recv := s.closing.rstSent, s.closing.rstReceived
	// tcp_reset() on data after close() runs just before the RST it sends.
	selfReset := rst != nil && recv != nil && !rst.Time.Before(recv.Time) && rst.Time.Sub(recv.Time) < oneSegment
	switch {
	case s.closing.timeout != nil:
		c.Shape, c.State, c.Rule = events.ShapeTimeout, s.stateBeforeClose(), s.closing.timeout.Rule
		if rst != nil {
			c.ResetReason = rst.Reason
		}
	case rst != nil && rst.Reason == "TCP_KEEPALIVE_TIMEOUT":
		c.Shape, c.State, c.Rule, c.ResetReason = events.ShapeTimeout, rst.State, events.RuleKeepaliveTimeout, rst.Reason
	// Its RST near the move to CLOSE, or sent in CLOSE after it however long
	// the kernel took in between (an emulated or preempted CPU): an abort.
	case rst != nil && closed && (near(rst.Time, closedAt) || rst.State == events.StateClose && !rst.Time.Before(closedAt)):
		c.Shape, c.ResetReason = events.ShapeAbort, rst.Reason
		c.State = s.stateBeforeClose()
		t.abortRule(s, &c, selfReset)
	case recv != nil && closed && (near(recv.Time, closedAt) || s.closedByReset(recv)):
		c.Shape, c.State = events.ShapeResetByPeer, recv.State
	case s.reached(events.StateClosing):
		c.Shape = events.ShapeSimultaneous
		c.HalfClose, c.HalfCloseKnown = between(s, events.StateFinWait1, events.StateClosing)
	case c.FirstFIN == events.CloserPeer:
		c.Shape = events.ShapePeerFirst
		c.HalfClose, c.HalfCloseKnown = between(s, events.StateCloseWait, events.StateLastAck)
	case c.FirstFIN == events.CloserLocal:
		localFirst(s, &c)
	default:
		return events.Close{}
	}
	return c
}

// between is the time from s's entering one state to its entering another.
func between(s *socket, from, to events.State) (time.Duration, bool) {
	start, ok1 := s.enteredAt(from)
	end, ok2 := s.enteredAt(to)
	if !ok1 || !ok2 || start.IsZero() || end.IsZero() {
		return 0, false
	}
	return end.Sub(start), true
}

// closedByReset tells whether the RST s received is what moved it to
// CLOSE, however long an emulated or preempted CPU took in between:
// tcp_reset() ends in tcp_done(), nothing between, so the move came after
// the RST, from the state the RST came in, which s was in when it came.
func (s *socket) closedByReset(recv *events.ResetReceived) bool {
	for i := 1; i < len(s.phases); i++ {
		closing, before := s.phases[i], s.phases[i-1]
		if closing.State != events.StateClose || closing.Timewait {
			continue
		}
		beforeStartKnown := i > 1 || before.DurationKnown
		return before.State == recv.State && !recv.Time.After(closing.Start) &&
			(!beforeStartKnown || !recv.Time.Before(before.Start))
	}
	return false
}

// stateBeforeClose is the state s left for CLOSE.
func (s *socket) stateBeforeClose() events.State {
	for i := 1; i < len(s.phases); i++ {
		if s.phases[i].State == events.StateClose && !s.phases[i].Timewait {
			return s.phases[i-1].State
		}
	}
	return ""
}

// localFirst tells a close this side began with its FIN: whether the
// peer's FIN came with its ACK of ours (three segments) or after it (four),
// and when.
func localFirst(s *socket, c *events.Close) {
	c.Shape = events.ShapeLocalFirst
	finWait1, seenFinWait1 := s.enteredAt(events.StateFinWait1)
	finWait2, seenFinWait2 := s.enteredAt(events.StateFinWait2)
	peerFIN := time.Time{}
	first, second := s.timewaitPhases()
	switch {
	case !s.closing.peerFIN.IsZero():
		// Seen arriving: in FIN_WAIT1 it carried the ACK of ours (else
		// CLOSING, a simultaneous close).
		c.Shape = events.ShapeFourSegment
		if s.closing.peerFINState == events.StateFinWait1 {
			c.Shape = events.ShapeThreeSegment
		}
		peerFIN = s.closing.peerFIN
	case first != nil && first.State == events.StateFinWait2:
		// The ACK of our FIN came alone: it made a FIN_WAIT2 minisock.
		if second == nil {
			break // the peer's FIN never moved it to TIME_WAIT
		}
		c.Shape = events.ShapeFourSegment
		peerFIN, c.HalfCloseWithin = second.Start, s.closing.moveWithin
	case first != nil && seenFinWait2 && !finWait2.IsZero():
		// The peer's FIN made the TIME_WAIT socket from FIN_WAIT2: how long
		// after the ACK of ours tells whether one segment carried both.
		peerFIN = first.Start
		gap := first.Start.Sub(finWait2)
		c.Inferred = true
		if gap >= oneSegment {
			c.Shape = events.ShapeFourSegment
			c.InferredFrom = "FIN_WAIT2 lasting " + events.HumanDuration(gap) + " before the peer's FIN made the " +
				"TIME_WAIT socket: longer than the kernel takes over one segment (" + events.HumanDuration(oneSegment) + ")"
		} else {
			c.Shape = events.ShapeThreeSegment
			c.InferredFrom = "the TIME_WAIT socket beginning " + events.HumanDuration(gap) + " after FIN_WAIT2 (the ACK of " +
				"our FIN), as one segment carrying both makes it; a FIN sent right after a separate ACK looks the same " +
				"on tracepoints (the segment hooks tell them apart where the kernel allows fentry)"
		}
	}
	if !peerFIN.IsZero() && seenFinWait1 && !finWait1.IsZero() {
		c.HalfClose, c.HalfCloseKnown = peerFIN.Sub(finWait1), true
	}
}

// abortRule names what made this side reset its connection, as far as the
// RST's reason, the socket's options as it moved to CLOSE and the events
// around it tell, and the counter the kernel counted it in.
func (t *Tracker) abortRule(s *socket, c *events.Close, selfReset bool) {
	rst, options := s.closing.rstSent, s.closing.options
	switch {
	case rst.Reason == "TCP_ABORT_ON_CLOSE":
		c.Rule, c.Counter, c.SeenFrom = events.RuleUnreadData, "TcpExt.TCPAbortOnClose", "RST reason TCP_ABORT_ON_CLOSE"
	case rst.Reason == "TCP_ABORT_ON_MEMORY":
		c.Rule, c.Counter, c.SeenFrom = events.RuleOrphanMemory, "TcpExt.TCPAbortOnMemory", "RST reason TCP_ABORT_ON_MEMORY"
	case rst.Reason == "TCP_DISCONNECT_WITH_DATA":
		c.Rule, c.SeenFrom = events.RuleDisconnectUnsent, "RST reason TCP_DISCONNECT_WITH_DATA"
	case selfReset:
		c.Rule, c.Counter, c.Inferred = events.RuleDataAfterClose, "TcpExt.TCPAbortOnData", true
		c.InferredFrom = "tcp_reset() run on the socket just before its RST, as the kernel does for data arriving " +
			"after close()"
	case options.Linger2Negative, rst.Reason == "TCP_ABORT_ON_LINGER":
		// At close() in FIN_WAIT2 (its reason TCP_ABORT_ON_LINGER), or as
		// the ACK of our FIN arrived (TCP_ABORT_ON_DATA), each counted so.
		c.Rule, c.Counter = events.RuleLinger2, "TcpExt.TCPAbortOnData"
		c.SeenFrom = "RST reason TCP_ABORT_ON_LINGER"
		if options.Linger2Negative {
			c.SeenFrom = "TCP_LINGER2 < 0 read off the socket as it moved to CLOSE"
		}
		d, ok := between(s, events.StateFinWait2, events.StateClose)
		if rst.Reason == "TCP_ABORT_ON_LINGER" || rst.Reason == "" && ok && d >= oneSegment {
			c.Counter = "TcpExt.TCPAbortOnLinger"
		}
	case rst.Reason == "TCP_ABORT_ON_DATA" && options.Known:
		c.Rule, c.Counter, c.Inferred = events.RuleDataAfterClose, "TcpExt.TCPAbortOnData", true
		c.InferredFrom = "RST reason TCP_ABORT_ON_DATA as it left FIN_WAIT2 for CLOSE, with TCP_LINGER2 not below 0: " +
			"data (or an out-of-order FIN) came with the ACK of our FIN after close()"
	case rst.State == events.StateClose && (rst.Reason == "TCP_STATE" || rst.Reason == "" && s.closing.remoteZeroed):
		t.disconnectRule(s, c)
	case rst.Reason == "TCP_STATE" && rst.State != events.StateFinWait2:
		// In FIN_WAIT2 it may be the orphan's FIN_WAIT2 timer's as well.
		c.Rule, c.Inferred = events.RuleSocketDestroyed, true
		c.InferredFrom = "RST reason TCP_STATE sent in " + string(rst.State) + ", before the move to CLOSE: of the " +
			"kernel's TCP_STATE resets only tcp_abort()'s does that"
	case rst.Reason == "" && rst.State == events.StateClose && !s.closing.remoteZeroed && !options.LingerZero:
		if from := s.stateBeforeClose(); from == events.StateEstablished || from == events.StateCloseWait {
			c.Rule, c.Counter, c.Inferred = events.RuleUnreadData, "TcpExt.TCPAbortOnClose", true
			c.InferredFrom = "an RST sent in CLOSE, straight from " + string(from) + ", with the remote port intact " +
				"(kernels before 6.10 give RSTs no reason): close() with unread data moves the socket to CLOSE " +
				"before its RST, tcp_disconnect() zeroes the port"
		}
	}
}

// disconnectRule tells what made tcp_disconnect() reset s (its RST sent in
// CLOSE): close() destroys the socket with it, connect(AF_UNSPEC) does not,
// and a closing listener resets the connections not yet accepted so.
func (t *Tracker) disconnectRule(s *socket, c *events.Close) {
	why := "tcp_disconnect() (an RST sent in CLOSE"
	if c.ResetReason != "" {
		why += ", reason " + c.ResetReason
	}
	if s.closing.remoteZeroed {
		why += ", the remote port zeroed at the destroy"
	}
	why += ")"
	rst, options := s.closing.rstSent, s.closing.options
	destroyedWithIt := s.destroyedFull && s.fullEnd.Sub(rst.Time) < oneSegment
	child := len(s.phases) > 0 && s.phases[0].State == events.StateSynRecv
	c.Rule, c.Inferred = events.RuleDisconnect, true
	switch {
	case !destroyedWithIt:
		c.InferredFrom = why + ", and the socket not destroyed with it, as close() destroys it: connect(AF_UNSPEC) " +
			"(or its close() was not seen)"
	case child && !t.listened(s.header):
		c.InferredFrom = why + " with the socket destroyed at once, but its listener had closed, which resets the " +
			"connections not yet accepted so (close() with SO_LINGER {1, 0} does too)"
	case options.LingerZero:
		c.Rule, c.Counter, c.Inferred = events.RuleLingerZero, "TcpExt.TCPAbortOnData", false
		c.SeenFrom = "SO_LINGER {1, 0} read off the socket as it moved to CLOSE, " + why + " with the socket destroyed at once"
	case options.Known:
		c.InferredFrom = why + " with the socket destroyed at once, but without SO_LINGER {1, 0}: connect(AF_UNSPEC), " +
			"then close()"
	default:
		// A recording from before the options were read.
		c.Rule, c.Counter = events.RuleLingerZero, "TcpExt.TCPAbortOnData"
		c.InferredFrom = why + " with the socket destroyed at once: close() with SO_LINGER {1, 0}"
	}
}

// listened tells whether a listener is known on h's local side (its
// address, or its family's wildcard).
func (t *Tracker) listened(h events.Header) bool {
	_, ok := t.listenersAt(h)
	return ok
}
