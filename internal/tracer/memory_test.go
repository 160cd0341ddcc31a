//go:build linux

package tracer

import "testing"

func TestHeapLimit(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, heapFloor},
		{20 << 20, heapFloor},  // a quiet server: GOGC governs
		{80 << 20, heapFloor},  // one and a half times the live heap reaches the floor
		{300 << 20, 450 << 20}, // a million TIME_WAIT histories' worth
		{2 << 30, 3 << 30},
	} {
		if got := heapLimit(c.live); got != c.want {
			t.Errorf("heapLimit(%d MiB) = %d MiB, want %d MiB", c.live>>20, got>>20, c.want>>20)
		}
	}
}
