package track

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// A TIME_WAIT socket outlives its full socket by a minute, so on a busy
// server most tracked sockets are TIME_WAIT sockets. Once only that lives
// on, a socket's story is kept in a record (with its share of the maps,
// under 300 bytes against 2.2 KB: BenchmarkMemory), and turned back into a
// full socket for any event of its own: the tracker's logic works on full
// sockets only.

// recordShares is what records share: their owners (lastShared, the one
// shared last), the states their histories hold (by index), the time their
// times count from (see instant).
type recordShares struct {
	owners        map[events.Owner]*sharedOwner
	lastShared    *sharedOwner
	states        []events.State
	epoch         time.Time
	epochUnixNano int64
	// encoded is a story being encoded, before it goes to its record;
	// extras, the extras of records, by cookie.
	encoded []byte
	extras  map[uint64]recordExtras
}

// tracked is a tracked socket, where Tracker.sockets and Tracker.lru find
// it: its full socket, or (full nil) its record, which stays put as the
// socket turns into one and back. A record is a TIME_WAIT socket's story
// once its full socket is gone: what the socket holds that its TIME_WAIT
// life can still use or tell. The rest (its timers, an overflow's or an
// RST's evidence, how it ended as a full socket) served the full socket
// only.
type tracked struct {
	prev, next *tracked
	cookie     uint64
	full       *socket
	owner      *sharedOwner // nil if not known
	// story is the rest, mostly varints (see compact).
	story    []byte
	netns    uint32
	ports    [2]uint16 // local, remote
	family   uint8
	substate uint8 // in Tracker.states
	closedBy uint8 // in closers
	phases   uint8 // how many its story tells
	flags    recordFlags
}

// recordExtras is what few records hold (in Tracker.extras), as it was:
// what their TIME_WAIT socket was seen to take, and the RSTs and timeout
// their close tells of.
type recordExtras struct {
	seen        timewaitSeen
	rstSent     *events.ResetSent
	rstReceived *events.ResetReceived
	timeout     *events.TimeoutAbort
}

type recordFlags uint16

const (
	recordBeforeTrace recordFlags = 1 << iota
	recordHistoryDropped
	recordIncomplete
	recordStartSeen
	// recordStart: its TIME_WAIT socket's timer start is its first
	// TIME_WAIT phase's start, as when seen (else the zero time).
	recordStart
	recordLocal4  // the local address is IPv4 (else IPv6)
	recordRemote4 // the remote address is IPv4
	// What its story tells besides its addresses and phases.
	recordCounts    // retransmissions, RSTs sent and received (else none)
	recordHandshake // the handshake (handshakeKnown)
	recordCounters  // the counters read at its destroy (countersKnown)
	recordBorn      // when it was born (born)
	recordDestroyed // when its full socket was destroyed (destroyedFull)
	recordExtra     // it has extras
)

// closers are the values of socket.closedBy, by their index in records.
var closers = [...]events.Closer{"", events.CloserLocal, events.CloserPeer, events.CloserReset}

// sharedOwner is an owner shared by the records of its sockets: a copy in
// each would be 32 bytes more on a record's 80.
type sharedOwner struct {
	events.Owner
	records int
}

func (t *Tracker) shareOwner(o events.Owner) *sharedOwner {
	if o == (events.Owner{}) {
		return nil
	}
	// Most records in a row are one process's.
	shared := t.lastShared
	if shared == nil || shared.records == 0 || shared.Owner != o {
		if shared = t.owners[o]; shared == nil {
			shared = &sharedOwner{Owner: o}
			t.owners[o] = shared
		}
		t.lastShared = shared
	}
	shared.records++
	return shared
}

func (t *Tracker) releaseOwner(shared *sharedOwner) {
	if shared == nil {
		return
	}
	if shared.records--; shared.records == 0 {
		delete(t.owners, shared.Owner)
	}
}

// settle turns the sockets the last event touched into records where they
// are only a TIME_WAIT socket now.
func (t *Tracker) settle() {
	for _, s := range t.touched {
		if s.entry != nil { // still tracked, and full
			t.compact(s)
		}
	}
	t.touched = t.touched[:0]
}

