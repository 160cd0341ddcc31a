// Package report turns a recording into one self-contained HTML page: a
// timeline per socket (states as bands, TIME_WAIT as its own band, probes,
// retransmits and resets as marks), the findings beside their sockets, a
// filter box, and the sysctls. The page loads nothing from anywhere.
package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/replay"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("report").Parse(pageHTML))

// Data is what the page shows, embedded in it as JSON. Times are
// milliseconds from the start of the trace.
type Data struct {
	Title    string      `json:"title"`
	Kernel   string      `json:"kernel"`
	Created  string      `json:"created"`
	Duration float64     `json:"duration_ms"`
	Events   uint64      `json:"events"`
	Lost     uint64      `json:"lost"`
	Sockets  []*Socket   `json:"sockets"`
	Sysctls  []NetnsVals `json:"sysctls"`
}

// Socket is one row of the timeline.
type Socket struct {
	Cookie   uint64    `json:"cookie"`
	Local    string    `json:"local"`
	Remote   string    `json:"remote"`
	PID      uint32    `json:"pid"`
	Comm     string    `json:"comm"`
	End      string    `json:"end"`
	ClosedBy string    `json:"closed_by,omitempty"`
	Phases   []Phase   `json:"phases"`
	Marks    []Mark    `json:"marks"`
	Findings []Finding `json:"findings"`
	first    float64
}

// Phase is a band: a state from Start to End.
type Phase struct {
	State    string  `json:"state"`
	Start    float64 `json:"start"`
	End      float64 `json:"end"`
	Timewait bool    `json:"timewait,omitempty"`
}

// Mark is something that happened at one time.
type Mark struct {
	At    float64 `json:"at"`
	Kind  string  `json:"kind"` // event type
	Label string  `json:"label"`
}

// Finding is an explanation shown beside its socket.
type Finding struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// NetnsVals is one network namespace's sysctls.
type NetnsVals struct {
	Netns  uint32            `json:"netns"`
	Values map[string]string `json:"values"`
	About  map[string]string `json:"about"`
}

// Write makes the report of a recording.
func Write(w io.Writer, rec *record.Recording, title string) error {
	c := &collector{start: rec.Header.Created, sockets: map[uint64]*Socket{}}
	// Each socket's page tells its findings whole.
	if err := replay.Play(rec, replay.Config{Renderer: c, FullFindings: true, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		return err
	}
	d := Data{Title: title, Kernel: rec.Header.Kernel, Created: rec.Header.Created.Format(time.RFC3339),
		Duration: ms(c.stats.Duration), Events: c.stats.Events, Lost: c.stats.Lost.Total}
	for _, s := range c.sockets {
		// A socket seen only being destroyed has no story to draw.
		if len(s.Phases)+len(s.Marks)+len(s.Findings) > 0 {
			d.Sockets = append(d.Sockets, s)
		}
	}
	slices.SortFunc(d.Sockets, func(a, b *Socket) int {
		if a.first != b.first {
			return int((a.first - b.first) * 1000)
		}
		return int(a.Cookie) - int(b.Cookie)
	})
	for _, item := range rec.Items {
		if s := item.Sysctls; s != nil {
			d.Sysctls = append(d.Sysctls, netnsVals(s))
		}
	}
	blob, err := json.Marshal(d)
	if err != nil {
		return err
	}
	// In a <script> element, "</" would end it early.
	safe := strings.ReplaceAll(string(blob), "</", `<\/`)
	return page.Execute(w, struct {
		Title string
		Data  template.JS
	}{title, template.JS(safe)})
}

func netnsVals(s *record.Sysctls) NetnsVals {
	v := NetnsVals{Netns: s.Netns, Values: map[string]string{}, About: map[string]string{}}
	for _, known := range sysctl.Known {
		name := string(known.Name)
		raw, ok := s.Values[name]
		switch {
		case !ok:
			continue
		case raw == nil && known.RemovedIn != "":
			v.Values[name] = "absent (removed in Linux " + known.RemovedIn + ")"
		case raw == nil:
			v.Values[name] = "absent on this kernel"
		default:
			v.Values[name] = *raw
		}
		v.About[name] = known.Description
	}
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// collector is a renderer that builds the report's data instead of writing.
type collector struct {
	start   time.Time
	sockets map[uint64]*Socket
	stats   render.Stats
}

func (c *collector) at(t time.Time) float64 { return ms(t.Sub(c.start)) }

func (c *collector) socket(h *events.Header) *Socket {
	s, ok := c.sockets[h.Cookie]
	if !ok {
		s = &Socket{Cookie: h.Cookie, first: c.at(h.Time)}
		c.sockets[h.Cookie] = s
	}
	if h.Local.Port() != 0 || s.Local == "" {
		s.Local, s.Remote = h.Local.String(), h.Remote.String()
	}
	if h.Owner.PID != 0 {
		s.PID, s.Comm = h.Owner.PID, h.Owner.Comm
	}
	return s
}

func (c *collector) Event(ev events.Event) error {
	h := ev.Head()
	s := c.socket(h)
	mark := func(label string) {
		s.Marks = append(s.Marks, Mark{At: c.at(h.Time), Kind: string(ev.Type()), Label: label})
	}
	switch e := ev.(type) {
	case *events.Summary:
		s.End, s.ClosedBy = string(e.End), string(e.ClosedBy)
		for _, p := range e.History {
			start := c.at(p.Start)
			if p.Start.IsZero() {
				start = 0
			}
			end := c.at(h.Time)
			if p.DurationKnown && !p.Start.IsZero() {
				end = start + ms(p.Duration)
			}
			s.Phases = append(s.Phases, Phase{State: string(p.State), Start: start, End: end, Timewait: p.Timewait})
		}
	case *events.Finding:
		s.Findings = append(s.Findings, Finding{Kind: string(e.Kind), Message: e.Message})
	case *events.Retransmit:
		mark("retransmit in " + string(e.State))
	case *events.ResetSent:
		mark("RST sent " + e.Reason)
	case *events.ResetReceived:
		mark("RST received in " + string(e.State))
	case *events.KeepaliveProbe:
		mark(fmt.Sprintf("keepalive probe #%d", e.Probe))
	case *events.ZeroWindowProbe:
		mark(fmt.Sprintf("zero-window probe #%d, backoff %d, next +%s", e.Probe, e.Backoff, events.HumanDuration(e.Interval)))
	case *events.RTO:
		mark(fmt.Sprintf("%s timeout, backoff %d", e.Kind, e.Backoff))
	case *events.TimewaitEnd:
		mark("TIME_WAIT ended: " + string(e.Cause))
	case *events.TimeoutAbort:
		mark("aborted by the " + e.Timer + " timer (" + e.Rule + ")")
	case *events.TimewaitOverflow:
		mark("no TIME_WAIT: tcp_max_tw_buckets")
	case *events.TimewaitSubstate:
		mark("TIME_WAIT socket: " + string(e.Old) + " -> " + string(e.New))
	case *events.TimewaitEnter:
		if e.Restart {
			mark("TIME_WAIT timer restarted")
		}
	case *events.TimewaitSegment:
		mark(events.FlagNames(e.Flags) + " to TIME_WAIT: " + e.Verdict)
	case *events.Segment:
		label := events.FlagNames(e.Flags) + " in " + string(e.State)
		if e.OutOfWindow {
			label += ", out of window"
		}
		if e.DataAfterFIN {
			label += ", data after FIN"
		}
		mark(label)
	}
	return nil
}

func (c *collector) Stats(s render.Stats) error { c.stats = s; return nil }
func (c *collector) Flush() error               { return nil }
