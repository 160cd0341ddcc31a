package tracer

import (
	"io"
	"sync"
	"time"
)

// StampLines returns a writer that starts every line written to w with the
// time (RFC 3339, UTC, milliseconds): a daemon's log lines on a stderr that
// no person watches, read later from a file or a collector. Lines may come
// from several goroutines (the metrics server's among them); each write is
// whole.
func StampLines(w io.Writer, now func() time.Time) io.Writer {
	return &stampedLines{w: w, now: now, atStart: true}
}

type stampedLines struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	atStart bool
	buf     []byte
}

func (s *stampedLines) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buf[:0]
	for _, c := range p {
		if s.atStart {
			b = s.now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00 ")
			s.atStart = false
		}
		b = append(b, c)
		s.atStart = c == '\n'
	}
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// spaced tells when a repeated warning is due: the first at once, then at
// most one every so often.
type spaced struct {
	every time.Duration
	last  time.Time
}

func (s *spaced) due(now time.Time) bool {
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		return false
	}
	s.last = now
	return true
}
