package tracer

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestStampLines: every line, and only a line's start, gets the time, also
// when a line comes in pieces.
func TestStampLines(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2026, 12, 2, 5, 43, 10, 123456789, time.FixedZone("CET", 3600))
	w := StampLines(&out, func() time.Time { return at })
	fmt.Fprintf(w, "tcptrace: warning: %d events lost so far\n", 5)
	fmt.Fprint(w, "8 events in 2.1s")
	fmt.Fprint(w, ", 0 lost\n  BPF handle_set_state: 10 runs\n")
	const want = "2026-12-02T04:43:10.123Z tcptrace: warning: 5 events lost so far\n" +
		"2026-12-02T04:43:10.123Z 8 events in 2.1s, 0 lost\n" +
		"2026-12-02T04:43:10.123Z   BPF handle_set_state: 10 runs\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// TestSpaced: a warning repeated every poll is written at once, then once
// per interval.
func TestSpaced(t *testing.T) {
	s := spaced{every: 10 * time.Second}
	start := time.Unix(1000, 0)
	var due []int
	for i := range 3000 { // 30 s of 10 ms polls
		if s.due(start.Add(time.Duration(i) * 10 * time.Millisecond)) {
			due = append(due, i)
		}
	}
	if want := []int{0, 1000, 2000}; fmt.Sprint(due) != fmt.Sprint(want) {
		t.Errorf("due at polls %v, want %v", due, want)
	}
}
