//go:build linux

package tracer

import (
	"fmt"
	"io"
	"time"

	"github.com/tcptrace/tcptrace/internal/flow"
)

// statusLine keeps one line at the bottom of the terminal: events a second,
// sockets tracked, records lost, how far behind the output is. Event lines
// go to stdout, the status to stderr, both the terminal: the output the
// pipeline writes through (Output) wipes the line first, and the line, a
// sink after the pipeline's, is drawn again at each poll, with new figures
// once a second.
type statusLine struct {
	w          io.Writer
	figures    func() statusFigures
	shown      bool
	text       string
	lastAt     time.Time
	lastEvents uint64
	lost       uint64 // records, so far
}

// statusFigures are what the line tells, read when it is updated.
type statusFigures struct {
	events  uint64 // written so far
	sockets int    // tracked now
	queued  int64  // bytes of records waiting for the output
}

func newStatusLine(w io.Writer, now time.Time, figures func() statusFigures) *statusLine {
	return &statusLine{w: w, lastAt: now, figures: figures}
}

// Output is out, with the status line wiped before each write.
func (s *statusLine) Output(out io.Writer) io.Writer { return statusOutput{s: s, out: out} }

type statusOutput struct {
	s   *statusLine
	out io.Writer
}

func (o statusOutput) Write(p []byte) (int, error) {
	o.s.clear()
	return o.out.Write(p)
}

var _ flow.Sink = (*statusLine)(nil)

func (s *statusLine) Record([]byte) error { return nil }

func (s *statusLine) Lost(total uint64) error {
	s.lost = total
	return nil
}

// Poll draws the line if it is not shown, with new figures once a second.
func (s *statusLine) Poll(now time.Time) error {
	if over := now.Sub(s.lastAt); over >= time.Second {
		f := s.figures()
		text := statusText(f.events-s.lastEvents, over, f.sockets, s.lost, f.queued)
		s.lastAt, s.lastEvents = now, f.events
		if text != s.text {
			s.clear()
			s.text = text
		}
	}
	if !s.shown && s.text != "" {
		fmt.Fprint(s.w, s.text)
		s.shown = true
	}
	return nil
}

// End takes the line away.
func (s *statusLine) End(flow.End) error {
	s.clear()
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
