//go:build linux

package probe

import (
	"sync"

	"github.com/cilium/ebpf"

	"github.com/tcptrace/tcptrace/bpf"
)

// objectSpec is the BPF object, parsed once (some ms): the ring, the load
// and the names of record kinds all read it; whoever changes it copies it.
var objectSpec = sync.OnceValues(bpf.LoadTcptrace)

// pendingRing is the ring buffer being made while the rest is probed: the
// kernel allocates and zeroes all of a ring's pages as it makes it, tens of
// ms for a large one, which would otherwise come before loading.
type pendingRing struct {
	done chan *ebpf.Map
	ring *ebpf.Map
}

// startRing makes a ring of bytes (the object's size if 0) in the
// background.
func startRing(bytes int) *pendingRing {
	r := &pendingRing{done: make(chan *ebpf.Map, 1)}
	go func() {
		r.done <- newRing(bytes)
	}()
	return r
}

// newRing is nil where the ring cannot be made here: loading makes it
// then, and says why it cannot. It parses the object first, for the load.
func newRing(bytes int) *ebpf.Map {
	spec, err := objectSpec()
	if err != nil {
		return nil
	}
	ms := spec.Maps[bpf.TcptraceMapEvents].Copy()
	if bytes > 0 {
		ms.MaxEntries = uint32(bytes)
	}
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return nil
	}
	return m
}

// wait returns the ring, or nil.
func (r *pendingRing) wait() *ebpf.Map {
	if r.done != nil {
		r.ring, r.done = <-r.done, nil
	}
	return r.ring
}

// close lets go of this handle on the ring: the loaded collection holds its
// own.
func (r *pendingRing) close() {
	if m := r.wait(); m != nil {
		m.Close()
	}
}
