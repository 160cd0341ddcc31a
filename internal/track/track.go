// Package track rebuilds each socket's story from the kernel's events: its
// states and how long each lasted, its TIME_WAIT life and how that ended,
// who closed first, and how the socket ended. It is pure Go: it runs the
// same on live events and on recorded ones.
package track

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// DefaultMaxSockets bounds the histories kept at once: a busy server's
// TIME_WAIT sockets, at some 250 bytes each (BenchmarkMemory; an open
// socket's history takes 2 KB).
const DefaultMaxSockets = 1000000

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// Tracker turns kernel events into socket stories. Not safe for concurrent
// use. Its state is grouped by concern, each in the file of its logic.
type Tracker struct {
	netnsGone func(netns uint32) bool
	// sysctlSource answers for the settings the kernel applied where a
	// socket has none of its own.
	sysctlSource func(netns uint32) (sysctl.Snapshot, error)
	store        // the histories (store.go)
	recordShares // what the histories kept as records share (compact.go)
	timewaits    // TIME_WAIT sockets, and sockets that got none (timewait.go)
	// listeners by where they listen, for the owner of their children
	// (listeners.go).
	listeners map[endpoint]map[uint32]listening
	output
}

// output is what a call of the tracker returns.
type output struct {
	out []events.Event
	// The events made most often (a few per connection), reused from one
	// call to the next like out: allocating them was most of the
	// tracker's garbage under connection churn.
	summaries reused[events.Summary]
	enters    reused[events.TimewaitEnter]
	ends      reused[events.TimewaitEnd]
}

// reused hands out objects that stay valid until the next call of the
// tracker (see Process).
type reused[T any] struct {
	items []*T
	used  int
}

// next returns an object to fill in, with what it held before.
func (r *reused[T]) next() *T {
	if r.used == len(r.items) {
		r.items = append(r.items, new(T))
	}
	r.used++
	return r.items[r.used-1]
}

// reset makes every object available again, at the start of a call.
func (t *Tracker) reset() {
	t.out = t.out[:0]
	t.summaries.used, t.enters.used, t.ends.used = 0, 0, 0
}

// tuple is a connection's identity across sockets: a TIME_WAIT socket and
// the connection that replaces it share it.
type tuple struct {
	netns         uint32
	local, remote netip.AddrPort
}

// lastAck is a socket's time in LAST_ACK (leave zero while in it).
type lastAck struct{ enter, leave time.Time }

type socket struct {
	entry *tracked // nil once forgotten or kept as a record
	// overflowFrom: it closed from this state (FIN_WAIT2, CLOSING) with no
	// TIME_WAIT socket and no RST yet, at overflowAt; destroyedAt once
	// destroyed (its story waits in Tracker.overflows).
	overflowFrom events.State
	overflowAt   time.Time
	// overflowSeen is what the socket's namespace held when it closed so.
	overflowSeen overflowSeen
	destroyedAt  time.Time
	header       events.Header
	phases       []events.Phase
	closedBy     events.Closer
	retransmits  int
	resetsSent   int
	resetsRecv   int
	beforeTrace  bool
	// historyDropped: an earlier history of it was dropped (MaxSockets).
	historyDropped bool
	// incomplete: records were lost while it was tracked.
	incomplete bool
	// synSentPort: the local port it had when it entered SYN_SENT (a port
	// bound before connect()).
	synSentPort uint16
	lastReset   time.Time
	tw          *timewait // nil, or twSpace
	twSpace     timewait
	// fullGone: the full socket is gone (destroyed, or never seen), and
	// only its TIME_WAIT socket lives on: then it is kept as a record.
	fullGone bool
	end      events.End // how it ended, once known
	timers   timers
	closing  closing
	// born: its first state change was seen (from CLOSE or its
	// listener), at bornAt; destroyedFull: the full socket's destroy, when
	// its counters were read.
	born, destroyedFull bool
	bornAt, fullEnd     time.Time
	handshake           events.Handshake
	counters            events.Counters
	handshakeKnown      bool
	countersKnown       bool
}