// compact keeps s as a record if its full socket is gone, its TIME_WAIT
// socket waits on nothing (an early stop's cause, a peer's RST), no
// zero-window episode is left to tell, and a record holds it exactly; s is
// free again then. The record's story tells its addresses, its counts if
// any, its phases, then its handshake and its counters if known, its
// close, when it was born and when its full socket was destroyed, if known.
func (t *Tracker) compact(s *socket) {
	tw := s.tw
	if tw == nil || !s.fullGone || !tw.stopped.IsZero() || tw.peerRST != nil || s.timers.zeroWindow != nil {
		return
	}
	if _, ok := t.rstWatch[s]; ok {
		return
	}
	if _, ok := t.overflows[s]; ok {
		return
	}
	h := s.header
	// Both tell one 4-tuple, which the record keeps once (the rest of its
	// TIME_WAIT socket's header is never told).
	twh := tw.header
	twh.Time, twh.Owner = h.Time, h.Owner
	if twh != h || !packable(h.Local.Addr()) || !packable(h.Remote.Addr()) || len(s.phases) > math.MaxUint8 {
		return
	}
	// Unknown is zero: a record tells only what is known.
	if !s.handshakeKnown && s.handshake != (events.Handshake{}) || !s.countersKnown && s.counters != (events.Counters{}) ||
		!s.destroyedFull && s.fullEnd != (time.Time{}) {
		return
	}
	closedBy, ok := closerIndex(s.closedBy)
	if !ok {
		return
	}
	substate, ok := t.stateIndex(tw.substate, 0)
	if !ok {
		return
	}
	flags := flagIf(s.beforeTrace, recordBeforeTrace) | flagIf(s.historyDropped, recordHistoryDropped) |
		flagIf(s.incomplete, recordIncomplete) | flagIf(tw.startSeen, recordStartSeen) |
		flagIf(h.Local.Addr().Is4(), recordLocal4) | flagIf(h.Remote.Addr().Is4(), recordRemote4) |
		flagIf(s.retransmits != 0 || s.resetsSent != 0 || s.resetsRecv != 0, recordCounts) |
		flagIf(s.handshakeKnown, recordHandshake) | flagIf(s.countersKnown, recordCounters) |
		flagIf(s.born, recordBorn) | flagIf(s.destroyedFull, recordDestroyed)
	if tw.start != (time.Time{}) {
		if p := firstTimewait(s.phases); p == nil || p.Start != tw.start {
			return
		}
		flags |= recordStart
	}
	w := storyWriter{t: t, b: t.encoded[:0], ok: true}
	w.addr(h.Local.Addr())
	w.addr(h.Remote.Addr())
	if flags&recordCounts != 0 {
		w.varint(int64(s.retransmits))
		w.varint(int64(s.resetsSent))
		w.varint(int64(s.resetsRecv))
	}
	w.phases(s.phases)
	if flags&recordHandshake != 0 {
		w.handshake(&s.handshake)
	}
	if flags&recordCounters != 0 {
		w.counters(&s.counters)
	}
	w.closing(&s.closing)
	// Born at its first phase's start, or as its first phase (CLOSE) ended;
	// destroyed as it handed over to its TIME_WAIT socket.
	if flags&recordBorn != 0 {
		w.time(s.bornAt, w.first)
	}
	if flags&recordDestroyed != 0 {
		w.time(s.fullEnd, w.end)
	}
	if t.encoded = w.b; !w.ok {
		return
	}
	r := s.entry
	// In space of its size: a record is kept for a minute.
	r.story = append(r.story[:0], w.b...)
	r.netns, r.family = h.Netns, h.Family
	r.ports = [2]uint16{h.Local.Port(), h.Remote.Port()}
	r.owner = t.shareOwner(h.Owner)
	r.substate, r.closedBy, r.phases, r.flags = substate, closedBy, uint8(len(s.phases)), flags
	if c := &s.closing; tw.timewaitSeen != (timewaitSeen{}) || c.rstSent != nil || c.rstReceived != nil || c.timeout != nil {
		t.extras[r.cookie] = recordExtras{seen: tw.timewaitSeen, rstSent: c.rstSent, rstReceived: c.rstReceived, timeout: c.timeout}
		r.flags |= recordExtra
	}
	r.full, s.entry = nil, nil
	t.free = append(t.free, s)
}

