//go:build linux

// Package tracer runs a live trace: kernel -> probe -> pipeline (decode ->
// track -> explain -> render), recording it on request.
package tracer

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/flow"
	"github.com/tcptrace/tcptrace/internal/metrics"
	"github.com/tcptrace/tcptrace/internal/netns"
	"github.com/tcptrace/tcptrace/internal/otlp"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Config is one live run.
type Config struct {
	Probe         probe.Config
	BTFPath       string
	Format        render.Format
	Duration      time.Duration // 0: until ctx is done
	PollInterval  time.Duration // longest delay before a record is shown
	ReadyFile     string        // written once every hook is attached
	MaxSockets    int           // socket histories kept at once
	FullFindings  bool          // every finding in full, no finding_summary
	SummaryOnly   bool          // only each socket's summary
	Record        string        // a file to record the run to, if any
	RecordMax     int64         // stop or rotate the recording past this many bytes (0: no limit)
	RecordKeep    int           // at RecordMax, rotate, keeping this many full files (0: stop recording)
	Args          []string      // the command line, for the recording
	Status        bool          // keep a status line on the terminal (stderr)
	Discard       bool          // drop the records unread: measures the kernel side alone
	Metrics       string        // serve Prometheus metrics at this host:port, if any
	MetricsLabels []string      // the optional labels of the metrics (metrics.ParseLabels)
	OTLP          *otlp.Config  // export findings, summaries and the metrics to a collector, if set
	// RuntimeEndpoint is the CRI socket that names pods (container.RuntimeSocket);
	// "": those of container.RuntimeEndpoints there are, in turn.
	RuntimeEndpoint string
	Stdout          io.Writer
	Stderr          io.Writer
}