// Options configure a tracker; zero values are fine.
type Options struct {
	// MaxSockets bounds the histories kept (DefaultMaxSockets if 0).
	MaxSockets int
	// NetnsGone tells whether a network namespace no longer exists: a
	// TIME_WAIT socket stopped early for no visible reason in a namespace
	// that is gone was purged with it.
	NetnsGone func(netns uint32) bool
	// Sysctls returns a namespace's sysctls, for the settings the kernel
	// applied where a socket has none of its own.
	Sysctls func(netns uint32) (sysctl.Snapshot, error)
}

// New returns a tracker.
func New(opts Options) *Tracker {
	if opts.MaxSockets <= 0 {
		opts.MaxSockets = DefaultMaxSockets
	}
	t := &Tracker{
		netnsGone:    opts.NetnsGone,
		sysctlSource: opts.Sysctls,
		store:        store{maxSockets: opts.MaxSockets, sockets: map[uint64]*tracked{}, dropped: map[uint64]struct{}{}},
		recordShares: recordShares{owners: map[events.Owner]*sharedOwner{}, extras: map[uint64]recordExtras{}},
		timewaits: timewaits{stopped: map[tuple]*socket{}, synAwaited: map[tuple]events.StateChange{}, peerlessRSTs: map[endpoint]*events.ResetSent{},
			byTuple: newTupleIndex(), inNetns: map[uint32]int{}, overflows: map[*socket]struct{}{},
			rstWatch: map[*socket]struct{}{}},
		listeners: map[endpoint]map[uint32]listening{},
	}
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	return t
}

// Process takes one kernel event and returns what to show: the event itself
// (unless it is one of the raw TIME_WAIT timer events, which only feed the
// tracker), then whatever it completes. The slice, and the summaries and
// TIME_WAIT enters and ends in it, are reused by the next call: use them
// before. It keeps no StateChange, Destroy or TimewaitTimer it is given: the
// decoder reuses those.
func (t *Tracker) Process(ev events.Event) []events.Event {
	t.reset()
	now := ev.Head().Time
	t.expireStopped(now)
	if len(t.overflows) > 0 {
		t.concludeOverflows(now, false)
	}
	if len(t.rstWatch) > 0 {
		t.concludeRSTWatch(now, false, nil, "")
	}
	switch e := ev.(type) {
	case *events.StateChange:
		t.out = append(t.out, ev)
		t.stateChange(e)
	case *events.Retransmit:
		t.out = append(t.out, ev)
		if e.State == events.StateNewSynRecv && e.Owner.PID == 0 {
			e.Owner = t.listenerOwner(e.Header) // a request sock's is its listener's
		}
		if s := t.lookup(&e.Header); s != nil {
			s.retransmits++
		}
		// A request sock has no timer of its own to see: its SYN-ACK
		// retransmission is its retransmission timeout.
		if e.State == events.StateNewSynRecv {
			t.out = append(t.out, &events.RTO{Header: e.Header, Kind: events.RTOSynAck})
		}
	case *events.ResetSent:
		t.out = append(t.out, ev)
		if e.NoSocket || e.State == events.StateListen {
			t.notePeerlessRST(e)
			t.watchPeerRST(e)
		} else if s := t.lookup(&e.Header); s != nil {
			s.resetsSent++
			s.lastReset = e.Time
			s.closing.resetSent(e)
			t.resetSeen(s)
			if s.tw != nil && e.State == events.StateTimeWait {
				s.tw.rstAnswerAt, s.tw.rstAnswerReason = e.Time, e.Reason
			}
		}
	case *events.ResetReceived:
		t.out = append(t.out, ev)
		if s := t.lookup(&e.Header); s != nil {
			s.resetsRecv++
			s.lastReset = e.Time
			s.closing.rstReceived = e
			t.resetSeen(s)
		}
	case *events.Destroy:
		t.out = append(t.out, ev)
		remoteZeroed := t.keepTuple(&e.Header)
		if s := t.lookup(&e.Header); s != nil {
			s.destroyedFull, s.fullEnd = true, e.Time
			s.closing.remoteZeroed = remoteZeroed
			if e.CountersKnown {
				s.counters, s.countersKnown = e.Counters, true
			}
			t.endZeroWindow(s, s.header, e.Time, "closed")
			switch {
			case s.tw == nil && s.overflowFrom != "":
				// An abort's RST may still follow (it does after the
				// destroy when the ACK of our FIN found TCP_LINGER2 < 0).
				s.destroyedAt = e.Time
				t.overflows[s] = struct{}{}
			case s.tw == nil:
				t.finish(s, e.Time, endOf(s))
			default:
				s.fullGone = true
			}
		}
	case *events.Snapshot:
		t.out = append(t.out, ev)
		t.snapshot(e)
	case *events.TimewaitTimer:
		t.timewaitTimer(e)
	case *events.TimewaitSegment:
		t.out = append(t.out, ev)
		if s := t.lookup(&e.Header); s != nil && s.tw != nil {
			// Still there to take a later segment, it outlived any SYN
			// before: with no listener, the kernel answered it with an ACK.
			s.tw.synVerdictAt = time.Time{}
			switch e.Verdict {
			case "SYN":
				s.tw.synVerdictAt = e.Time
			case "RST": // it answers with an RST, and the kernel kills it (TCP_TW_RST)
				if s.tw.rstAnswerAt.IsZero() || e.Time.Sub(s.tw.rstAnswerAt) > synVerdictLag {
					s.tw.rstAnswerAt, s.tw.rstAnswerReason = e.Time, ""
				}
			}
			// What it answered (not an RST): a late segment, if an RST follows.
			if e.Flags&tcpRST == 0 {
				s.tw.lastSegment = e
			}
			s.closing.timewaitSegment(e)
		}
	case *events.Segment:
		t.out = append(t.out, ev)
		if s := t.lookup(&e.Header); s != nil {
			s.closing.segment(e)
		}
	case *events.TCPTimer:
		t.tcpTimer(e)
	case *events.WindowOpen:
		t.windowOpen(e)
	case *events.TimewaitRST:
		if s := t.lookup(&e.Header); s != nil && s.tw != nil && !s.tw.stopped.IsZero() && t.rstCanKill(s) {
			end := events.TimewaitEnd{Cause: events.CauseRST}
			// Was it the peer's RST, sent for a connection it no longer has
			// (for no socket, or by its listener)?
			rst, ok := t.peerlessRSTs[endpoint{e.Netns, s.tw.header.Remote}]
			if ok && e.Time.Sub(rst.Time) < time.Second && (rst.State == events.StateListen || rst.Remote == s.tw.header.Local) {
				end.PeerRST, end.PeerRSTReason = true, rst.Reason
			}
			end.LateSegment = s.tw.lastSegment
			t.endTimewait(s, e.Time, end)
		}
	default:
		t.out = append(t.out, ev)
	}
	t.settle()
	return t.out
}

