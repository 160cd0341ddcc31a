// Package tracer runs a live trace: kernel -> probe -> decode -> render.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"github.com/tcptrace/tcptrace/internal/netns"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/explain"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/sysctl"
	"github.com/tcptrace/tcptrace/internal/track"
)

// Config is one live run.
type Config struct {
	Probe        probe.Config
	BTFPath      string
	Format       string        // "text" or "json"
	Duration     time.Duration // 0: until ctx is done
	PollInterval time.Duration // longest delay before a record is shown
	ReadyFile    string        // written once every hook is attached
	MaxSockets   int           // socket histories kept at once
	Stdout       io.Writer
	Stderr       io.Writer
}

// Run traces until ctx is done or cfg.Duration has passed.
func Run(ctx context.Context, cfg Config) error {
	out, err := render.New(cfg.Format, cfg.Stdout, cfg.Stderr)
	if err != nil {
		return err
	}
	k, err := probe.OpenKernel(cfg.BTFPath)
	if err != nil {
		return err
	}
	p, err := probe.Open(k, cfg.Probe)
	if err != nil {
		return err
	}
	defer p.Close()
	dec := decode.New(k.Names(), probe.BootTime())

	stats := render.Stats{ByType: map[events.Type]uint64{}}
	sysctls := &sysctlCache{snaps: map[uint32]sysctl.Snapshot{}}
	tracker := track.New(track.Options{MaxSockets: cfg.MaxSockets, NetnsGone: netnsGone, Sysctl: sysctls.value})
	explainer := explain.New(sysctls.snapshot)
	// show renders what the tracker made of an event, and the findings.
	show := func(evs []events.Event) error {
		for _, ev := range evs {
			stats.Events++
			stats.ByType[ev.Type()]++
			if err := out.Event(ev); err != nil {
				return err
			}
			for _, f := range explainer.Explain(ev) {
				stats.Events++
				stats.ByType[f.Type()]++
				if err := out.Event(f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var firstDecodeErr error
	onRecord := func(rec []byte) error {
		ev, err := dec.Decode(rec)
		if err != nil {
			stats.Undecodable++
			if firstDecodeErr == nil {
				firstDecodeErr = err
				fmt.Fprintf(cfg.Stderr, "tcptrace: warning: undecodable record skipped: %v\n", err)
			}
			return nil
		}
		return show(tracker.Process(ev))
	}
	started := time.Now()
	if err := snapshot(p, cfg.Probe.Filter.Netns, onRecord); err != nil {
		fmt.Fprintf(cfg.Stderr, "tcptrace: warning: no snapshot of the sockets that exist already: %v\n", err)
	}
	if cfg.ReadyFile != "" {
		if err := os.WriteFile(cfg.ReadyFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	onPoll := func() error {
		if err := show(tracker.Tick(time.Now())); err != nil {
			return err
		}
		lost, err := p.Lost()
		if err != nil {
			return err
		}
		if lost > stats.Lost {
			fmt.Fprintf(cfg.Stderr, "tcptrace: warning: %d events lost so far: the ring buffer was full (raise --ring-size)\n", lost)
			stats.Lost = lost
		}
		return out.Flush()
	}
	if err := p.Read(ctx, cfg.PollInterval, onRecord, onPoll); err != nil {
		return err
	}
	if err := show(tracker.Flush(time.Now())); err != nil {
		return err
	}
	stats.Duration = time.Since(started)
	stats.Evicted = tracker.Evicted()
	return out.Stats(stats)
}

// snapshot passes the records of the sockets that exist now to onRecord:
// those of the traced namespace, or of every namespace tcptrace can find.
func snapshot(p *probe.Probe, only uint32, onRecord func([]byte) error) error {
	var paths []string
	if only != 0 {
		path, err := netns.Find(uint64(only))
		if err != nil {
			return err
		}
		paths = []string{path}
	} else {
		all, err := netns.All()
		if err != nil {
			return err
		}
		for _, path := range all {
			paths = append(paths, path)
		}
		sort.Strings(paths)
	}
	recs, err := p.Snapshot(paths)
	for len(recs) >= decode.RecordSize {
		if err := onRecord(recs[:decode.RecordSize]); err != nil {
			return err
		}
		recs = recs[decode.RecordSize:]
	}
	return err
}

// netnsGone tells whether no process or /run/netns file holds the network
// namespace with this inode any more.
func netnsGone(inode uint32) bool {
	_, err := netns.Find(uint64(inode))
	return errors.Is(err, netns.ErrNotFound)
}

// sysctlCache reads each network namespace's sysctls once, when first
// needed: they explain what the kernel did, and change rarely.
type sysctlCache struct {
	snaps map[uint32]sysctl.Snapshot
}

func (c *sysctlCache) snapshot(inode uint32) (sysctl.Snapshot, error) {
	if snap, ok := c.snaps[inode]; ok {
		return snap, nil
	}
	path, err := netns.Find(uint64(inode))
	if err != nil {
		return sysctl.Snapshot{}, err
	}
	snap, err := sysctl.ReadNetns(path)
	if err != nil {
		return snap, err
	}
	c.snaps[inode] = snap
	return snap, nil
}

func (c *sysctlCache) value(inode uint32, name string) (int64, bool) {
	snap, err := c.snapshot(inode)
	if err != nil {
		return 0, false
	}
	v, ok := snap.Lookup(name)
	if !ok || !v.Present {
		return 0, false
	}
	n, err := v.Int()
	return n, err == nil
}
