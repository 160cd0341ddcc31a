// Package report turns a recording into one self-contained HTML page: an
// overview of the whole run (sockets by state over time, TIME_WAIT sockets
// alive, how TIME_WAIT ended and at what age, findings by kind), a list of
// every socket, and each socket's timeline and events with its findings in
// words, then the sysctls. The page loads nothing from anywhere; its data
// is embedded as JSON, and its charts are drawn by its own script.
package report

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strconv"
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
	Title    string
	Kernel   string
	Created  string
	Duration float64
	Events   uint64
	Lost     uint64
	// Cut says why the recording holds less than the run, if it does.
	Cut     string
	Sockets []*Socket
	Sysctls []NetnsVals
	// Used names, for each sysctl a finding quoted or events depend on,
	// what used it: "finding KIND" or "event TYPE". The page shows first
	// those that the sockets it lists used.
	Used map[string][]string
}

// Socket is one socket's story.
type Socket struct {
	Cookie   uint64
	Local    string
	Remote   string
	PID      uint32
	Comm     string
	End      string
	ClosedBy string
	Phases   []Phase
	Events   []Event
	Findings []Finding
	first    float64
}

// Phase is a band: a state from Start to End.
type Phase struct {
	State    string
	Start    float64
	End      float64
	Timewait bool // lived as a TIME_WAIT socket: State is its substate
}

// Event is one event of the socket, with its own fields as JSON.
type Event struct {
	At     float64
	Type   string
	Label  string // what the timeline's mark says; "" for events drawn as bands
	Fields []byte
}

// Finding is an explanation shown with its socket.
type Finding struct {
	At      float64
	Kind    string
	Message string
}

// NetnsVals is one network namespace's sysctls.
type NetnsVals struct {
	Netns  uint32
	Values map[string]string
	About  map[string]string
}

// Write makes the report of a recording.
func Write(w io.Writer, rec *record.Recording, title string) error {
	c := &collector{start: rec.Header.Created, sockets: map[uint64]*Socket{}, used: map[string][]string{}}
	// Every finding in full: a socket's own tells its story in words.
	if err := replay.Play(rec, replay.Config{Renderer: c, FullFindings: true, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		return fmt.Errorf("replay the recording: %w", err)
	}
	d := Data{Title: title, Kernel: rec.Header.Kernel, Created: rec.Header.Created.Format(time.RFC3339),
		Duration: ms(c.stats.Duration), Events: c.stats.Events, Lost: c.stats.Lost.Total, Used: c.used}
	for _, s := range c.sockets {
		// A socket seen only being destroyed has no story to draw.
		if len(s.Phases)+len(s.Findings) > 0 || slices.ContainsFunc(s.Events, func(e Event) bool { return e.Label != "" }) {
			d.Sockets = append(d.Sockets, s)
		}
	}
	slices.SortFunc(d.Sockets, func(a, b *Socket) int {
		return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.Cookie, b.Cookie))
	})
	for _, item := range rec.Items {
		if s := item.Sysctls; s != nil {
			d.Sysctls = append(d.Sysctls, netnsVals(s))
		}
		if item.End != nil && item.End.Truncated {
			d.Cut = "the recording stopped at --record-max-size: what came after is not here"
		}
	}
	if rec.Partial {
		d.Cut = "the recording ends early (its run did not finish writing it): what came after is not here"
	}
	if err := page.Execute(w, struct {
		Title string
		Data  template.JS
	}{title, template.JS(d.script())}); err != nil {
		return fmt.Errorf("write the page: %w", err)
	}
	return nil
}

// script is the data as the page's <script> element holds it. There "</"
// would end the element early; a "<" can only be in a JSON string, where
// \u003c says the same.
func (d *Data) script() []byte {
	return bytes.ReplaceAll(d.appendJSON(nil), []byte("<"), []byte(`\u003c`))
}

