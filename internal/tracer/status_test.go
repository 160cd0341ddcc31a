//go:build linux

package tracer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestStatusLine(t *testing.T) {
	var term bytes.Buffer
	start := time.Now().Add(-2 * time.Second)
	s := newStatusLine(&term, start)
	flushed := 0
	flush := func() error { flushed++; term.WriteString("event\n"); return nil }
	if err := s.around(3000, 12, 1, 0, flush); err != nil {
		t.Fatal(err)
	}
	got := term.String()
	if !strings.HasPrefix(got, "event\n") || !strings.Contains(got, "events/s, 12 sockets tracked, 1 lost") {
		t.Errorf("first draw: %q", got)
	}
	// Nothing new within the second: nothing written at all.
	term.Reset()
	s.around(3000, 12, 1, 0, flush)
	if term.Len() != 0 || flushed != 1 {
		t.Errorf("idle redraw wrote %q", term.String())
	}
	// New events: the line is wiped first, then drawn again.
	s.around(3500, 12, 1, 0, flush)
	if got := term.String(); !strings.HasPrefix(got, "\r\x1b[Kevent\n") || !strings.HasSuffix(got, "lost") {
		t.Errorf("redraw: %q", got)
	}
	term.Reset()
	s.clear()
	if term.String() != "\r\x1b[K" {
		t.Errorf("clear: %q", term.String())
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