// expand turns r back into a full socket.
func (t *Tracker) expand(r *tracked) *socket {
	story := storyReader{t: t, b: r.story}
	h := events.Header{Cookie: r.cookie, Family: r.family, Netns: r.netns}
	h.Local, h.Remote = r.addrs(&story)
	if r.owner != nil {
		h.Owner = r.owner.Owner
	}
	s := t.newSocket(h)
	if r.flags&recordCounts != 0 {
		s.retransmits, s.resetsSent, s.resetsRecv = int(story.varint()), int(story.varint()), int(story.varint())
	}
	s.phases = story.phases(s.phases, int(r.phases))
	if s.handshakeKnown = r.flags&recordHandshake != 0; s.handshakeKnown {
		s.handshake = story.handshake()
	}
	if s.countersKnown = r.flags&recordCounters != 0; s.countersKnown {
		s.counters = story.counters()
	}
	s.closing = story.closing()
	if s.born = r.flags&recordBorn != 0; s.born {
		s.bornAt, _ = story.time(story.first)
	}
	if s.destroyedFull = r.flags&recordDestroyed != 0; s.destroyedFull {
		s.fullEnd, _ = story.time(story.end)
	}
	s.closedBy = closers[r.closedBy]
	s.beforeTrace = r.flags&recordBeforeTrace != 0
	s.historyDropped = r.flags&recordHistoryDropped != 0
	s.incomplete = r.flags&recordIncomplete != 0
	s.fullGone = true
	s.twSpace.header, s.twSpace.substate = h, t.states[r.substate] // the rest zero, as newSocket left it
	s.twSpace.startSeen = r.flags&recordStartSeen != 0
	if r.flags&recordStart != 0 {
		s.twSpace.start = firstTimewait(s.phases).Start
	}
	if r.flags&recordExtra != 0 {
		x := t.extras[r.cookie]
		delete(t.extras, r.cookie)
		s.twSpace.timewaitSeen = x.seen
		s.closing.rstSent, s.closing.rstReceived, s.closing.timeout = x.rstSent, x.rstReceived, x.timeout
	}
	s.tw = &s.twSpace
	t.releaseOwner(r.owner)
	r.owner, r.full, s.entry = nil, s, r
	t.touched = append(t.touched, s)
	return s
}

// addrs reads r's local and remote addresses, which its story begins with.
func (r *tracked) addrs(story *storyReader) (local, remote netip.AddrPort) {
	return netip.AddrPortFrom(story.addr(r.flags&recordLocal4 != 0), r.ports[0]),
		netip.AddrPortFrom(story.addr(r.flags&recordRemote4 != 0), r.ports[1])
}

// emptied is e with nothing in it but its story's space, to be reused.
func (e *tracked) emptied() *tracked {
	*e = tracked{story: e.story[:0]}
	return e
}

func (t *Tracker) newTracked() *tracked {
	if n := len(t.freeTracked); n > 0 {
		e := t.freeTracked[n-1]
		t.freeTracked = t.freeTracked[:n-1]
		return e
	}
	return &tracked{}
}

// storyWriter appends a record's story; ok turns false at the first value
// a record cannot hold exactly. A time is told as a varint of nanoseconds
// from an instant told before, as near it as may be: the start of the
// first phase told (first), the end of the last (end).
type storyWriter struct {
	t          *Tracker
	b          []byte
	ok         bool
	first, end int64
}

// storyReader reads what a storyWriter wrote, in the same order.
type storyReader struct {
	t          *Tracker
	b          []byte
	first, end int64
}