// appendJSON writes the data compactly, so that 100,000 sockets stay a
// file a browser opens in seconds: each socket as an array (the page's
// script names the places), and what many share once: each event's
// fields in "fields", the names of states and event types and the marks'
// labels in "names", which sockets refer to by index. Written by hand:
// encoding/json would spend more time on it than the replay.
func (d *Data) appendJSON(b []byte) []byte {
	b = append(b, `{"title":`...)
	b = events.AppendJSONString(b, d.Title)
	b = append(b, `,"kernel":`...)
	b = events.AppendJSONString(b, d.Kernel)
	b = append(b, `,"created":`...)
	b = events.AppendJSONString(b, d.Created)
	b = append(b, `,"duration_ms":`...)
	b = appendFloat(b, d.Duration)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, d.Events, 10)
	b = append(b, `,"lost":`...)
	b = strconv.AppendUint(b, d.Lost, 10)
	b = append(b, `,"cut":`...)
	b = events.AppendJSONString(b, d.Cut)
	b = append(b, `,"used":{`...)
	for i, name := range slices.Sorted(maps.Keys(d.Used)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = events.AppendJSONString(b, name)
		b = append(b, ":["...)
		for j, use := range d.Used[name] {
			if j > 0 {
				b = append(b, ',')
			}
			b = events.AppendJSONString(b, use)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	b = append(b, `,"sysctls":[`...)
	for i, n := range d.Sysctls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"netns":`...)
		b = strconv.AppendUint(b, uint64(n.Netns), 10)
		b = append(b, `,"values":`...)
		b = appendStrings(b, n.Values)
		b = append(b, `,"about":`...)
		b = appendStrings(b, n.About)
		b = append(b, '}')
	}
	b = append(b, `],"sockets":[`...)
	fields, names := interner{index: map[string]int{}}, interner{index: map[string]int{}}
	for i, s := range d.Sockets {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendJSON(b, &fields, &names)
	}
	b = append(b, `],"fields":[`...)
	for i, f := range fields.values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, `],"names":[`...)
	for i, name := range names.values {
		if i > 0 {
			b = append(b, ',')
		}
		b = events.AppendJSONString(b, name)
	}
	return append(b, "]}"...)
}

// interner numbers distinct strings in the order first seen.
type interner struct {
	index  map[string]int
	values []string
}

func (in *interner) number(v string) int {
	n, ok := in.index[string(v)]
	if !ok {
		n = len(in.values)
		in.index[string(v)] = n
		in.values = append(in.values, v)
	}
	return n
}

// appendJSON writes [cookie, local, remote, pid, comm, end, closed_by,
// phases, events, findings]: a phase [state, start, end, 1 if a TIME_WAIT
// socket's], an event [at, type, label, fields], a finding [at, kind,
// message]; a state, type and label are numbers in names, fields in
// fields.
func (s *Socket) appendJSON(b []byte, fields, names *interner) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, s.Cookie, 10)
	for _, text := range []string{s.Local, s.Remote} {
		b = append(b, ',')
		b = events.AppendJSONString(b, text)
	}
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(s.PID), 10)
	for _, text := range []string{s.Comm, s.End, s.ClosedBy} {
		b = append(b, ',')
		b = events.AppendJSONString(b, text)
	}
	b = append(b, ",["...)
	for i, p := range s.Phases {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(names.number(p.State)), 10)
		b = append(b, ',')
		b = appendFloat(b, p.Start)
		b = append(b, ',')
		b = appendFloat(b, p.End)
		if p.Timewait {
			b = append(b, ",1]"...)
		} else {
			b = append(b, ",0]"...)
		}
	}
	b = append(b, "],["...)
	for i, e := range s.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendFloat(b, e.At)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(names.number(e.Type)), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(names.number(e.Label)), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(fields.number(string(e.Fields))), 10)
		b = append(b, ']')
	}
	b = append(b, "],["...)
	for i, f := range s.Findings {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendFloat(b, f.At)
		b = append(b, ',')
		b = events.AppendJSONString(b, f.Kind)
		b = append(b, ',')
		b = events.AppendJSONString(b, f.Message)
		b = append(b, ']')
	}
	return append(b, "]]"...)
}

func appendFloat(b []byte, f float64) []byte { return strconv.AppendFloat(b, f, 'f', -1, 64) }

// appendStrings writes a map of strings as an object, its keys in order.
func appendStrings(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = events.AppendJSONString(b, k)
		b = append(b, ':')
		b = events.AppendJSONString(b, m[k])
	}
	return append(b, '}')
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

// sysctlsOfEvents names the sysctls that decide what an event of a type
// shows, for the page to list them before the others.
var sysctlsOfEvents = map[events.Type][]string{
	events.TypeTimewaitEnter:    {"net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_fin_timeout"},
	events.TypeTimewaitOverflow: {"net.ipv4.tcp_max_tw_buckets"},
	events.TypeKeepaliveProbe:   {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"},
	events.TypeRTO:              {"net.ipv4.tcp_retries1", "net.ipv4.tcp_retries2", "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_rto_max_ms"},
	events.TypeZeroWindowProbe:  {"net.ipv4.tcp_retries2"},
}

// collector is a renderer that builds the report's data instead of writing.
type collector struct {
	start   time.Time
	sockets map[uint64]*Socket
	used    map[string][]string
	stats   render.Stats
	enc     events.JSONEncoder
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
	if _, ok := ev.(*events.FindingSummary); ok {
		return nil // a namespace's count: the overview counts the findings themselves
	}
	h := ev.Head()
	s := c.socket(h)
	s.Events = append(s.Events, Event{At: c.at(h.Time), Type: string(ev.Type()), Label: markLabel(ev), Fields: c.enc.AppendFields(nil, ev)})
	for _, name := range sysctlsOfEvents[ev.Type()] {
		c.use(name, "event "+string(ev.Type()))
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
		s.Findings = append(s.Findings, Finding{At: c.at(h.Time), Kind: string(e.Kind), Message: e.Message})
		for name := range e.Sysctls {
			c.use(name, "finding "+string(e.Kind))
		}
	}
	return nil
}

// use notes that a sysctl was used so, once.
func (c *collector) use(sysctl, by string) {
	if !slices.Contains(c.used[sysctl], by) {
		c.used[sysctl] = append(c.used[sysctl], by)
	}
}

// markLabel is what the timeline's mark of an event says, "" for an event
// that is no mark (its state shows as a band).
func markLabel(ev events.Event) string {
	switch e := ev.(type) {
	case *events.Retransmit:
		return "retransmit in " + string(e.State)
	case *events.ResetSent:
		return "RST sent " + e.Reason
	case *events.ResetReceived:
		return "RST received in " + string(e.State)
	case *events.KeepaliveProbe:
		return fmt.Sprintf("keepalive probe #%d", e.Probe)
	case *events.KeepaliveAck:
		return fmt.Sprintf("keepalive answered (%d probes unanswered before)", e.Probes)
	case *events.ZeroWindowProbe:
		return fmt.Sprintf("zero-window probe #%d, backoff %d, next +%s", e.Probe, e.Backoff, events.HumanDuration(e.Interval))
	case *events.RTO:
		return fmt.Sprintf("%s timeout, backoff %d", e.Kind, e.Backoff)
	case *events.TimewaitEnd:
		return "TIME_WAIT ended: " + string(e.Cause)
	case *events.TimeoutAbort:
		return "aborted by the " + e.Timer + " timer (" + e.Rule + ")"
	case *events.TimewaitOverflow:
		return "no TIME_WAIT: tcp_max_tw_buckets"
	case *events.TimewaitSubstate:
		return "TIME_WAIT socket: " + string(e.Old) + " -> " + string(e.New)
	case *events.TimewaitEnter:
		if e.Restart {
			return "TIME_WAIT timer restarted"
		}
	case *events.TimewaitSegment:
		return events.FlagNames(e.Flags) + " to TIME_WAIT: " + e.Verdict
	case *events.Segment:
		label := events.FlagNames(e.Flags) + " in " + string(e.State)
		if e.OutOfWindow {
			label += ", out of window"
		}
		if e.DataAfterFIN {
			label += ", data after FIN"
		}
		return label
	case *events.Finding:
		return string(e.Kind)
	}
	return ""
}

func (c *collector) Stats(s render.Stats) error { c.stats = s; return nil }
func (c *collector) Flush() error               { return nil }
