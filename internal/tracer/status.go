//go:build linux

package tracer

import (
	"fmt"
	"io"
	"time"
)

// statusLine keeps one line at the bottom of the terminal: events a second,
// sockets tracked, records lost. Event lines go to stdout, the status to
// stderr, both the terminal: the status is wiped before events are written
// and drawn again after.
type statusLine struct {
	w          io.Writer
	shown      bool
	text       string
	lastAt     time.Time
	lastEvents uint64
}

func newStatusLine(w io.Writer, now time.Time) *statusLine {
	return &statusLine{w: w, lastAt: now}
}

// around writes out pending events (flush) with the status line out of the
// way, and draws it again, with new figures once a second.
func (s *statusLine) around(events uint64, sockets int, lost uint64, queued int64, flush func() error) error {
	now := time.Now()
	update := now.Sub(s.lastAt) >= time.Second
	if events == s.lastEvents && !update && s.shown {
		return nil
	}
	s.clear()
	if err := flush(); err != nil {
		return err
	}
	if update {
		s.text = statusText(events-s.lastEvents, now.Sub(s.lastAt), sockets, lost, queued)
		s.lastAt, s.lastEvents = now, events
	}
	if s.text != "" {
		fmt.Fprint(s.w, s.text)
		s.shown = true
	}
	return nil
}

func (s *statusLine) clear() {
	if s.shown {
		fmt.Fprint(s.w, "\r\x1b[K")
		s.shown = false
	}
}

func statusText(events uint64, over time.Duration, sockets int, lost uint64, queued int64) string {
	rate := float64(events) / over.Seconds()
	text := fmt.Sprintf("tcptrace: %.0f events/s, %d sockets tracked, %d lost", rate, sockets, lost)
	if queued >= 1<<20 {
		text += fmt.Sprintf(", output behind by %d MB", queued>>20)
	}
	return text
}
