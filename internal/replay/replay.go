// Package replay runs a recording through the same pipeline as a live trace.
// It needs no privileges and runs wherever Go does.
package replay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/flow"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Config is one replay.
type Config struct {
	File       string
	Format     render.Format
	MaxSockets int
	Filter     pipeline.Filter
	// FullFindings writes every finding in full, and no finding_summary.
	FullFindings bool
	// SummaryOnly writes only each socket's summary.
	SummaryOnly bool
	Renderer    render.Renderer // instead of one for Format, if set
	Stdout      io.Writer
	Stderr      io.Writer
}

// Run replays cfg.File.
func Run(cfg Config) error {
	rec, err := Load(cfg.File)
	if err != nil {
		return err
	}
	return Play(rec, cfg)
}

// Play replays a recording already read.
func Play(rec *record.Recording, cfg Config) error {
	env := newEnv(rec)
	env.readAfter(rec.Items) // those read before the first record
	filter := cfg.Filter
	if len(filter.Ports) == 0 && len(filter.LocalPorts) == 0 && len(filter.RemotePorts) == 0 {
		// What the live run showed.
		filter.Ports, filter.LocalPorts, filter.RemotePorts = rec.Header.Ports, rec.Header.LocalPorts, rec.Header.RemotePorts
	}
	p, err := pipeline.New(pipeline.Config{Names: rec.Header.Names, Boot: time.Unix(0, rec.Header.BootUnixNs),
		Format: cfg.Format, MaxSockets: cfg.MaxSockets, Filter: filter, FullFindings: cfg.FullFindings, SummaryOnly: cfg.SummaryOnly, Renderer: cfg.Renderer,
		Stdout: cfg.Stdout, Stderr: cfg.Stderr}, env)
	if err != nil {
		return err
	}
	sink := p.Sink()
	var losses flow.Losses
	last := rec.Header.Created
	for i, item := range rec.Items {
		if item.Rec != nil || !item.Tick.IsZero() || item.End != nil {
			env.readAfter(rec.Items[i+1:])
		}
		switch {
		case item.Rec != nil:
			if err := sink.Record(item.Rec); err != nil {
				return err
			}
		case !item.Tick.IsZero():
			last = item.Tick
			if err := sink.Poll(item.Tick); err != nil {
				return err
			}
		case item.Lost != 0:
			if err := losses.Update(sink, item.Lost); err != nil {
				return err
			}
		case item.End != nil:
			return sink.End(flow.End{At: time.Unix(0, item.End.UnixNs), Duration: time.Duration(item.End.DurationNs),
				Loss: events.Loss{Total: item.End.Lost, ByKind: item.End.LostByKind, ByCPU: item.End.LostByCPU}, QueuePeak: item.End.QueuePeak})
		}
	}
	fmt.Fprintf(cfg.Stderr, "tcptrace: warning: %s ends early (the run was killed or the file cut): replayed what it holds\n", cfg.File)
	return sink.End(flow.End{At: last, Duration: last.Sub(rec.Header.Created), Loss: events.Loss{Total: losses.Told()}})
}

// Load reads a recording file, with errors a person can act on.
func Load(path string) (*record.Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec, err := record.Read(f)
	if err != nil {
		if errors.Is(err, record.ErrNotRecording) {
			return nil, fmt.Errorf("%s is %w: make one with tcptrace --record FILE", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rec.Header.Version == 1 {
		if err := fromV1(rec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if rec.Header.RecordSize != decode.RecordSize {
		return nil, fmt.Errorf("%s holds records of a %d-byte layout, this tcptrace reads %d: replay it with the tcptrace that made it",
			path, rec.Header.RecordSize, decode.RecordSize)
	}
	return rec, nil
}

// fromV1 brings the records of a recording of format 1 (one layout for all
// kinds) to today's.
func fromV1(rec *record.Recording) error {
	if rec.Header.RecordSize != decode.RecordSizeV1 && rec.Header.RecordSize != decode.RecordSizeV1BeforeTails {
		return fmt.Errorf("holds records of %d bytes, this tcptrace reads recordings of format 1 with %d: replay it with the tcptrace that made it",
			rec.Header.RecordSize, decode.RecordSizeV1)
	}
	for i, item := range rec.Items {
		if item.Rec == nil {
			continue
		}
		r, err := decode.FromV1(item.Rec)
		if err != nil {
			return fmt.Errorf("record %d: %w", i+1, err)
		}
		rec.Items[i].Rec = r
	}
	rec.Header.Version, rec.Header.RecordSize = record.Version, decode.RecordSize
	return nil
}

// env answers as the recorded run was answered.
type env struct {
	sysctls map[uint32]sysctl.Snapshot
	gen     uint64 // of the newest sysctls
	gone    map[uint32][]bool
	cgroups map[uint64]*events.Cgroup
}

func newEnv(rec *record.Recording) *env {
	e := &env{sysctls: map[uint32]sysctl.Snapshot{}, gone: map[uint32][]bool{}, cgroups: map[uint64]*events.Cgroup{}}
	for _, item := range rec.Items {
		if g := item.NetnsGone; g != nil {
			e.gone[g.Netns] = append(e.gone[g.Netns], g.Gone)
		}
	}
	return e
}

// readAfter takes the sysctls read and the cgroups resolved while the item
// before items was processed: a live run records an answer after the
// record (or tick) that needed it, before the next.
func (e *env) readAfter(items []record.Item) {
	for _, item := range items {
		if item.Rec != nil || !item.Tick.IsZero() || item.End != nil {
			return
		}
		if s := item.Sysctls; s != nil {
			e.gen++
			snap := s.Snapshot()
			snap.Gen = e.gen
			e.sysctls[s.Netns] = snap
		}
		if c := item.Cgroup; c != nil {
			cg := container.Parse(c.Path)
			cg.Pod, cg.PodNamespace = c.Pod, c.PodNamespace
			e.cgroups[c.ID] = &cg
		}
	}
}

func (e *env) Cgroup(id uint64) *events.Cgroup { return e.cgroups[id] }

func (e *env) Sysctls(netns uint32) (sysctl.Snapshot, error) {
	if snap, ok := e.sysctls[netns]; ok {
		return snap, nil
	}
	return sysctl.Snapshot{}, fmt.Errorf("the recording holds no sysctls of network namespace %d", netns)
}

func (e *env) NetnsGone(netns uint32) bool {
	answers := e.gone[netns]
	if len(answers) == 0 {
		return false
	}
	e.gone[netns] = answers[1:]
	return answers[0]
}