// Waiting tells whether a Tick could change anything: TIME_WAIT sockets
// stopped early are waiting for their reason.
func (t *Tracker) Waiting() bool {
	return len(t.stopped) > 0 || len(t.overflows) > 0 || len(t.rstWatch) > 0
}

// Tick lets time pass when no events come: TIME_WAIT sockets stopped early
// with no reason seen within the successor window end as "unknown".
func (t *Tracker) Tick(now time.Time) []events.Event {
	t.reset()
	t.expireStopped(now)
	t.concludeOverflows(now, false)
	t.concludeRSTWatch(now, false, nil, "")
	t.settle()
	return t.out
}

// resetGrace is how long after a socket's destroy (or a peer's RST) an RST
// of the same softirq is still awaited: generous for emulated CPUs and a
// backlogged ring.
const resetGrace = time.Second

// resetSeen: an RST of s came, so its close from FIN_WAIT2 without a
// TIME_WAIT socket was an abort (TCP_LINGER2 < 0), not an overflow.
func (t *Tracker) resetSeen(s *socket) {
	if s.overflowFrom == "" {
		return
	}
	s.overflowFrom = ""
	s.end = events.EndReset // the abort's RST, just after the close
	if _, ok := t.overflows[s]; ok {
		delete(t.overflows, s)
		t.finish(s, s.destroyedAt, endOf(s))
	}
}

