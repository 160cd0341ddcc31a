// Package pipeline is what happens to the kernel's records once they are
// read, live or from a recording: decode -> track -> explain -> roll-up ->
// render. Live tracing and replay run exactly this code, so they print the
// same.
package pipeline

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/explain"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/rollup"
	"github.com/tcptrace/tcptrace/internal/sysctl"
	"github.com/tcptrace/tcptrace/internal/track"
)

// Env answers what the pipeline asks of the system: live, the running
// kernel; in a replay, the answers the recording kept.
type Env interface {
	// Sysctls returns a network namespace's sysctls.
	Sysctls(netns uint32) (sysctl.Snapshot, error)
	// NetnsGone tells whether a network namespace no longer exists.
	NetnsGone(netns uint32) bool
	// Cgroup returns the cgroup with this id, nil if not known; the same
	// value for every call with one id once known.
	Cgroup(id uint64) *events.Cgroup
}

// Filter keeps some events; zero values keep all. Live tracing filters in
// the kernel, and here by port too: the kernel passes the destroy of any
// socket whose remote port tcp_disconnect() zeroed, which the tracker gives
// its socket's 4-tuple (by cookie) where it tracks it, so that of a socket
// never seen (one that never connected) stays out. Replay filters here, on
// what the tracker made: it sees every event before Until (the replay ends
// there, and the sockets still open end as open), and gives those the
// kernel sent without an owner their socket's. Every filter given must
// hold; the values of one are alternatives.
type Filter struct {
	PIDs         []uint32
	Cgroups      container.Selector // on the owner's cgroup; an unknown one is not kept
	Ports        []uint16           // local or remote
	LocalPorts   []uint16
	RemotePorts  []uint16
	Since, Until time.Time
}

func (f *Filter) keeps(ev events.Event) bool {
	h := ev.Head()
	if len(f.PIDs) > 0 && !slices.Contains(f.PIDs, h.Owner.PID) {
		return false
	}
	if !f.Cgroups.Empty() && (h.Owner.Cgroup == nil || !f.Cgroups.Selects(*h.Owner.Cgroup)) {
		return false
	}
	local, remote := h.Local.Port(), h.Remote.Port()
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, local) && !slices.Contains(f.Ports, remote) {
		return false
	}
	if len(f.LocalPorts) > 0 && !slices.Contains(f.LocalPorts, local) {
		return false
	}
	if len(f.RemotePorts) > 0 && !slices.Contains(f.RemotePorts, remote) {
		return false
	}
	return f.Since.IsZero() || !h.Time.Before(f.Since)
}

// empty tells whether the filter keeps everything before Until.
func (f *Filter) empty() bool {
	return len(f.PIDs) == 0 && f.Cgroups.Empty() && len(f.Ports) == 0 && len(f.LocalPorts) == 0 && len(f.RemotePorts) == 0 && f.Since.IsZero()
}

// ended tells whether t is past the end of the replay.
func (f *Filter) ended(t time.Time) bool { return !f.Until.IsZero() && !t.Before(f.Until) }

// Config is how the pipeline shows what it made.
type Config struct {
	Names      decode.Names
	Boot       time.Time // when the kernel's monotonic clock read zero
	Format     render.Format
	MaxSockets int
	Filter     Filter
	// FullFindings writes every finding in full, and no finding_summary.
	FullFindings bool
	// SummaryOnly writes only each socket's summary (text: as a table).
	SummaryOnly bool
	// Renderer, if set, takes the events instead of one made for Format.
	Renderer render.Renderer
	// Observe, if set, sees every event written, as it is written (the
	// metrics sink): it must not block.
	Observe func(events.Event)
	Stdout  io.Writer
	Stderr  io.Writer
}

// Pipeline turns records into what a person or a tool reads. Not safe for
// concurrent use.
type Pipeline struct {
	dec            *decode.Decoder
	tracker        *track.Tracker
	explainer      *explain.Explainer
	rollup         *rollup.Rollup
	out            render.Renderer
	observe        func(events.Event)
	filter         Filter
	filtering      bool // filter keeps less than all
	summaryOnly    bool
	stats          render.Stats // ByType is filled from byType when asked
	byType         []typeCount
	stderr         io.Writer
	firstDecodeErr error
	cgroup         func(id uint64) *events.Cgroup
}

// typeCount is how many events of a type were written. A handful of types
// make all the events: a short list searched by the type's name, a string
// constant whose comparison ends at the pointer, costs less per event than
// a map lookup, which hashes the name.
type typeCount struct {
	typ events.Type
	n   uint64
}

// New returns a pipeline asking env what it needs to know of the system.
func New(cfg Config, env Env) (*Pipeline, error) {
	out := cfg.Renderer
	if out == nil {
		var err error
		if out, err = render.New(cfg.Format, cfg.Stdout, cfg.Stderr); err != nil {
			return nil, err
		}
		if t, ok := out.(*render.Text); ok && cfg.SummaryOnly {
			t.SummaryTable()
		}
	}
	return &Pipeline{
		dec:         decode.New(cfg.Names, cfg.Boot),
		tracker:     track.New(track.Options{MaxSockets: cfg.MaxSockets, NetnsGone: env.NetnsGone, Sysctls: env.Sysctls}),
		explainer:   explain.New(env.Sysctls),
		rollup:      rollup.New(cfg.FullFindings),
		out:         out,
		observe:     cfg.Observe,
		filter:      cfg.Filter,
		filtering:   !cfg.Filter.empty(),
		summaryOnly: cfg.SummaryOnly,
		stderr:      cfg.Stderr,
		cgroup:      env.Cgroup,
	}, nil
}

