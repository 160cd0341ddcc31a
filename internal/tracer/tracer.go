// Package tracer runs a live trace: kernel -> probe -> decode -> render.
package tracer

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
)

// Config is one live run.
type Config struct {
	Probe        probe.Config
	BTFPath      string
	Format       string        // "text" or "json"
	Duration     time.Duration // 0: until ctx is done
	PollInterval time.Duration // longest delay before a record is shown
	ReadyFile    string        // written once every hook is attached
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

	started := time.Now()
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

	stats := render.Stats{ByType: map[events.Type]uint64{}}
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
		stats.Events++
		stats.ByType[ev.Type()]++
		return out.Event(ev)
	}
	onPoll := func() error {
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
	stats.Duration = time.Since(started)
	return out.Stats(stats)
}