// Run traces until ctx is done or cfg.Duration has passed.
func Run(ctx context.Context, cfg Config) error {
	var mx *metrics.Metrics
	if cfg.Metrics != "" {
		// Listening first: an address taken stops tracing before any hook
		// is attached.
		mx = metrics.New(cfg.MetricsLabels)
		srv, err := mx.Serve(cfg.Metrics, cfg.Stderr)
		if err != nil {
			return err
		}
		defer srv.Close() // scrapes cut short at exit matter to no one
	}
	k, p, err := probe.Open(cfg.BTFPath, cfg.Probe)
	if err != nil {
		return err
	}
	defer p.Close()
	for _, line := range p.Refused() {
		fmt.Fprintf(cfg.Stderr, "tcptrace: warning: %s\n", line)
	}
	// Wall-clock times only (Round(0) drops the monotonic reading): a
	// replay has nothing else, and must compute the same durations.
	boot := probe.BootTime()
	started := time.Now().Round(0)

	env := &liveEnv{snaps: map[uint32]readSysctls{}}
	if cfg.Record != "" {
		if env.rec, err = record.Create(cfg.Record, header(k, p, boot, started, cfg), cfg.RecordMax, cfg.RecordKeep); err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	if mount, err := container.Mount(); err != nil {
		fmt.Fprintf(cfg.Stderr, "tcptrace: warning: no cgroup and container of the sockets' owners: %v\n", err)
	} else {
		pods := container.PodSources{Logs: container.PodLogs, NamedBy: func(source string) {
			fmt.Fprintf(cfg.Stderr, "tcptrace: pods named by %s\n", source)
		}}
		endpoints := container.FindRuntimeEndpoints()
		if cfg.RuntimeEndpoint != "" {
			endpoints = []string{cfg.RuntimeEndpoint}
		}
		for _, ep := range endpoints {
			rt, err := container.DialCRI(ep)
			if err != nil {
				return err
			}
			defer rt.Close() // nothing is left to ask it at exit
			pods.Runtimes = append(pods.Runtimes, rt)
		}
		env.cgroups = container.NewResolver(mount, pods, env.recordCgroup)
	}
	// Made once the hooks are attached: a run refused before (no root, an
	// old kernel) sends nothing and waits for no collector.
	var exp *otlp.Exporter
	if cfg.OTLP != nil {
		if mx == nil {
			mx = metrics.New(cfg.MetricsLabels)
		}
		oc := *cfg.OTLP
		oc.Metrics, oc.Stderr = mx.Registry(), cfg.Stderr
		if exp, err = otlp.New(ctx, oc); err != nil {
			return err
		}
		defer exp.Close() // on an early return; at the end, before the stats
	}
	stdout, stderr := cfg.Stdout, cfg.Stderr
	var status *statusLine
	if cfg.Status {
		status = newStatusLine(cfg.Stderr, started, nil)
		stdout, stderr = status.Output(cfg.Stdout), status.Output(cfg.Stderr)
	}
	plCfg := pipeline.Config{Names: k.Names(), Boot: boot, Format: cfg.Format,
		MaxSockets: cfg.MaxSockets, FullFindings: cfg.FullFindings, SummaryOnly: cfg.SummaryOnly, Filter: pipeline.Filter{Ports: cfg.Probe.Filter.Ports,
			LocalPorts: cfg.Probe.Filter.LocalPorts, RemotePorts: cfg.Probe.Filter.RemotePorts},
		Stdout: stdout, Stderr: cfg.Stderr}
	switch {
	case exp != nil:
		plCfg.Observe = func(ev events.Event) { mx.Observe(ev); exp.Observe(ev) }
		plCfg.Closing = func(s *render.Stats) { sent := exp.Close(); s.OTLP = &sent }
	case mx != nil:
		plCfg.Observe = mx.Observe
	}
	pl, err := pipeline.New(plCfg, env)
	if err != nil {
		return err
	}
	q := newQueue(DefaultQueueBytes)
	// The sinks, in order: the recorder writes a record down before the
	// pipeline acts on it, and learns from the pipeline whether a poll's
	// time is worth a tick; the status line is drawn after the output.
	var sinks flow.Chain
	if env.rec != nil {
		sinks = append(sinks, env.rec.Sink(pl.Waiting, func() {
			fmt.Fprintf(cfg.Stderr, "tcptrace: warning: %s reached --record-max-size: recording stopped, tracing goes on\n", cfg.Record)
		}, func() {
			fmt.Fprintf(cfg.Stderr, "tcptrace: %s reached --record-max-size: moved to %s.1, recording goes on in a new %s\n", cfg.Record, cfg.Record, cfg.Record)
		}))
	}
	if mx != nil {
		sinks = append(sinks, mx.Sink(pl.Evicted, q.bytes.Load))
	}
	sinks = append(sinks, pl.Sink())
	sinks = append(sinks, &lossWarning{w: stderr, spacing: spaced{every: lossWarningEvery}})
	if status != nil {
		status.figures = func() statusFigures {
			return statusFigures{events: pl.Stats().Events, sockets: pl.Tracked(), queued: q.bytes.Load()}
		}
		sinks = append(sinks, status)
	}
	snapshotTo := sinks.Record
	if cfg.Discard {
		snapshotTo = func([]byte) error { return nil }
	}
	if err := snapshot(p, cfg.Probe.Filter.Netns, snapshotTo); err != nil {
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
	boundCtx, stopBounding := context.WithCancel(context.Background())
	defer stopBounding()
	boundHeap(boundCtx)

	// The reader (this goroutine) only copies records into the queue; the
	// taker hands them to the sinks, and tells them of each poll.
	var losses flow.Losses
	onPoll := func(b *batch) error {
		if err := losses.Update(sinks, b.lost); err != nil {
			return err
		}
		return sinks.Poll(b.at)
	}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	taken := make(chan error, 1)
	go func() {
		var err error
		for b := range q.ch {
			err = eachRecord(b.recs, sinks.Record)
			if err == nil {
				err = onPoll(b)
			}
			q.done(b)
			if err != nil {
				q.abandon()
				stopReading()
				break
			}
		}
		taken <- err
	}()
	add := q.add
	if cfg.Discard {
		add = func([]byte) {}
	}
	readErr := p.Read(readCtx, cfg.PollInterval, func(rec []byte) error { add(rec); return nil }, func() error {
		// Under load the reader never waits in the Go scheduler, only in
		// epoll: the runtime would take it for a goroutine hogging its
		// thread, preempt it every 10 ms and keep its monitor thread
		// waking every 20 µs, which costs more CPU than the poll itself.
		// Yielding at each poll shows it is not.
		runtime.Gosched()
		n, err := p.Lost()
		if err != nil {
			return err
		}
		q.send(time.Now().Round(0), n)
		return nil
	})
	q.close()
	if err := <-taken; err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	end := time.Now().Round(0)
	loss, err := p.Loss()
	if err != nil {
		return err
	}
	// Records lost in the drain after the last poll.
	if err := losses.Update(sinks, loss.Total); err != nil {
		return err
	}
	costs, err := p.ProgramCosts()
	if err != nil {
		return err
	}
	return sinks.End(flow.End{At: end, Duration: end.Sub(started), Loss: loss, QueuePeak: q.peak.Load(), Programs: costs})
}

// lossWarning says on stderr that records were lost: at the first poll
// after the first loss, then at most once every lossWarningEvery, with the
// total so far. A node's daemon losing records for minutes writes a line
// in that time, not one a poll; the closing stats give the total.
type lossWarning struct {
	w       io.Writer
	spacing spaced
	total   uint64 // lost so far
	said    uint64 // the total the last warning gave
}

// lossWarningEvery spaces the warnings of records lost.
const lossWarningEvery = 10 * time.Second

func (*lossWarning) Record([]byte) error { return nil }

func (l *lossWarning) Lost(total uint64) error {
	l.total = total
	return nil
}

func (l *lossWarning) Poll(now time.Time) error {
	if l.total > l.said && l.spacing.due(now) {
		fmt.Fprintf(l.w, "tcptrace: warning: %d events lost so far: the ring buffer was full (raise --ring-size)\n", l.total)
		l.said = l.total
	}
	return nil
}

func (*lossWarning) End(flow.End) error { return nil }

// header describes the run at the top of its recording.
func header(k *probe.Kernel, p *probe.Probe, boot, started time.Time, cfg Config) record.Header {
	h := record.Header{Created: started, Kernel: k.Release, Names: k.Names(), BootUnixNs: boot.UnixNano(),
		RecordSize: decode.RecordSize, Args: cfg.Args,
		Ports: cfg.Probe.Filter.Ports, LocalPorts: cfg.Probe.Filter.LocalPorts, RemotePorts: cfg.Probe.Filter.RemotePorts}
	for _, hk := range p.Hooks() {
		rh := record.Hook{Name: hk.Name, Kind: string(hk.Kind), Program: hk.Program}
		if hk.Err != nil {
			rh.Error = hk.Err.Error()
		}
		h.Hooks = append(h.Hooks, rh)
	}
	return h
}

// liveEnv answers the pipeline from the running system, and records the
// answers when recording.
type liveEnv struct {
	snaps map[uint32]readSysctls
	gen   uint64 // of the newest sysctls read
	rec   *record.Writer
	// netnsAlive lists the namespaces there were at netnsListed.
	netnsAlive  map[uint64]string
	netnsListed time.Time
	cgroups     *container.Resolver // nil without a cgroup v2 hierarchy
}

// Cgroup resolves a cgroup id from the running system.
func (e *liveEnv) Cgroup(id uint64) *events.Cgroup {
	if e.cgroups == nil {
		return nil
	}
	return e.cgroups.Resolve(id)
}

// recordCgroup records what an id resolved to, the first time.
func (e *liveEnv) recordCgroup(id uint64, cg *events.Cgroup) {
	if e.rec != nil {
		// A failed write shows at the next Sync.
		e.rec.Cgroup(record.Cgroup{ID: id, Path: cg.Path, Pod: cg.Pod, PodNamespace: cg.PodNamespace})
	}
}

// sysctlsTTL is how long one reading of a namespace's sysctls answers for
// it: findings quote values at most this old, and a busy namespace's
// findings cost one reading a second, not one each.
const sysctlsTTL = time.Second

// readSysctls is one reading of a namespace's sysctls.
type readSysctls struct {
	snap sysctl.Snapshot
	err  error
	at   time.Time
}

// Sysctls reads a namespace's sysctls when first needed and again once the
// last reading is older than sysctlsTTL; a reading whose values differ from
// the one before is a new generation, and is recorded.
func (e *liveEnv) Sysctls(inode uint32) (sysctl.Snapshot, error) {
	now := time.Now()
	last, ok := e.snaps[inode]
	if ok && now.Sub(last.at) < sysctlsTTL {
		return last.snap, last.err
	}
	snap, err := e.readSysctls(inode)
	switch {
	case err != nil:
		snap = last.snap // the last good reading, for the next to compare with
	case ok && last.err == nil && snap.Same(last.snap):
		snap.Gen = last.snap.Gen
	default:
		e.gen++
		snap.Gen = e.gen
		if e.rec != nil {
			if err := e.rec.Sysctls(inode, snap); err != nil {
				return snap, fmt.Errorf("record: %w", err)
			}
		}
	}
	e.snaps[inode] = readSysctls{snap: snap, err: err, at: now}
	return snap, err
}

func (e *liveEnv) readSysctls(inode uint32) (sysctl.Snapshot, error) {
	path, err := netns.Find(uint64(inode))
	if err != nil {
		return sysctl.Snapshot{}, err
	}
	return sysctl.ReadNetns(path)
}

// netnsListTTL is how long one listing of the namespaces answers NetnsGone:
// a namespace's purge asks once for each of its TIME_WAIT sockets, which
// may be hundreds of thousands, and a listing walks every process. A
// namespace made within that time may be taken for gone at most that long.
const netnsListTTL = 100 * time.Millisecond

// NetnsGone tells whether no process or /run/netns file holds the network
// namespace with this inode any more.
func (e *liveEnv) NetnsGone(inode uint32) bool {
	now := time.Now()
	if e.netnsListed.IsZero() || now.Sub(e.netnsListed) > netnsListTTL {
		all, err := netns.All()
		if err != nil {
			return false // cannot tell: not gone
		}
		e.netnsAlive, e.netnsListed = all, now
	}
	_, alive := e.netnsAlive[uint64(inode)]
	if e.rec != nil {
		e.rec.NetnsGone(inode, !alive) // a failed write shows at the next Sync
	}
	return !alive
}

// snapshot passes the records of the sockets that exist now to onRecord:
// those of the traced namespace, or of every namespace tcptrace can find.
func snapshot(p *probe.Probe, only uint32, onRecord func([]byte) error) error {
	recs, err := p.Snapshot(only)
	if err := eachRecord(recs, onRecord); err != nil {
		return err
	}
	return err
}

// eachRecord passes each of the records laid end to end in recs to
// onRecord. Bytes left that are shorter than the record they start are
// passed too, so that they are counted as a record that does not decode
// rather than dropped unseen.
func eachRecord(recs []byte, onRecord func([]byte) error) error {
	for len(recs) > 0 {
		n := min(decode.Size(recs), len(recs))
		if err := onRecord(recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}