// Flush ends every story still open (at the end of tracing).
func (t *Tracker) Flush(now time.Time) []events.Event {
	t.reset()
	t.expireStopped(now.Add(successorWindow))
	t.concludeOverflows(now, true)
	t.concludeRSTWatch(now, true, nil, "")
	for e := t.lru.next; e != &t.lru; {
		next := e.next
		s := t.fullOf(e)
		t.endZeroWindow(s, s.header, now, "tracing_stopped")
		end := events.EndOpen
		if s.overConnection() {
			end = endOf(s)
		}
		t.finish(s, now, end)
		e = next
	}
	t.settle()
	return t.out
}

func tupleOf(h events.Header) tuple {
	return tuple{netns: h.Netns, local: h.Local, remote: h.Remote}
}

func (t *Tracker) stateChange(e *events.StateChange) {
	switch {
	case e.New == events.StateListen:
		t.listen(e.Header)
	case e.Old == events.StateListen && e.New == events.StateClose:
		t.unlisten(e.Header)
	case e.Old == events.StateListen && e.Owner.PID == 0:
		e.Owner = t.listenerOwner(e.Header) // a new child
	}
	if e.New == events.StateLastAck || e.Old == events.StateLastAck {
		t.noteLastAck(e)
	}
	s := t.lookup(&e.Header)
	if s == nil {
		return
	}
	if e.New == events.StateClose {
		s.closing.options = e.Options
	}
	if p := s.lastFullPhase(); !e.PrevStateKnown && p != nil && p.State == e.Old && !p.Start.IsZero() {
		// Without --pid the kernel keeps no state clock: the previous
		// transition seen is when the state began (unless one was lost).
		e.PrevState, e.PrevStateKnown = e.Time.Sub(p.Start), true
	}
	// The full socket closing after it handed over to its TIME_WAIT socket
	// (whose timer is armed first): the story goes on there.
	if s.tw != nil && e.New == events.StateClose {
		return
	}
	if e.HandshakeKnown {
		s.handshake, s.handshakeKnown = e.Handshake, true
	}
	if len(s.phases) == 0 {
		// A socket's life starts in CLOSE; a child's with its listener.
		s.beforeTrace = e.Old != events.StateClose && e.Old != events.StateListen && !s.historyDropped
		s.born, s.bornAt = !s.beforeTrace && !s.historyDropped, e.Time
		s.phases = append(s.phases, events.Phase{State: e.Old, Start: e.Time.Add(-e.PrevState),
			Duration: e.PrevState, DurationKnown: e.PrevStateKnown})
		if e.Old == events.StateListen && e.New == events.StateSynRecv {
			s.phases = s.phases[:0] // the listener's time is not the child's
		}
	} else {
		if last := &s.phases[len(s.phases)-1]; e.PrevStateKnown {
			last.Duration, last.DurationKnown = e.PrevState, true
		}
	}
	s.phases = append(s.phases, events.Phase{State: e.New, Start: e.Time})

	switch {
	case e.New == events.StateSynSent:
		s.synSentPort = e.Local.Port()
	case e.New == events.StateFinWait1 && s.closedBy == "":
		s.closedBy = events.CloserLocal
	case e.New == events.StateCloseWait && s.closedBy == "":
		s.closedBy = events.CloserPeer
	case e.New == events.StateClose && s.closedBy == "" && !s.lastReset.IsZero():
		s.closedBy = events.CloserReset
	}
	// Whoever closed first, an RST just before CLOSE is how it ended.
	if e.New == events.StateClose && s.end == "" && !s.lastReset.IsZero() && e.Time.Sub(s.lastReset) < time.Second {
		s.end = events.EndReset
	}

	// A new connection on a 4-tuple whose TIME_WAIT socket was just stopped
	// is why it was stopped: told once its SYN is known.
	k := tupleOf(e.Header)
	switch {
	case e.Old == events.StateListen && e.New == events.StateSynRecv:
		// Its end waits for the SYN (see synAwaited) where there is one to end.
		if t.succeeded(k) != nil && !e.Syn.SeqKnown && !e.Syn.TSValKnown {
			t.synAwaited[k] = *e
			break
		}
		t.succeed(s, e, events.CauseSynAccepted)
	case e.Old == events.StateSynRecv && len(t.synAwaited) > 0:
		if birth, ok := t.synAwaited[k]; ok && birth.Cookie == e.Cookie {
			birth.Syn = e.Syn
			t.succeed(s, &birth, events.CauseSynAccepted)
		}
	case e.Old == events.StateSynSent && e.New == events.StateEstablished:
		t.succeed(s, e, events.CauseConnectReuse)
	}

	// tcp_time_wait() arms the TIME_WAIT socket's timer before it closes
	// the full socket: closing from FIN_WAIT2 or CLOSING without one, and
	// not because of an RST, means none could be made.
	if e.New == events.StateClose && (e.Old == events.StateFinWait2 || e.Old == events.StateClosing) &&
		s.tw == nil && (s.lastReset.IsZero() || e.Time.Sub(s.lastReset) > time.Second) {
		// Or the TCP_LINGER2 < 0 abort, whose RST comes after the close
		// (and after the destroy): concluded at the destroy at the earliest.
		s.overflowFrom, s.overflowAt = e.Old, e.Time
		s.overflowSeen = overflowSeen{timewaitSockets: t.timewaitsIn(e.Netns)}
		s.overflowSeen.maxTWBuckets, s.overflowSeen.maxTWBucketsKnown = t.sysctls(e.Netns).Int(sysctl.MaxTWBuckets)
	}
}

