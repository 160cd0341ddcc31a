package track

// TIME_WAIT sockets: their timer's start, restarts and substates, how they
// ended (expired, an RST, a SYN or connect() taking the 4-tuple over, their
// namespace purged), and sockets that got none (tcp_max_tw_buckets).

import (
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// successorWindow is how long after a TIME_WAIT socket is stopped early a
// new connection on its 4-tuple is taken as the reason: a handshake's time.
const successorWindow = 3 * time.Second

// overflowSeen is what a namespace held when a socket closed with no
// TIME_WAIT socket (see events.TimewaitOverflow).
type overflowSeen struct {
	timewaitSockets   int
	maxTWBuckets      int64
	maxTWBucketsKnown bool
}

// timewaits are the TIME_WAIT sockets tracked, and what may end them.
type timewaits struct {
	// byTuple are the sockets with a TIME_WAIT socket, by its 4-tuple;
	// inNetns, how many there are, by its namespace.
	byTuple tupleIndex
	inNetns map[uint32]int
	// stopped are TIME_WAIT sockets stopped early whose cause is not yet
	// known, by 4-tuple.
	stopped map[tuple]*socket
	// synAwaited are the births (LISTEN -> SYN_RECV) on the 4-tuple of one
	// of them that came without their SYN's numbers, which the child's
	// next move brings (a kernel that gives a child its identity before it
	// announces it, see the BPF births table).
	synAwaited map[tuple]events.StateChange
	// stoppedDue is when the first of them may be due to end (an
	// earlier bound is fine): until then no event needs to look.
	stoppedDue time.Time
	// peerlessRSTs are the last RSTs sent for no socket or by a listener
	// (for no connection of its own), by the sender's side.
	peerlessRSTs map[endpoint]*events.ResetSent
	// overflows are sockets destroyed after closing from FIN_WAIT2 or
	// CLOSING with no TIME_WAIT socket, until an RST shows up (an abort:
	// TCP_LINGER2 < 0) or long enough passed for it to be an overflow.
	overflows map[*socket]struct{}
	// rstWatch are TIME_WAIT sockets an RST for whose 4-tuple left a
	// traced peer: did it end them?
	rstWatch map[*socket]struct{}
}

// timewait is the TIME_WAIT socket that follows a socket.
type timewait struct {
	start     time.Time
	startSeen bool
	substate  events.State
	// stopped is when its timer was stopped early (zero while running).
	stopped time.Time
	// last is its rcv_nxt and ts_recent when it was stopped.
	last events.SynInfo
	// peerRST: the last RST seen leaving the peer for its 4-tuple.
	peerRST *events.ResetSent
	// cancel is the event that stopped its timer (while stopped is set).
	cancel events.TimewaitTimer
	header events.Header
	timewaitSeen
}

// timewaitSeen is what a TIME_WAIT socket was seen to take or do besides
// its timer: most take nothing, and their records keep no room for it.
type timewaitSeen struct {
	// synVerdictAt: when the kernel was last seen deciding (fexit) that a
	// SYN may take its 4-tuple over.
	synVerdictAt time.Time
	// lastSegment is the last segment other than an RST it was seen to get.
	lastSegment *events.TimewaitSegment
	// rstAnswerAt: when it was seen sending an RST itself (a SYN or data
	// reaching a FIN_WAIT2 minisock), with the RST's reason.
	rstAnswerAt     time.Time
	rstAnswerReason string
	// peerLastAck: a local peer's time in LAST_ACK on the mirrored
	// 4-tuple, noted while it is a FIN_WAIT2 minisock: it brackets when
	// the peer's FIN moved it to TIME_WAIT.
	peerLastAck lastAck
}

// notePeerlessRST remembers for a second an RST sent for no connection: it
// may be what ends a TIME_WAIT socket on the other side.
func (t *Tracker) notePeerlessRST(e *events.ResetSent) {
	if len(t.peerlessRSTs) > 1000 {
		for k, rst := range t.peerlessRSTs {
			if e.Time.Sub(rst.Time) > time.Second {
				delete(t.peerlessRSTs, k)
			}
		}
	}
	t.peerlessRSTs[endpoint{e.Netns, e.Local}] = e
}

// rstCanKill tells whether an RST freed after s's TIME_WAIT timer stopped
// can be what stopped it: not where a SYN was accepted just before, nor in
// substate TIME_WAIT under tcp_rfc1337 other than 0 (the kernel's test),
// which ignores RSTs (then the RST came later, e.g. for the new
// connection's SYN-ACK, and the stop is told as the other evidence allows).
func (t *Tracker) rstCanKill(s *socket) bool {
	if at := s.tw.synVerdictAt; !at.IsZero() && s.tw.stopped.Sub(at) >= 0 && s.tw.stopped.Sub(at) < synVerdictLag {
		return false
	}
	if s.tw.cancel.Substate == events.StateTimeWait {
		if v, ok := t.sysctls(s.tw.header.Netns).Int(sysctl.RFC1337); ok && v != 0 {
			return false
		}
	}
	return true
}

// concludeOverflows ends the stories of sockets destroyed with no TIME_WAIT
// socket and no RST long enough ago (all of them at the end of tracing):
// the namespace had no room for a TIME_WAIT socket.
func (t *Tracker) concludeOverflows(now time.Time, all bool) {
	for s := range t.overflows {
		if s.overflowFrom == "" || s.tw != nil { // a TIME_WAIT timer after all
			delete(t.overflows, s)
			continue
		}
		if !all && now.Sub(s.destroyedAt) <= resetGrace {
			continue
		}
		delete(t.overflows, s)
		o := &events.TimewaitOverflow{Header: s.header, State: s.overflowFrom,
			TimewaitSockets: s.overflowSeen.timewaitSockets,
			MaxTWBuckets:    s.overflowSeen.maxTWBuckets, MaxTWBucketsKnown: s.overflowSeen.maxTWBucketsKnown,
			InferredFrom: string(s.overflowFrom) + " -> CLOSE at " + s.overflowAt.Format(events.TimeLayout) +
				" with no TIME_WAIT socket armed, and no RST from or to the socket then or within " +
				resetGrace.String() + " of its destroy"}
		if all && now.Sub(s.destroyedAt) <= resetGrace {
			o.InferredFrom = string(s.overflowFrom) + " -> CLOSE at " + s.overflowAt.Format(events.TimeLayout) +
				" with no TIME_WAIT socket armed, and no RST from or to the socket up to the end of tracing"
		}
		// Its evidence ends with the destroy, after the transition.
		o.Time = s.destroyedAt
		t.out = append(t.out, o)
		s.end = events.EndTimewaitOverflow
		t.finish(s, s.destroyedAt, s.end)
	}
}

// watchPeerRST notes an RST sent for no connection (for no socket, or by a
// listener) to a TIME_WAIT socket's 4-tuple: the peer's answer to its ACK.
func (t *Tracker) watchPeerRST(e *events.ResetSent) {
	s := t.timewaitOn(tuple{netns: e.Netns, local: e.Remote, remote: e.Local})
	if s == nil || s.tw == nil || !s.tw.stopped.IsZero() {
		return
	}
	s.tw.peerRST = e
	t.rstWatch[s] = struct{}{}
}

// concludeRSTWatch reports the TIME_WAIT sockets that lived on after an RST
// for their 4-tuple left the peer (all: at the end of tracing, or at s's
// expiry when only is s).
func (t *Tracker) concludeRSTWatch(now time.Time, all bool, only *socket, ended events.EndCause) {
	for s := range t.rstWatch {
		if only != nil && s != only {
			continue
		}
		tw := s.tw
		if tw == nil || tw.peerRST == nil {
			delete(t.rstWatch, s)
			continue
		}
		if !tw.stopped.IsZero() {
			continue // stopped: its cause decides
		}
		alive := now.Sub(tw.peerRST.Time)
		if !all && only == nil && alive <= resetGrace {
			continue
		}
		delete(t.rstWatch, s)
		t.touched = append(t.touched, s) // nothing pending now: it may become a record
		rst := tw.peerRST
		tw.peerRST = nil
		ig := &events.TimewaitRSTIgnored{Header: tw.header, Substate: tw.substate, PeerRSTAt: rst.Time,
			PeerRSTReason: rst.Reason, PeerNoSocket: rst.NoSocket, AliveFor: alive, Ended: ended}
		ig.Time = now
		ig.Owner = s.header.Owner
		t.out = append(t.out, ig)
	}
}

func (t *Tracker) timewaitTimer(e *events.TimewaitTimer) {
	s := t.lookup(&e.Header)
	if s == nil {
		return
	}
	switch e.Action {
	case events.TimerStart:
		if s.tw == nil {
			t.startTimewait(s, timewait{start: e.Time, startSeen: true, substate: e.Substate, header: e.Header})
			t.enterTimewait(s, e)
			return
		}
		// A re-arm: the cancel before it was no early end.
		if !s.tw.stopped.IsZero() {
			t.unstop(tupleOf(s.tw.header))
			s.tw.stopped = time.Time{}
		}
		if e.Substate != s.tw.substate {
			// Re-armed into another wheel bucket: the move is seen as it
			// happens.
			mv := &events.TimewaitSubstate{Header: e.Header, Old: s.tw.substate, New: e.Substate,
				Timeout: e.Timeout, TimeoutKnown: e.TimeoutKnown, TimeKnown: true, SeenAt: e.Time,
				DerivedFrom: "its timer re-armed with the new substate"}
			mv.Owner = s.header.Owner
			t.out = append(t.out, mv)
			s.closing.moved(mv)
			s.tw.substate = e.Substate
			t.enterTimewait(s, e)
			return
		}
		restart := t.enters.next()
		*restart = events.TimewaitEnter{Header: e.Header, Substate: e.Substate,
			Timeout: e.Timeout, TimeoutKnown: e.TimeoutKnown, Restart: true}
		restart.Owner = s.header.Owner
		t.out = append(t.out, restart)
	case events.TimerExpire:
		if s.tw == nil {
			t.startTimewait(s, timewait{substate: e.Substate, header: e.Header})
			s.beforeTrace = s.beforeTrace || len(s.phases) == 0 && !s.historyDropped
		}
		t.substateSeen(s, e)
		if s.tw.peerRST != nil {
			t.concludeRSTWatch(e.Time, false, s, events.CauseExpired)
		}
		t.endTimewait(s, e.Time, events.TimewaitEnd{Cause: events.CauseExpired})
	case events.TimerCancel:
		if s.tw == nil {
			// Its timer's start not seen: its full socket handed over before.
			t.startTimewait(s, timewait{substate: e.Substate, header: e.Header})
			s.beforeTrace = s.beforeTrace || len(s.phases) == 0 && !s.historyDropped
			s.fullGone = true
		}
		s.tw.stopped = e.Time
		s.tw.last = e.Last
		// What it shows of the substate counts once the cancel is known to
		// be an end, not the first half of a re-arm (a start follows then).
		s.tw.cancel = *e
		if e.NetnsDying {
			t.endTimewait(s, e.Time, events.TimewaitEnd{Cause: events.CausePurged})
			return
		}
		// It answered a segment with an RST just before (same softirq):
		// the kernel kills a minisock that does (TCP_TW_RST).
		if at := s.tw.rstAnswerAt; !at.IsZero() && e.Time.Sub(at) >= 0 && e.Time.Sub(at) < synVerdictLag {
			t.endTimewait(s, e.Time, events.TimewaitEnd{Cause: events.CauseRSTAnswer,
				RSTAnswerReason: s.tw.rstAnswerReason})
			return
		}
		t.stopped[tupleOf(e.Header)] = s
		if due := e.Time.Add(successorWindow); t.stoppedDue.IsZero() || due.Before(t.stoppedDue) {
			t.stoppedDue = due
		}
	}
}

// timewaitLen is TCP_TIMEWAIT_LEN: the kernel re-arms a minisock's timer
// for it when the peer's FIN moves it from FIN_WAIT2 to TIME_WAIT.
const timewaitLen = 60 * time.Second

// substateSeen reports a substate move that the timer's expiry or cancel
// shows (tw_substate read then), which no timer event showed when it
// happened: the re-arm stayed in the same timer-wheel bucket.
func (t *Tracker) substateSeen(s *socket, e *events.TimewaitTimer) {
	tw := s.tw
	if e.Substate == tw.substate || tw.substate == "" {
		tw.substate = e.Substate
		return
	}
	mv := &events.TimewaitSubstate{Header: e.Header, Old: tw.substate, New: e.Substate, SeenAt: e.Time, Inferred: true}
	mv.Owner = s.header.Owner
	seen := "tw_substate read at the timer's expiry"
	if e.Action == events.TimerCancel {
		seen = "tw_substate read when the timer was stopped"
	}
	var lo, hi time.Time
	var from []string
	if e.Substate == events.StateTimeWait {
		mv.Timeout, mv.TimeoutKnown = timewaitLen, true
		if e.ExpiresKnown {
			// Re-armed for TCP_TIMEWAIT_LEN at the move: expires - 60 s,
			// a jiffy count, so to within a jiffy either way.
			armed := e.Time.Add(e.Expires - timewaitLen)
			lo, hi = armed.Add(-e.Tick), armed.Add(e.Tick)
			from = append(from, "the timer's expires minus TCP_TIMEWAIT_LEN (60 s): re-armed at the move, to within a jiffy ("+
				e.Tick.String()+") either way")
		}
	}
	// A local peer's LAST_ACK brackets it: its FIN went out after it entered
	// LAST_ACK, and our ACK of that FIN, sent after the move, took it to CLOSE.
	if la := tw.peerLastAck; !la.enter.IsZero() && !la.enter.After(e.Time) {
		plo, phi := la.enter, la.leave
		if phi.IsZero() || phi.After(e.Time) {
			phi = e.Time
		}
		switch {
		case lo.IsZero():
			lo, hi = plo, phi
			from = append(from, "the peer's LAST_ACK on the mirrored 4-tuple (its FIN left after it entered LAST_ACK; our ACK of it ended LAST_ACK)")
		case !plo.After(hi) && !phi.Before(lo):
			lo, hi = maxTime(lo, plo), minTime(hi, phi)
			from[len(from)-1] += "; narrowed by the peer's LAST_ACK on the mirrored 4-tuple"
		default:
			// The timer was armed again after the move, by a segment it
			// answered, silently: its expires does not date the move.
			lo, hi = plo, phi
			from = []string{"the peer's LAST_ACK on the mirrored 4-tuple (its FIN left after it entered LAST_ACK; our ACK of it " +
				"ended LAST_ACK); the timer's expires is later: a segment re-armed it after the move"}
		}
	} else if !lo.IsZero() {
		from[len(from)-1] += " (its last arming: had a later segment re-armed it within the same timer-wheel bucket, the move was earlier)"
	}
	if !lo.IsZero() {
		if tw.startSeen && lo.Before(tw.start) {
			lo = tw.start
		}
		if hi.After(e.Time) {
			hi = e.Time
		}
		if hi.Before(lo) {
			hi = lo
		}
		mv.Time, mv.TimeKnown, mv.Within = lo, true, hi.Sub(lo)
		mv.DerivedFrom = seen + "; its time from " + strings.Join(from, "; ")
	} else {
		mv.DerivedFrom = seen + "; when it moved is not known (the timer's expires was not reported)"
	}
	t.out = append(t.out, mv)
	s.closing.moved(mv)
	// The history: the old substate ends where the new one begins.
	if n := len(s.phases); n > 0 && s.phases[n-1].Timewait {
		last := &s.phases[n-1]
		start := time.Time{}
		if mv.TimeKnown {
			start = mv.Time
			last.Duration, last.DurationKnown = start.Sub(last.Start), !last.Start.IsZero()
		}
		s.phases = append(s.phases, events.Phase{State: e.Substate, Start: start, Timewait: true})
	}
	tw.substate = e.Substate
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// startTimewait gives s its TIME_WAIT socket, in space s keeps for it.
func (t *Tracker) startTimewait(s *socket, tw timewait) {
	if s.tw != nil {
		t.countTimewait(s.tw.header.Netns, -1)
	}
	t.countTimewait(tw.header.Netns, 1)
	s.twSpace = tw
	s.tw = &s.twSpace
	s.overflowFrom = ""
	t.indexTimewait(tupleOf(tw.header), s.header.Cookie)
}

// enterTimewait starts a TIME_WAIT phase (or a new substate of one).
func (t *Tracker) enterTimewait(s *socket, e *events.TimewaitTimer) {
	if n := len(s.phases); n > 0 && !s.phases[n-1].DurationKnown && !s.phases[n-1].Start.IsZero() {
		last := &s.phases[n-1]
		last.Duration, last.DurationKnown = e.Time.Sub(last.Start), true
	}
	s.phases = append(s.phases, events.Phase{State: e.Substate, Start: e.Time, Timewait: true})
	enter := t.enters.next()
	*enter = events.TimewaitEnter{Header: e.Header, Substate: e.Substate,
		Timeout: e.Timeout, TimeoutKnown: e.TimeoutKnown}
	enter.Owner = s.header.Owner // the kernel reports it only under --pid
	t.out = append(t.out, enter)
}

// endTimewait reports how s's TIME_WAIT socket ended, and s's story.
func (t *Tracker) endTimewait(s *socket, at time.Time, end events.TimewaitEnd) {
	tw := s.tw
	if !tw.stopped.IsZero() {
		t.unstop(tupleOf(tw.header))
		at = tw.stopped // it ended when its timer was stopped
		t.substateSeen(s, &tw.cancel)
	}
	end.Header = tw.header
	end.Time = at
	end.Owner = s.header.Owner
	end.Substate = tw.substate
	if tw.startSeen {
		end.Age, end.AgeKnown = at.Sub(tw.start), true
	} else {
		end.HistoryDropped = s.historyDropped
	}
	end.Incomplete = s.incomplete
	made := t.ends.next()
	*made = end
	t.out = append(t.out, made)
	if n := len(s.phases); n > 0 && s.phases[n-1].Timewait {
		last := &s.phases[n-1]
		last.Duration, last.DurationKnown = at.Sub(last.Start), !last.Start.IsZero()
	}
	t.unindexTimewait(tupleOf(tw.header), s.header.Cookie)
	delete(t.rstWatch, s)
	t.countTimewait(tw.header.Netns, -1)
	s.tw = nil
	s.end = events.EndTimewait(end.Cause)
	t.finish(s, at, s.end)
}

// synVerdictLag bounds the time from a SYN verdict to the timer stop it
// causes (the same softirq; generous for emulated CPUs).
const synVerdictLag = 10 * time.Millisecond

// synAccepted tells whether a SYN verdict stopped the timer: with no
// listener to take the SYN, the kernel answers it with an ACK instead, and
// the TIME_WAIT socket lives on.
func (tw *timewait) synAccepted() bool {
	lag := tw.stopped.Sub(tw.synVerdictAt)
	return !tw.synVerdictAt.IsZero() && !tw.stopped.IsZero() && lag >= 0 && lag < synVerdictLag
}

// expireStopped ends the TIME_WAIT sockets stopped early whose reason did
// not show up within the successor window.
func (t *Tracker) expireStopped(now time.Time) {
	if len(t.stopped) == 0 || !now.After(t.stoppedDue) {
		return
	}
	t.stoppedDue = time.Time{}
	for _, s := range t.stopped {
		if now.Sub(s.tw.stopped) <= successorWindow {
			if due := s.tw.stopped.Add(successorWindow); t.stoppedDue.IsZero() || due.Before(t.stoppedDue) {
				t.stoppedDue = due
			}
			continue
		}
		if birth, ok := t.synAwaited[tupleOf(s.tw.header)]; ok {
			// Its child never moved on to tell its SYN: accepted all the same.
			t.succeed(nil, &birth, events.CauseSynAccepted)
			continue
		}
		end := events.TimewaitEnd{Cause: events.CauseUnknown, Inferred: true,
			InferredFrom: "TIME_WAIT timer stopped early; no RST and no new connection on the 4-tuple followed within " + successorWindow.String()}
		switch {
		case s.tw.synAccepted() && s.tw.cancel.Substate != events.StateFinWait2:
			// Seen accepting a SYN whose connection never got established
			// (no final ACK): the SYN is all there is to show.
			end = events.TimewaitEnd{Cause: events.CauseSynAccepted, Last: s.tw.last}
			if seg := s.tw.lastSegment; seg != nil && seg.Flags&tcpSYN != 0 {
				end.Syn = events.SynInfo{Seq: seg.Seq, SeqKnown: true}
				end.Last.Seq, end.Last.SeqKnown = seg.RcvNxt, true
			}
		case t.netnsGone != nil && t.netnsGone(s.tw.header.Netns):
			end.Cause = events.CausePurged
			end.InferredFrom = "TIME_WAIT timer stopped early, and its network namespace no longer exists"
		}
		t.endTimewait(s, now, end)
	}
}

// unstop forgets the TIME_WAIT socket stopped early on 4-tuple k (it ended,
// or its timer was armed again), and the birth waiting on it, if any.
func (t *Tracker) unstop(k tuple) {
	delete(t.stopped, k)
	delete(t.synAwaited, k)
}

// countTimewait counts a TIME_WAIT socket in or out of the namespace's
// count.
func (t *Tracker) countTimewait(netns uint32, n int) {
	if t.inNetns[netns] += n; t.inNetns[netns] == 0 {
		delete(t.inNetns, netns)
	}
}

// timewaitsIn counts the TIME_WAIT sockets tracked in a network namespace.
func (t *Tracker) timewaitsIn(netns uint32) int { return t.inNetns[netns] }