// Record takes one ring-buffer record. A record that does not decode is
// counted and skipped, with a warning the first time.
func (p *Pipeline) Record(rec []byte) error {
	ev, err := p.dec.Decode(rec)
	if err != nil {
		p.stats.Undecodable++
		if p.firstDecodeErr == nil {
			p.firstDecodeErr = err
			fmt.Fprintf(p.stderr, "tcptrace: warning: undecodable record skipped: %v\n", err)
		}
		return nil
	}
	h := ev.Head()
	if p.filter.ended(h.Time) {
		return nil
	}
	// Before the tracker, which gives the socket's owner to its events
	// that come without one.
	if h.Owner.PID != 0 && h.Owner.CgroupID != 0 {
		h.Owner.Cgroup = p.cgroup(h.Owner.CgroupID)
	}
	return p.show(p.tracker.Process(ev))
}

// Tick lets time pass (TIME_WAIT sockets stopped early for no visible
// reason end after a while, the findings of an interval are summed up).
func (p *Pipeline) Tick(now time.Time) error {
	if p.filter.ended(now) {
		return nil
	}
	if err := p.show(p.tracker.Tick(now)); err != nil {
		return err
	}
	return p.summarize(p.rollup.Advance(now))
}

// Waiting tells whether a Tick at now could change anything.
func (p *Pipeline) Waiting(now time.Time) bool { return p.tracker.Waiting() || p.rollup.Due(now) }

// Flush writes out what is buffered.
func (p *Pipeline) Flush() error { return p.out.Flush() }

// Tracked is how many sockets have a history now.
func (p *Pipeline) Tracked() int { return p.tracker.Tracked() }

// Evicted is how many socket histories were dropped so far to stay within
// MaxSockets.
func (p *Pipeline) Evicted() uint64 { return p.tracker.Evicted() }

// Stats is the account so far.
func (p *Pipeline) Stats() render.Stats {
	p.stats.ByType = make(map[events.Type]uint64, len(p.byType))
	for _, c := range p.byType {
		p.stats.ByType[c.typ] = c.n
	}
	return p.stats
}

// RecordsLost says the kernel dropped records just now: the stories of the
// sockets tracked now may miss events, and say so.
func (p *Pipeline) RecordsLost() { p.tracker.RecordsLost() }

// SetQueuePeak notes for the closing stats how far behind the output was.
func (p *Pipeline) SetQueuePeak(bytes int64) { p.stats.QueuePeak = bytes }

// SetProgramCosts notes for the closing stats what the BPF programs cost.
func (p *Pipeline) SetProgramCosts(costs []events.ProgramCost) { p.stats.Programs = costs }

// Finish ends every story still open and writes the closing stats.
func (p *Pipeline) Finish(now time.Time, lost events.Loss, duration time.Duration) error {
	if p.filter.ended(now) { // the replay ended at Until
		duration -= now.Sub(p.filter.Until)
		now = p.filter.Until
	}
	if err := p.show(p.tracker.Flush(now)); err != nil {
		return err
	}
	if err := p.summarize(p.rollup.Finish(now)); err != nil {
		return err
	}
	p.stats.Lost, p.stats.Duration, p.stats.Evicted = lost, duration, p.tracker.Evicted()
	return p.out.Stats(p.Stats())
}

// show renders what the tracker made of an event, and the findings.
func (p *Pipeline) show(evs []events.Event) error {
	for _, ev := range evs {
		if err := p.write(ev); err != nil {
			return err
		}
		for _, f := range p.explainer.Explain(ev) {
			if err := p.write(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// write renders an event the filter keeps, after the summaries due by its
// time. The roll-up sees the findings written: a repeat names one shown.
func (p *Pipeline) write(ev events.Event) error {
	if err := p.summarize(p.rollup.Advance(ev.Head().Time)); err != nil {
		return err
	}
	if p.filtering && !p.filter.keeps(ev) {
		return nil
	}
	if p.summaryOnly {
		if _, ok := ev.(*events.Summary); !ok {
			return nil
		}
	}
	if f, ok := ev.(*events.Finding); ok {
		p.rollup.Finding(f)
	}
	return p.render(ev)
}

// summarize renders summaries, which count only findings written: the
// filter has had its say.
func (p *Pipeline) summarize(sums []*events.FindingSummary) error {
	for _, s := range sums {
		if err := p.render(s); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pipeline) render(ev events.Event) error {
	p.stats.Events++
	p.count(ev.Type())
	if p.observe != nil {
		p.observe(ev)
	}
	return p.out.Event(ev)
}

func (p *Pipeline) count(typ events.Type) {
	for i := range p.byType {
		if p.byType[i].typ == typ {
			p.byType[i].n++
			return
		}
	}
	p.byType = append(p.byType, typeCount{typ, 1})
}