// succeeded is the TIME_WAIT socket stopped early on k that a new
// connection on k can have ended, or nil: not a FIN_WAIT2 minisock, which
// neither accepts a SYN (it answers with an RST) nor lets connect() reuse
// its 4-tuple (tcp_twsk_unique).
func (t *Tracker) succeeded(k tuple) *socket {
	if tw, ok := t.stopped[k]; ok && tw.tw.cancel.Substate != events.StateFinWait2 {
		return tw
	}
	return nil
}

// succeed ends the TIME_WAIT socket just stopped on e's 4-tuple, if any,
// for the connection of e: accepted (cause syn_accepted, e its birth,
// carrying its SYN) or made by connect() (connect_reuse, s its socket).
func (t *Tracker) succeed(s *socket, e *events.StateChange, cause events.EndCause) {
	tw := t.succeeded(tupleOf(e.Header))
	if tw == nil {
		return
	}
	end := events.TimewaitEnd{Cause: cause, Inferred: true, Successor: e.Cookie, Syn: e.Syn, Last: tw.tw.last,
		InferredFrom: "TIME_WAIT timer stopped early, then a connection on the same 4-tuple was accepted (cookie " +
			strconv.FormatUint(e.Cookie, 10) + ")"}
	if tw.tw.synAccepted() {
		end.Inferred = false
		end.InferredFrom = ""
	}
	if cause == events.CauseConnectReuse {
		end.SuccessorBoundPort = s.synSentPort != 0
		end.InferredFrom = "TIME_WAIT timer stopped early, then connect() on the same 4-tuple (cookie " +
			strconv.FormatUint(e.Cookie, 10) + ")"
	}
	t.endTimewait(tw, e.Time, end)
}

// noteLastAck notes a socket entering and leaving LAST_ACK on the TIME_WAIT
// socket (a FIN_WAIT2 minisock) of the mirrored 4-tuple, if any.
func (t *Tracker) noteLastAck(e *events.StateChange) {
	s := t.timewaitOn(tuple{netns: e.Netns, local: e.Remote, remote: e.Local})
	if s == nil || s.tw == nil {
		return
	}
	la := &s.tw.peerLastAck
	switch {
	case e.New == events.StateLastAck && s.tw.substate == events.StateFinWait2:
		*la = lastAck{enter: e.Time}
	case e.Old == events.StateLastAck && e.New == events.StateClose && !la.enter.IsZero() && la.leave.IsZero():
		la.leave = e.Time
	}
}

// snapshot starts the history of a socket that existed before tracing.
func (t *Tracker) snapshot(e *events.Snapshot) {
	if e.State == events.StateListen {
		t.listen(e.Header)
	}
	s := t.lookup(&e.Header)
	if s == nil || len(s.phases) > 0 {
		return
	}
	s.beforeTrace = true
	if e.State == events.StateTimeWait {
		t.startTimewait(s, timewait{substate: e.Substate, header: e.Header})
		s.fullGone = true
		s.phases = append(s.phases, events.Phase{State: e.Substate, Timewait: true})
		return
	}
	s.phases = append(s.phases, events.Phase{State: e.State})
}