func (w *storyWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *storyWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (r *storyReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	r.b = r.b[n:]
	return v
}

func (r *storyReader) varint() int64 {
	v, n := binary.Varint(r.b)
	r.b = r.b[n:]
	return v
}

func (r *storyReader) byte() byte {
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// addr: 4 bytes for an IPv4 address, 16 for others (packable ones).
func (w *storyWriter) addr(a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		w.b = append(w.b, b[:]...)
		return
	}
	b := a.As16()
	w.b = append(w.b, b[:]...)
}

func (r *storyReader) addr(is4 bool) netip.Addr {
	if is4 {
		a := netip.AddrFrom4([4]byte(r.b))
		r.b = r.b[4:]
		return a
	}
	a := netip.AddrFrom16([16]byte(r.b))
	r.b = r.b[16:]
	return a
}

// time tells at from the instant from; it returns at's instant.
func (w *storyWriter) time(at time.Time, from int64) int64 {
	instant, ok := w.t.instant(at)
	w.ok = w.ok && ok
	w.varint(instant - from) // wraps back in storyReader
	return instant
}

func (r *storyReader) time(from int64) (time.Time, int64) {
	instant := from + r.varint()
	return r.t.time(instant), instant
}

// duration tells d in microseconds where it is whole ones, as the
// kernel's RTTs are: a byte less.
func (w *storyWriter) duration(d time.Duration) {
	if d<<1>>1 != d { // too long for the flag bit
		w.ok = false
	}
	if d%time.Microsecond == 0 {
		w.varint(int64(d/time.Microsecond) << 1)
		return
	}
	w.varint(int64(d)<<1 | 1)
}

func (r *storyReader) duration() time.Duration {
	v := r.varint()
	if v&1 == 0 {
		return time.Duration(v>>1) * time.Microsecond
	}
	return time.Duration(v >> 1)
}

// Phases: a byte of the phase's state (its index in Tracker.states) and
// flags, then, each only if not zero, its start (from where the phase told
// before ended: most begin there, a byte) and its duration.
const phaseStateMask byte = 0x0f

const (
	phaseStart byte = 0x10 << iota
	phaseDuration
	phaseDurationKnown
	phaseTimewait
)

func (w *storyWriter) phases(phases []events.Phase) {
	var state uint8
	for i := range phases {
		p := &phases[i]
		var ok bool
		if state, ok = w.t.stateIndex(p.State, int(state)+1); !ok || state > phaseStateMask {
			w.ok = false
			return
		}
		head := state | flagIf(p.Start != (time.Time{}), phaseStart) | flagIf(p.Duration != 0, phaseDuration) |
			flagIf(p.DurationKnown, phaseDurationKnown) | flagIf(p.Timewait, phaseTimewait)
		w.b = append(w.b, head)
		if head&phaseStart != 0 {
			start := w.time(p.Start, w.end)
			if i == 0 {
				w.first = start
			}
			w.end = start + int64(p.Duration)
		}
		if head&phaseDuration != 0 {
			w.varint(int64(p.Duration))
		}
	}
}

// phases reads n phases after dst.
func (r *storyReader) phases(dst []events.Phase, n int) []events.Phase {
	for i := range n {
		head := r.byte()
		dst = append(dst, events.Phase{State: r.t.states[head&phaseStateMask], DurationKnown: head&phaseDurationKnown != 0,
			Timewait: head&phaseTimewait != 0})
		p := &dst[len(dst)-1]
		var start int64
		if head&phaseStart != 0 {
			if p.Start, start = r.time(r.end); i == 0 {
				r.first = start
			}
		}
		if head&phaseDuration != 0 {
			p.Duration = time.Duration(r.varint())
		}
		if head&phaseStart != 0 {
			r.end = start + int64(p.Duration)
		}
	}
	return dst
}

// Handshake and counters: their fields in order, as varints (bools as the
// bits of a byte).

func (w *storyWriter) handshake(h *events.Handshake) {
	w.uvarint(uint64(h.MSSInUse))
	w.uvarint(uint64(h.MSSAdvertised))
	w.uvarint(uint64(h.MSSReceived))
	w.b = append(w.b, bits(h.WindowScaling, h.SACK, h.Timestamps, h.ECN, h.FastOpen), h.SendScale, h.ReceiveScale)
	w.duration(h.RTT)
	w.uvarint(uint64(h.Retransmits))
}

func (r *storyReader) handshake() events.Handshake {
	h := events.Handshake{MSSInUse: uint16(r.uvarint()), MSSAdvertised: uint16(r.uvarint()), MSSReceived: uint16(r.uvarint())}
	b := r.byte()
	h.WindowScaling, h.SACK, h.Timestamps, h.ECN, h.FastOpen = b&1 != 0, b&2 != 0, b&4 != 0, b&8 != 0, b&16 != 0
	h.SendScale, h.ReceiveScale = r.byte(), r.byte()
	h.RTT = r.duration()
	h.Retransmits = uint32(r.uvarint())
	return h
}

func (w *storyWriter) counters(c *events.Counters) {
	w.uvarint(c.BytesAcked)
	w.uvarint(c.BytesReceived)
	w.uvarint(uint64(c.SegsOut))
	w.uvarint(uint64(c.SegsIn))
	w.uvarint(uint64(c.Retransmits))
	w.duration(c.RTT)
	w.duration(c.MinRTT)
	w.uvarint(c.DeliveryRate)
}

func (r *storyReader) counters() events.Counters {
	return events.Counters{BytesAcked: r.uvarint(), BytesReceived: r.uvarint(), SegsOut: uint32(r.uvarint()),
		SegsIn: uint32(r.uvarint()), Retransmits: uint32(r.uvarint()), RTT: r.duration(),
		MinRTT: r.duration(), DeliveryRate: r.uvarint()}
}

// closing: a byte of what it holds, then when the peer's FIN was seen and
// in which state, and the time its move to TIME_WAIT is known within. Its
// RSTs and timeout are a record's extras.
func (w *storyWriter) closing(c *closing) {
	w.b = append(w.b, bits(c.peerFIN != (time.Time{}), c.peerFINState != "", c.moveWithin != 0, c.remoteZeroed,
		c.options.Known, c.options.LingerZero, c.options.Linger2Negative))
	if c.peerFIN != (time.Time{}) {
		w.time(c.peerFIN, w.end)
	}
	if c.peerFINState != "" {
		state, ok := w.t.stateIndex(c.peerFINState, 0)
		w.ok = w.ok && ok
		w.b = append(w.b, state)
	}
	if c.moveWithin != 0 {
		w.varint(int64(c.moveWithin))
	}
}

func (r *storyReader) closing() closing {
	var c closing
	b := r.byte()
	if b&1 != 0 {
		c.peerFIN, _ = r.time(r.end)
	}
	if b&2 != 0 {
		c.peerFINState = r.t.states[r.byte()]
	}
	if b&4 != 0 {
		c.moveWithin = time.Duration(r.varint())
	}
	c.remoteZeroed = b&8 != 0
	c.options = events.CloseOptions{Known: b&16 != 0, LingerZero: b&32 != 0, Linger2Negative: b&64 != 0}
	return c
}

func bits(flags ...bool) byte {
	var b byte
	for i, f := range flags {
		b |= flagIf(f, byte(1)<<i)
	}
	return b
}

// instant is at as nanoseconds since the tracker's epoch (the first time
// it kept), if that turns back into at exactly: a time without a monotonic
// reading, in the epoch's location (the same *time.Location: time.Local
// may be time.UTC, not UTC's nil), as the decoder makes them all, within
// the years 1678 to 2262 (Unix nanoseconds).
func (t *Tracker) instant(at time.Time) (int64, bool) {
	if t.epoch == (time.Time{}) {
		t.epoch, t.epochUnixNano = at.Round(0), at.UnixNano() // Round(0): no monotonic reading
	}
	instant := at.UnixNano() - t.epochUnixNano
	return instant, t.time(instant) == at
}

// time is the time of an instant.
func (t *Tracker) time(instant int64) time.Time {
	return t.epoch.Add(time.Duration(instant))
}

// stateIndex is state's index in t.states, added if new; likely is the
// index tried first (a history mostly runs through states in the order the
// tracker first saw them).
func (t *Tracker) stateIndex(state events.State, likely int) (uint8, bool) {
	if likely < len(t.states) && t.states[likely] == state {
		return uint8(likely), true
	}
	for i, known := range t.states {
		if known == state {
			return uint8(i), true
		}
	}
	if len(t.states) > math.MaxUint8 {
		return 0, false
	}
	t.states = append(t.states, state)
	return uint8(len(t.states) - 1), true
}

func closerIndex(closedBy events.Closer) (uint8, bool) {
	for i, c := range closers {
		if c == closedBy {
			return uint8(i), true
		}
	}
	return 0, false
}

// firstTimewait is the first phase of phases as a TIME_WAIT socket, if any.
func firstTimewait(phases []events.Phase) *events.Phase {
	for i := range phases {
		if phases[i].Timewait {
			return &phases[i]
		}
	}
	return nil
}

// packable tells whether a record holds addr: 4 bytes and the IPv4 flag,
// or 16 bytes.
func packable(addr netip.Addr) bool { return addr.IsValid() && addr.Zone() == "" }

func flagIf[F ~uint8 | ~uint16](cond bool, flag F) F {
	if cond {
		return flag
	}
	return 0
}

// tupleIndex finds the cookie of a socket by the 4-tuple of its TIME_WAIT
// socket. It keys them by the tuple's hash, 8 bytes where a tuple is 72
// (another record's size for each of a million TIME_WAIT sockets); a tuple
// whose hash another one holds is kept whole.
type tupleIndex struct {
	hash   func(tuple) uint64
	byHash map[uint64]uint64
	whole  map[tuple]uint64
}

func newTupleIndex() tupleIndex {
	seed := rand.Uint64()
	return tupleIndex{hash: func(k tuple) uint64 { return hashTuple(seed, k) },
		byHash: map[uint64]uint64{}, whole: map[tuple]uint64{}}
}

// hashTuple mixes a tuple's netns, ports and addresses (as 16 bytes: an
// IPv4 address and its IPv4-mapped IPv6 one, or two zones, collide, which
// the index allows for) with seed.
func hashTuple(seed uint64, k tuple) uint64 {
	local, remote := k.local.Addr().As16(), k.remote.Addr().As16()
	h := mix(seed ^ uint64(k.netns)<<32 ^ uint64(k.local.Port())<<16 ^ uint64(k.remote.Port()))
	h = mix(h ^ binary.LittleEndian.Uint64(local[:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(local[8:]))
	h = mix(h ^ binary.LittleEndian.Uint64(remote[:8]))
	return mix(h ^ binary.LittleEndian.Uint64(remote[8:]))
}

// mix is MurmurHash3's 64-bit finalizer.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// indexTimewait notes that cookie's TIME_WAIT socket has 4-tuple k (a
// later one on k takes it over).
func (t *Tracker) indexTimewait(k tuple, cookie uint64) {
	x := &t.byTuple
	h := x.hash(k)
	if held, ok := x.byHash[h]; ok && held != cookie && !t.timewaitHas(held, k) {
		x.whole[k] = cookie
		return
	}
	x.byHash[h] = cookie
}

// unindexTimewait forgets k if cookie holds it.
func (t *Tracker) unindexTimewait(k tuple, cookie uint64) {
	x := &t.byTuple
	if h := x.hash(k); x.byHash[h] == cookie {
		delete(x.byHash, h)
	} else if x.whole[k] == cookie {
		delete(x.whole, k)
	}
}

// timewaitOn is the socket whose TIME_WAIT socket has 4-tuple k, if any.
func (t *Tracker) timewaitOn(k tuple) *socket {
	x := &t.byTuple
	cookie, ok := x.byHash[x.hash(k)]
	if !ok || !t.timewaitHas(cookie, k) {
		if cookie, ok = x.whole[k]; !ok {
			return nil
		}
	}
	return t.full(cookie)
}

// timewaitHas tells whether the TIME_WAIT socket of a tracked cookie has
// 4-tuple k.
func (t *Tracker) timewaitHas(cookie uint64, k tuple) bool {
	e := t.sockets[cookie]
	switch {
	case e == nil:
		return false
	case e.full != nil:
		return e.full.tw != nil && tupleOf(e.full.tw.header) == k
	}
	local, remote := e.addrs(&storyReader{b: e.story})
	return tuple{netns: e.netns, local: local, remote: remote} == k
}
