//go:build linux

package tracer

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/flow"
)

func TestStatusLine(t *testing.T) {
	var term bytes.Buffer
	start := time.Now()
	figures := statusFigures{events: 3000, sockets: 12}
	s := newStatusLine(&term, start, func() statusFigures { return figures })
	s.Lost(1)
	out := s.Output(&term)
	// Nothing to tell before the first second.
	s.Poll(start.Add(500 * time.Millisecond))
	if term.Len() != 0 {
		t.Fatalf("drawn before its figures: %q", term.String())
	}
	s.Poll(start.Add(2 * time.Second))
	if got := term.String(); got != "tcptrace: 1500 events/s, 12 sockets tracked, 1 lost" {
		t.Errorf("first draw: %q", got)
	}
	// Shown and unchanged: a poll writes nothing.
	term.Reset()
	s.Poll(start.Add(2500 * time.Millisecond))
	if term.Len() != 0 {
		t.Errorf("idle poll wrote %q", term.String())
	}
	// Events written wipe the line first; the next poll draws it again.
	fmt.Fprintln(out, "event")
	s.Poll(start.Add(2600 * time.Millisecond))
	if got := term.String(); got != "\r\x1b[Kevent\ntcptrace: 1500 events/s, 12 sockets tracked, 1 lost" {
		t.Errorf("redraw: %q", got)
	}
	// New figures a second later replace the line.
	term.Reset()
	figures = statusFigures{events: 3500, sockets: 2, queued: 2 << 20}
	s.Poll(start.Add(3 * time.Second))
	if got := term.String(); got != "\r\x1b[Ktcptrace: 500 events/s, 2 sockets tracked, 1 lost, output behind by 2 MB" {
		t.Errorf("update: %q", got)
	}
	term.Reset()
	s.End(flow.End{})
	if term.String() != "\r\x1b[K" {
		t.Errorf("end: %q", term.String())
	}
}

func TestStatusText(t *testing.T) {
	for _, tc := range []struct {
		queued int64
		want   string
	}{
		{0, "tcptrace: 3000 events/s, 7 sockets tracked, 0 lost"},
		{1<<20 - 1, "tcptrace: 3000 events/s, 7 sockets tracked, 0 lost"},
		{5 << 20, "tcptrace: 3000 events/s, 7 sockets tracked, 0 lost, output behind by 5 MB"},
	} {
		if got := statusText(1500, 500*time.Millisecond, 7, 0, tc.queued); got != tc.want {
			t.Errorf("queued %d: %q, want %q", tc.queued, got, tc.want)
		}
	}
}
