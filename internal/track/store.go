package track

// The tracker's store of socket histories: by cookie, in least recently
// active order, within MaxSockets (the least recently active evicted).

import (
	"github.com/tcptrace/tcptrace/internal/events"
)

// store holds the socket histories.
type store struct {
	maxSockets int
	sockets    map[uint64]*tracked // by cookie
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
}

// Evicted is how many histories were dropped to stay within the limit.
func (t *Tracker) Evicted() uint64 { return t.evicted }

// Tracked is how many sockets have a history now.
func (t *Tracker) Tracked() int { return len(t.sockets) }

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
		t.unstop(tupleOf(s.tw.header))
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
