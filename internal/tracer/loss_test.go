//go:build linux

package tracer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestLossWarning: records lost at every poll make one warning at once,
// then one every 10 s with the total so far, and none once no more are
// lost.
func TestLossWarning(t *testing.T) {
	var out bytes.Buffer
	l := &lossWarning{w: &out, spacing: spaced{every: lossWarningEvery}}
	start := time.Unix(1000, 0)
	for i := range 2500 { // 25 s of 10 ms polls, records lost in the first 15 s
		if i < 1500 {
			l.Lost(uint64(i + 1))
		}
		l.Poll(start.Add(time.Duration(i) * 10 * time.Millisecond))
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"tcptrace: warning: 1 events lost so far: the ring buffer was full (raise --ring-size)",
		"tcptrace: warning: 1001 events lost so far: the ring buffer was full (raise --ring-size)",
		"tcptrace: warning: 1500 events lost so far: the ring buffer was full (raise --ring-size)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
