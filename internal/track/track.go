// Package track rebuilds each socket's story from the kernel's events: its
// states and how long each lasted, its TIME_WAIT life and how that ended,
// who closed first, and how the socket ended. It is pure Go: it runs the
// same on live events and on recorded ones.
package track

import (
	"net/netip"
	"strconv"
	"strings"
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

// successorWindow is how long after a TIME_WAIT socket is stopped early a
// new connection on its 4-tuple is taken as the reason: a handshake's time.
const successorWindow = 3 * time.Second

// Tracker turns kernel events into socket stories. Not safe for concurrent use.
type Tracker struct {
	maxSockets int
	netnsGone  func(netns uint32) bool
	// sysctlSource answers for the settings the kernel applied where a
	// socket has none of its own.
	sysctlSource func(netns uint32) (sysctl.Snapshot, error)
	sockets      map[uint64]*tracked // by cookie
	// lru runs from the least recently active socket (lru.next) to the
	// most (lru.prev), through each one's own links: a socket a connection
	// is too many to allocate a list element each.
	lru     tracked
	evicted uint64
	// dropped holds the cookies of the histories evicted, until their
	// sockets show up again (at their end at the latest): what they tell
	// then does not start with the socket.
	dropped map[uint64]struct{}
	// free holds forgotten sockets and sockets kept as records now, to be
	// reused with their phases' space; freeTracked, the entries of
	// forgotten sockets, with their stories' space.
	free        []*socket
	freeTracked []*tracked
	// last is the socket full found last.
	last *socket
	// touched are the sockets an event looked up or expanded: once it is
	// processed, those that are only a TIME_WAIT socket become records.
	touched []*socket
	// What records share: their owners (lastShared, the one shared last),
	// the states their histories hold (by index), the time their times
	// count from (see instant).
	owners        map[events.Owner]*sharedOwner
	lastShared    *sharedOwner
	states        []events.State
	epoch         time.Time
	epochUnixNano int64
	// encoded is a story being encoded, before it goes to its record;
	// extras, the extras of records, by cookie.
	encoded []byte
	extras  map[uint64]recordExtras
	// stopped are TIME_WAIT sockets stopped early whose cause is not yet
	// known, by 4-tuple.
	stopped map[tuple]*socket
	// stoppedDue is when the first of them may be due to end (an
	// earlier bound is fine): until then no event needs to look.
	stoppedDue time.Time
	// peerlessRSTs are the last RSTs sent for no socket or by a listener
	// (for no connection of its own), by the sender's side.
	peerlessRSTs map[endpoint]*events.ResetSent
	// listeners by where they listen, for the owner of their children.
	listeners map[endpoint]map[uint32]listening
	// timewaits are the sockets with a TIME_WAIT socket, by its 4-tuple;
	// timewaitCounts, how many there are, by its namespace.
	timewaits      tupleIndex
	timewaitCounts map[uint32]int
	// overflows are sockets destroyed after closing from FIN_WAIT2 or
	// CLOSING with no TIME_WAIT socket, until an RST shows up (an abort:
	// TCP_LINGER2 < 0) or long enough passed for it to be an overflow.
	overflows map[*socket]struct{}
	// rstWatch are TIME_WAIT sockets an RST for whose 4-tuple left a
	// traced peer: did it end them?
	rstWatch map[*socket]struct{}
	out      []events.Event
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

// overflowSeen is what a namespace held when a socket closed with no
// TIME_WAIT socket (see events.TimewaitOverflow).
type overflowSeen struct {
	timewaitSockets   int
	maxTWBuckets      int64
	maxTWBucketsKnown bool
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
		maxSockets:     opts.MaxSockets,
		netnsGone:      opts.NetnsGone,
		sysctlSource:   opts.Sysctls,
		sockets:        map[uint64]*tracked{},
		owners:         map[events.Owner]*sharedOwner{},
		extras:         map[uint64]recordExtras{},
		stopped:        map[tuple]*socket{},
		peerlessRSTs:   map[endpoint]*events.ResetSent{},
		listeners:      map[endpoint]map[uint32]listening{},
		timewaits:      newTupleIndex(),
		timewaitCounts: map[uint32]int{},
		overflows:      map[*socket]struct{}{},
		rstWatch:       map[*socket]struct{}{},
		dropped:        map[uint64]struct{}{},
	}
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	return t
}

// listening counts the listening sockets of one owner on an endpoint. A
// listener's cookie is often 0, so listeners are known by where they
// listen, by owner (PID; 0 unknown). Counts may run high (a listener both
// in the snapshot and seen listening, a close lost with the ring full):
// then an owner that left still counts, and a child whose listener's owner
// cannot be told has none, rather than a wrong one.
type listening struct {
	owner events.Owner
	n     int
}

// listenerKey is where a listener listens; one still without a port
// (listen() without bind() picks it after the transition) is not noted.
func listenerKey(h events.Header) (endpoint, bool) {
	return endpoint{h.Netns, h.Local}, h.Local.Port() != 0
}

// listen notes a listening socket, from its LISTEN transition or snapshot.
func (t *Tracker) listen(h events.Header) {
	key, ok := listenerKey(h)
	if !ok {
		return
	}
	byOwner := t.listeners[key]
	if byOwner == nil {
		byOwner = map[uint32]listening{}
		t.listeners[key] = byOwner
	}
	l := byOwner[h.Owner.PID]
	l.owner = h.Owner
	l.n++
	byOwner[h.Owner.PID] = l
}

// unlisten notes that a listening socket closed.
func (t *Tracker) unlisten(h events.Header) {
	key, _ := listenerKey(h)
	byOwner := t.listeners[key]
	pid := h.Owner.PID
	if _, ok := byOwner[pid]; !ok && pid == 0 && len(byOwner) == 1 {
		for only := range byOwner { // its owner not known: the only one there
			pid = only
		}
	}
	l, ok := byOwner[pid]
	if !ok {
		return
	}
	if l.n--; l.n > 0 {
		byOwner[pid] = l
		return
	}
	delete(byOwner, pid)
	if len(byOwner) == 0 {
		delete(t.listeners, key)
	}
}

// listenersAt are the listeners, by owner, a child or request sock on h's
// local side came from: by its local address, then by the wildcard address
// of its family.
func (t *Tracker) listenersAt(h events.Header) (map[uint32]listening, bool) {
	l, ok := t.listeners[endpoint{h.Netns, h.Local}]
	if !ok {
		wildcard := netip.IPv4Unspecified()
		if h.Local.Addr().Is6() {
			wildcard = netip.IPv6Unspecified()
		}
		l, ok = t.listeners[endpoint{h.Netns, netip.AddrPortFrom(wildcard, h.Local.Port())}]
	}
	return l, ok
}

// listenerOwner is the owner of the listener a child or request sock came
// from; unknown if the listeners there belong to several processes.
func (t *Tracker) listenerOwner(h events.Header) events.Owner {
	l, ok := t.listenersAt(h)
	if !ok || len(l) != 1 {
		return events.Owner{}
	}
	for _, only := range l {
		return only.owner
	}
	return events.Owner{}
}

// endpoint is one side of a connection in a namespace.
type endpoint struct {
	netns uint32
	addr  netip.AddrPort
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

// Evicted is how many histories were dropped to stay within the limit.
func (t *Tracker) Evicted() uint64 { return t.evicted }

// Tracked is how many sockets have a history now.
func (t *Tracker) Tracked() int { return len(t.sockets) }

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

// lookup finds the socket of an event, creating its history if new. An
// event the kernel sent without an owner gets the socket's: the kernel knows
// a socket's owner only in its owner's context (and keeps it only for --pid).
func (t *Tracker) lookup(h *events.Header) *socket {
	if h.Cookie == 0 {
		return nil
	}
	if s := t.full(h.Cookie); s != nil {
		t.touched = append(t.touched, s)
		if t.lru.prev != s.entry {
			t.unlink(s.entry)
			t.pushNewest(s.entry)
		}
		if h.Owner.PID != 0 {
			s.header.Owner = h.Owner
		} else {
			h.Owner = s.header.Owner
		}
		if h.Local.Port() != 0 {
			s.header.Local, s.header.Remote = h.Local, h.Remote
		}
		return s
	}
	if t.Tracked() >= t.maxSockets {
		oldest := t.lru.next
		t.dropped[oldest.cookie] = struct{}{}
		t.forget(t.fullOf(oldest))
		t.evicted++
	}
	s := t.newSocket(*h)
	if _, ok := t.dropped[h.Cookie]; ok {
		delete(t.dropped, h.Cookie)
		s.historyDropped = true
	}
	e := t.newTracked()
	e.cookie, e.full, s.entry = h.Cookie, s, e
	t.sockets[h.Cookie] = e
	t.pushNewest(e)
	t.touched = append(t.touched, s)
	t.last = s
	return s
}

// full is the full socket of a tracked cookie, its record expanded if it
// has one; nil if the cookie is not tracked.
func (t *Tracker) full(cookie uint64) *socket {
	// A socket's events come in runs (its handover to its TIME_WAIT socket
	// is three).
	if s := t.last; s != nil && s.entry != nil && s.header.Cookie == cookie {
		return s
	}
	e := t.sockets[cookie]
	if e == nil {
		return nil
	}
	t.last = t.fullOf(e)
	return t.last
}

// fullOf is e's full socket, its record expanded if need be.
func (t *Tracker) fullOf(e *tracked) *socket {
	if e.full != nil {
		return e.full
	}
	return t.expand(e)
}

// newSocket starts the history of the socket of h, in a forgotten
// socket's space if there is one.
func (t *Tracker) newSocket(h events.Header) *socket {
	var s *socket
	if n := len(t.free); n > 0 {
		s = t.free[n-1]
		t.free = t.free[:n-1]
		*s = socket{header: h, phases: s.phases[:0]}
	} else {
		s = &socket{header: h, phases: make([]events.Phase, 0, 8)}
	}
	return s
}

// forget drops s's history; s is reused for another socket.
func (t *Tracker) forget(s *socket) {
	e := s.entry
	if e == nil {
		return
	}
	t.unlink(e)
	delete(t.sockets, e.cookie)
	t.freeTracked = append(t.freeTracked, e.emptied())
	s.entry = nil
	if s.tw != nil && !s.tw.stopped.IsZero() {
		delete(t.stopped, tupleOf(s.tw.header))
	}
	if s.tw != nil {
		t.unindexTimewait(tupleOf(s.tw.header), s.header.Cookie)
		t.countTimewait(s.tw.header.Netns, -1)
	}
	delete(t.overflows, s)
	delete(t.rstWatch, s)
	t.free = append(t.free, s)
}

// pushNewest puts e at the most recently active end of the lru.
func (t *Tracker) pushNewest(e *tracked) {
	e.prev, e.next = t.lru.prev, &t.lru
	t.lru.prev.next = e
	t.lru.prev = e
}

func (t *Tracker) unlink(e *tracked) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
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
	// is why it was stopped.
	if (e.Old == events.StateListen && e.New == events.StateSynRecv) ||
		(e.Old == events.StateSynSent && e.New == events.StateEstablished) {
		// A FIN_WAIT2 minisock neither accepts a SYN (it answers with an
		// RST) nor lets connect() reuse its 4-tuple (tcp_twsk_unique).
		if tw, ok := t.stopped[tupleOf(e.Header)]; ok && tw.tw.cancel.Substate != events.StateFinWait2 {
			end := events.TimewaitEnd{Cause: events.CauseSynAccepted, Inferred: true, Successor: e.Cookie,
				Syn: e.Syn, Last: tw.tw.last,
				InferredFrom: "TIME_WAIT timer stopped early, then a connection on the same 4-tuple was accepted (cookie " +
					strconv.FormatUint(e.Cookie, 10) + ")"}
			if tw.tw.synAccepted() {
				end.Inferred = false
				end.InferredFrom = ""
			}
			if e.Old == events.StateSynSent {
				end.Cause = events.CauseConnectReuse
				end.SuccessorBoundPort = s.synSentPort != 0
				end.InferredFrom = "TIME_WAIT timer stopped early, then connect() on the same 4-tuple (cookie " +
					strconv.FormatUint(e.Cookie, 10) + ")"
			}
			t.endTimewait(tw, e.Time, end)
		}
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
			delete(t.stopped, tupleOf(s.tw.header))
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
		delete(t.stopped, tupleOf(tw.header))
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

// RecordsLost marks every socket tracked now as incomplete: the kernel
// dropped records (its ring buffer was full) since the last loss was
// noticed, any of which may have been one of theirs.
func (t *Tracker) RecordsLost() {
	for _, e := range t.sockets {
		if e.full != nil {
			e.full.incomplete = true
		} else {
			e.flags |= recordIncomplete
		}
	}
}

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

// countTimewait counts a TIME_WAIT socket in or out of the namespace's
// count.
func (t *Tracker) countTimewait(netns uint32, n int) {
	if t.timewaitCounts[netns] += n; t.timewaitCounts[netns] == 0 {
		delete(t.timewaitCounts, netns)
	}
}

// timewaitsIn counts the TIME_WAIT sockets tracked in a network namespace.
func (t *Tracker) timewaitsIn(netns uint32) int { return t.timewaitCounts[netns] }
