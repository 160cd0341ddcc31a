package track

// Listeners, by where they listen: the owner an accepted socket has before
// accept() tells.

import (
	"net/netip"

	"github.com/tcptrace/tcptrace/internal/events"
)

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
