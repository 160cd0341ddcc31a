//go:build linux

package tracer

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The heap's bound. GOGC is 400 (cmd/tcptrace): a small live heap (a
// quiet server) is collected seldom, for little CPU. With hundreds of
// thousands of TIME_WAIT histories alive, 400 would let the heap grow to
// five times them; a soft memory limit of one and a half times the live
// heap, and never below heapFloor, caps it there instead, and costs a
// collection more often only where the heap is large (300,000 TIME_WAIT
// sockets: 172 MB resident with twice the live heap, see README).
const (
	heapFloor       = 128 << 20
	heapBoundPeriod = time.Second
)

// heapLimit is the soft memory limit for a live heap of this size.
func heapLimit(live uint64) int64 {
	return max(heapFloor, int64(live)*3/2)
}

// boundHeap keeps the soft memory limit at heapLimit of the live heap until
// ctx is done, unless GOMEMLIMIT sets one.
func boundHeap(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(heapLimit(sample[0].Value.Uint64()))
		}
	}
	set()
	go func() {
		t := time.NewTicker(heapBoundPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
}
