package track

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// closer feeds a tracker connections that close first and go to TIME_WAIT,
// as activeClose does, each on a 4-tuple of its own. It reuses its events,
// as the decoder does.
type closer struct {
	change  events.StateChange
	timer   events.TimewaitTimer
	destroy events.Destroy
	ipv6    bool // its connections' family
	events  int  // fed so far
}

var serverAddr, serverAddr6 = netip.MustParseAddrPort(server), netip.MustParseAddrPort("[2001:db8::2]:80")

// An Internet connection's handshake and counters, as the kernel reports
// them (its RTTs read in microseconds).
var (
	benchHandshake = events.Handshake{MSSInUse: 1448, MSSAdvertised: 1460, MSSReceived: 1460, WindowScaling: true,
		SendScale: 7, ReceiveScale: 7, SACK: true, Timestamps: true, RTT: 12345 * time.Microsecond}
	benchCounters = events.Counters{BytesAcked: 2113, BytesReceived: 48210, SegsOut: 31, SegsIn: 44,
		RTT: 13021 * time.Microsecond, MinRTT: 11872 * time.Microsecond, DeliveryRate: 1210344}
)

// header is connection n's, at t0 + at: a client port of its own, over as
// many client addresses as that takes.
func (c *closer) header(n int, at time.Duration) events.Header {
	h := events.Header{Time: t0.Add(at), Cookie: uint64(n) + 1, Family: 4, Netns: 7,
		Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(n / 50000 >> 8), byte(n / 50000)}), uint16(10000+n%50000)),
		Remote: serverAddr, Owner: events.Owner{PID: 10, Comm: "app"}}
	if c.ipv6 {
		client := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(n / 50000 >> 8), 15: byte(n / 50000)})
		h.Family, h.Local, h.Remote = 6, netip.AddrPortFrom(client, h.Local.Port()), serverAddr6
	}
	return h
}

func (c *closer) state(tr *Tracker, h events.Header, old, new events.State) {
	c.change = events.StateChange{Header: h, Old: old, New: new}
	c.feed(tr, &c.change)
}

func (c *closer) feed(tr *Tracker, ev events.Event) {
	tr.Process(ev)
	c.events++
}

// closeSteps are the steps of an active close: connect(), the handshake's
// end, close(), the ACK of our FIN, and the peer's FIN, which hands the
// socket over to its TIME_WAIT socket (three events in one softirq).
const closeSteps = 5

// step takes connection n through step k of its active close, at t0 + at.
func (c *closer) step(tr *Tracker, n, k int, at time.Duration) {
	h := c.header(n, at)
	switch k {
	case 0:
		h.Local = netip.AddrPortFrom(h.Local.Addr(), 0) // not bound yet
		c.state(tr, h, events.StateClose, events.StateSynSent)
	case 1:
		c.change = events.StateChange{Header: h, Old: events.StateSynSent, New: events.StateEstablished,
			Handshake: benchHandshake, HandshakeKnown: true}
		c.feed(tr, &c.change)
	case 2:
		c.state(tr, h, events.StateEstablished, events.StateFinWait1)
	case 3:
		c.state(tr, h, events.StateFinWait1, events.StateFinWait2)
	case 4:
		c.timer = events.TimewaitTimer{Header: h, Action: events.TimerStart, Substate: events.StateTimeWait,
			Timeout: timewaitLen, TimeoutKnown: true}
		c.feed(tr, &c.timer)
		c.state(tr, h, events.StateFinWait2, events.StateClose)
		c.destroy = events.Destroy{Header: h, State: events.StateClose, Counters: benchCounters, CountersKnown: true}
		c.feed(tr, &c.destroy)
	}
}

// closeTimes are when activeClose() takes its steps, in milliseconds.
var closeTimes = [closeSteps]time.Duration{0, 1, 101, 102, 150}

// activeClose takes connection n from connect() to TIME_WAIT, as
// activeClose() does, starting at t0 + start.
func (c *closer) activeClose(tr *Tracker, n int, start time.Duration) {
	for k, ms := range closeTimes {
		c.step(tr, n, k, start+ms*time.Millisecond)
	}
}

// expire ends the TIME_WAIT of connection n, at t0 + at.
func (c *closer) expire(tr *Tracker, n int, at time.Duration) {
	h := c.header(n, at)
	h.Owner = events.Owner{}
	c.timer = events.TimewaitTimer{Header: h, Action: events.TimerExpire, Substate: events.StateTimeWait}
	c.feed(tr, &c.timer)
}

// heapPerSocket is the heap a tracker holding n sockets takes per socket,
// each taken through the first steps of its active close, by the heap's
// live bytes (HeapAlloc) and by the spans it keeps (HeapInuse).
func heapPerSocket(n, steps int, ipv6 bool) (alloc, inuse float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := New(Options{MaxSockets: n})
	c := closer{ipv6: ipv6}
	for i := range n {
		for k, ms := range closeTimes[:steps] {
			c.step(tr, i, k, time.Duration(i)*time.Millisecond+ms*time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tr.Tracked() != n || tr.Evicted() != 0 {
		panic("the tracker did not keep every socket")
	}
	runtime.KeepAlive(tr)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), float64(after.HeapInuse-before.HeapInuse) / float64(n)
}

// BenchmarkMemory measures what a tracker holding 1,000,000 sockets takes
// per socket, established or in TIME_WAIT (run it with -benchtime=1x).
func BenchmarkMemory(b *testing.B) {
	for _, sockets := range []struct {
		name  string
		steps int
		ipv6  bool
	}{{"established", 2, false}, {"timewait", closeSteps, false}, {"timewait-ipv6", closeSteps, true}} {
		b.Run(sockets.name, func(b *testing.B) {
			for b.Loop() {
				alloc, inuse := heapPerSocket(1000000, sockets.steps, sockets.ipv6)
				b.ReportMetric(alloc, "alloc-B/socket")
				b.ReportMetric(inuse, "inuse-B/socket")
			}
		})
	}
}

// BenchmarkProcess runs connection churn through the tracker, a
// connection's steps between other connections' as on a busy server: each
// connection closes first, and its TIME_WAIT socket lives on while the next
// 10,000 (or 1,000,000) connections come and go.
func BenchmarkProcess(b *testing.B) {
	for _, live := range []int{10000, 1000000} {
		b.Run(fmt.Sprintf("timewait=%d", live), func(b *testing.B) {
			apart := timewaitLen / time.Duration(live) // a connection starts, and one's TIME_WAIT ends, every apart
			tr := New(Options{MaxSockets: 2 * live})
			var c closer
			// Connection n takes its step k at (n + k) * apart.
			run := func(n int) {
				for k := range closeSteps {
					if n-k >= 0 {
						c.step(tr, n-k, k, time.Duration(n)*apart)
					}
				}
				if old := n - closeSteps - live; old >= 0 {
					c.expire(tr, old, time.Duration(n)*apart)
				}
			}
			n := 0
			for ; n < live+closeSteps; n++ {
				run(n)
			}
			c.events = 0
			b.ReportAllocs()
			for b.Loop() {
				run(n)
				n++
			}
			if tr.Evicted() != 0 {
				b.Fatal("histories evicted")
			}
			b.ReportMetric(float64(c.events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
