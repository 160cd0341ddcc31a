//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/metrics"
	"github.com/tcptrace/tcptrace/internal/netns"
	"github.com/tcptrace/tcptrace/internal/otlp"
	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/replay"
	"github.com/tcptrace/tcptrace/internal/tracer"
)

type traceFlags struct {
	filters         filterFlags
	view            viewFlags
	netns           string
	ipv4, ipv6      bool
	duration        time.Duration
	readyFile       string
	ringSize        string
	wakeupBytes     int
	pollInterval    time.Duration
	record          string
	recordMax       string
	report          string
	recordKeep      int
	btfPath         string
	cpuProfile      string
	discard         bool
	skipHooks       []string
	bpfStats        bool
	metrics         string
	metricsLabels   []string
	otlp            string
	runtimeEndpoint string
}

func bindTrace(cmd *cobra.Command) func([]string) error {
	f := defineTraceFlags(cmd)
	return func([]string) error { return runTrace(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr()) }
}

func defineTraceFlags(cmd *cobra.Command) *traceFlags {
	f := &traceFlags{}
	flags := cmd.Flags()
	f.filters.define(flags)
	_ = cmd.RegisterFlagCompletionFunc("pid", completePIDs) // fails only for an undefined flag
	flags.StringVar(&f.netns, "netns", "", "only this network namespace: its inode number or a namespace file (/proc/PID/ns/net, /run/netns/NAME)")
	flags.BoolVarP(&f.ipv4, "ipv4", "4", false, "only IPv4 sockets")
	flags.BoolVarP(&f.ipv6, "ipv6", "6", false, "only IPv6 sockets")
	f.view.define(cmd, textOutput, jsonLinesOutput, noOutput)
	flags.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s, 5m); default: until Ctrl-C")
	flags.StringVar(&f.ringSize, "ring-size", "64M", "BPF ring buffer size, a power of two (e.g. 4M, 256M): kernel memory, "+
		"taken at start; the default holds about a second of the busiest churn measured (some 60 MB/s of records), "+
		"so that the reader falling behind that long loses nothing")
	flags.DurationVar(&f.pollInterval, "poll-interval", 10*time.Millisecond, "longest delay between an event and its output; shorter costs more CPU under load")
	flags.IntVar(&f.wakeupBytes, "wakeup-bytes", 64<<10, "wake the reader early once this many bytes wait in the ring (0: for every event)")
	flags.StringVar(&f.record, "record", "", "also record the run to this file, for tcptrace replay and report (docs/record.md)")
	flags.StringVar(&f.report, "report", "", "when tracing ends, write the run's HTML report to this file, as tcptrace report makes it (from --record's recording, or one made in the temporary directory and removed; --record-max-size limits both)")
	flags.StringVar(&f.recordMax, "record-max-size", "1G", "stop recording (not tracing) once the file reaches this size, or rotate it with --record-keep (e.g. 100M; 0: no limit)")
	flags.IntVar(&f.recordKeep, "record-keep", 0, "at --record-max-size, move FILE to FILE.1 (FILE.1 to FILE.2...), keep this many such files, "+
		"each a whole recording, and record on in a new FILE (0: stop recording instead)")
	flags.StringVar(&f.readyFile, "ready-file", "", "write this file once every hook is attached (for scripts)")
	flags.StringSliceVar(&f.skipHooks, "skip-hook", nil, "leave out optional hooks, by program (e.g. learn_owners), as if this kernel refused them (see tcptrace features)")
	flags.BoolVar(&f.bpfStats, "bpf-stats", false, "count the runs of each BPF program and the kernel time spent in them, and report them in the closing stats (each run costs a clock read more)")
	flags.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics while tracing (ADDR host:port, e.g. :9464 or 127.0.0.1:9464; README: Metrics)")
	flags.StringSliceVar(&f.metricsLabels, "metrics-labels", nil, "label the --metrics series also by these, besides the network namespace: "+
		strings.Join(metrics.OptionalLabels, ", ")+" (a 4-tuple or a pid never: a series per connection)")
	flags.StringVar(&f.otlp, "otlp", "", "export findings and socket summaries as log records, and the metrics, to the OpenTelemetry collector at `ENDPOINT`: "+
		"http://HOST:PORT (OTLP/HTTP, e.g. http://localhost:4318) or grpc://HOST:PORT (OTLP/gRPC, e.g. grpc://localhost:4317); https://, grpcs:// for TLS (README: OpenTelemetry)")
	flags.StringVar(&f.runtimeEndpoint, "runtime-endpoint", "", "name pods by asking the container runtime's CRI socket at `ENDPOINT` "+
		"(unix:///PATH, as crictl; default $"+container.RuntimeEndpointEnv+", else those there are of "+strings.Join(container.RuntimeEndpoints, ", ")+
		", the first that answers); with none answering, by the kubelet's "+container.PodLogs)
	// Read by cobra, which prints root.Version.
	flags.Bool("version", false, "print the version, commit and Go version, and exit")
	defineBTFPath(flags, &f.btfPath)
	flags.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the tracer to this file")
	flags.BoolVar(&f.discard, "discard", false, "read the kernel's records and drop them: no decoding, no output (what the kernel side costs, for make bench)")
	_ = flags.MarkHidden("discard") // fails only for an undefined flag
	_ = flags.MarkHidden("cpuprofile")
	return f
}

func runTrace(ctx context.Context, f *traceFlags, stdout, stderr io.Writer) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Stdout, cfg.Stderr = stdout, stderr
	cfg.Args = append([]string{"tcptrace"}, os.Args[1:]...)
	// A status line only for a person watching text on a terminal.
	cfg.Status = cfg.Format == render.FormatText && isTerminal(stdout) && isTerminal(stderr)
	if !isTerminal(stderr) {
		// A daemon's log, read later: each line says when.
		cfg.Stderr = tracer.StampLines(stderr, time.Now)
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.report == "" {
		return tracer.Run(ctx, cfg)
	}
	// The report is made of the run's recording, as tcptrace report makes
	// it: the same events the run wrote. Its file is made now, so that one
	// that cannot be written stops the run before it starts, not after.
	out, err := os.Create(f.report)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	out.Close()
	if cfg.Record == "" {
		tmp, err := os.CreateTemp("", "tcptrace-report-*.rec.gz")
		if err != nil {
			os.Remove(f.report)
			return fmt.Errorf("--report: a file to record the run to: %w", err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cfg.Record = tmp.Name()
	}
	if err := tracer.Run(ctx, cfg); err != nil {
		os.Remove(f.report)
		return err
	}
	rec, err := replay.Load(cfg.Record)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return writeReport(rec, f.report, "tcptrace report: "+strings.Join(cfg.Args, " "))
}

// config validates the flags and turns them into a tracer configuration.
func (f *traceFlags) config() (tracer.Config, error) {
	cfg := tracer.Config{
		BTFPath:      f.btfPath,
		Format:       f.view.format,
		Duration:     f.duration,
		PollInterval: f.pollInterval,
		ReadyFile:    f.readyFile,
		Discard:      f.discard,
		MaxSockets:   f.view.maxSockets,
		FullFindings: f.view.fullFindings,
		SummaryOnly:  f.view.summaryOnly,
		Record:       f.record,
	}
	if err := f.view.check(); err != nil {
		return cfg, err
	}
	if f.duration < 0 {
		return cfg, usageError{fmt.Sprintf("invalid --duration %s: must not be negative", f.duration)}
	}
	if f.pollInterval < time.Millisecond || f.pollInterval > 10*time.Second {
		return cfg, usageError{fmt.Sprintf("invalid --poll-interval %s: use 1ms to 10s", f.pollInterval)}
	}
	if f.ipv4 && f.ipv6 {
		return cfg, usageError{"-4 and -6 exclude each other: give at most one"}
	}
	sf, err := f.filters.parse(processExists, probe.MaxPIDs, probe.MaxPorts)
	if err != nil {
		return cfg, err
	}
	filter := probe.Filter{PIDs: sf.pids, Ports: sf.ports, LocalPorts: sf.localPorts, RemotePorts: sf.remotePorts}
	if !sf.cgroups.Empty() {
		if filter.Cgroups, err = cgroupIDs(sf.cgroups, f.filters); err != nil {
			return cfg, err
		}
	}
	switch {
	case f.ipv4:
		filter.Family = 4
	case f.ipv6:
		filter.Family = 6
	}
	if f.netns != "" {
		_, ino, err := parseNetns(f.netns)
		if err != nil {
			return cfg, err
		}
		filter.Netns = uint32(ino)
	}
	cfg.Probe.Filter = filter
	ring, err := parseSize(f.ringSize)
	if err != nil || ring < os.Getpagesize() || ring&(ring-1) != 0 || ring > 1<<30 {
		return cfg, usageError{fmt.Sprintf("invalid --ring-size %q: use a power of two from %dK to 1G, e.g. 4M", f.ringSize, os.Getpagesize()>>10)}
	}
	cfg.Probe.RingBytes = ring
	if f.wakeupBytes < 0 || f.wakeupBytes > ring {
		return cfg, usageError{fmt.Sprintf("invalid --wakeup-bytes %d: use 0 to the ring size (%d)", f.wakeupBytes, ring)}
	}
	cfg.Probe.WakeupBytes = f.wakeupBytes
	cfg.Probe.Skip = f.skipHooks
	cfg.Probe.ProgramStats = f.bpfStats
	if cfg.Metrics, cfg.MetricsLabels, err = f.metricsConfig(); err != nil {
		return cfg, err
	}
	if f.otlp != "" {
		ep, err := otlp.ParseEndpoint(f.otlp)
		if err != nil {
			return cfg, usageError{err.Error()}
		}
		cfg.OTLP = &otlp.Config{Endpoint: ep, ServiceVersion: version}
	}
	endpoint, from := f.runtimeEndpoint, "--runtime-endpoint"
	if endpoint == "" {
		endpoint, from = os.Getenv(container.RuntimeEndpointEnv), "$"+container.RuntimeEndpointEnv
	}
	if endpoint != "" {
		if _, err := container.RuntimeSocket(endpoint); err != nil {
			return cfg, usageError{from + ": " + err.Error()}
		}
		cfg.RuntimeEndpoint = endpoint
	}
	max, err := parseSize(f.recordMax)
	if err != nil {
		return cfg, usageError{fmt.Sprintf("invalid --record-max-size %q: use a size such as 100M or 2G, or 0", f.recordMax)}
	}
	cfg.RecordMax = int64(max)
	switch {
	case f.recordKeep < 0 || f.recordKeep > maxRecordKeep:
		return cfg, usageError{fmt.Sprintf("invalid --record-keep %d: use 0 to %d", f.recordKeep, maxRecordKeep)}
	case f.recordKeep > 0 && (f.record == "" || max == 0):
		return cfg, usageError{"--record-keep needs --record FILE and a --record-max-size to rotate at"}
	case f.recordKeep > 0 && f.report != "":
		return cfg, usageError{"--report is made of the whole recording, which --record-keep splits: use one or the other"}
	}
	cfg.RecordKeep = f.recordKeep
	return cfg, nil
}

// maxRecordKeep bounds the rotated recordings kept: each rotation renames
// every one of them.
const maxRecordKeep = 1000

// metricsConfig checks --metrics and --metrics-labels, which label the
// metrics that --otlp exports too.
func (f *traceFlags) metricsConfig() (addr string, labels []string, err error) {
	if f.metrics == "" && f.otlp == "" && len(f.metricsLabels) > 0 {
		return "", nil, usageError{"--metrics-labels needs --metrics ADDR or --otlp ENDPOINT"}
	}
	if _, port, err := net.SplitHostPort(f.metrics); f.metrics != "" && (err != nil || !validPort(port)) {
		return "", nil, usageError{fmt.Sprintf("invalid --metrics %q: use host:port, e.g. :9464 or 127.0.0.1:9464", f.metrics)}
	}
	if labels, err = metrics.ParseLabels(f.metricsLabels); err != nil {
		return "", nil, usageError{err.Error()}
	}
	return f.metrics, labels, nil
}

func validPort(port string) bool {
	_, err := strconv.ParseUint(port, 10, 16)
	return err == nil
}

// cgroupIDs resolves --cgroup and --container to the ids of the cgroups
// they pick now, which the kernel side filters on: a cgroup made later is
// not traced.
func cgroupIDs(sel container.Selector, f filterFlags) ([]uint64, error) {
	mount, err := container.Mount()
	if err != nil {
		return nil, fmt.Errorf("--cgroup and --container need cgroup v2: %w", err)
	}
	ids, err := container.Select(mount, sel)
	if err != nil {
		return nil, err
	}
	var asked []string
	for _, c := range f.cgroups {
		asked = append(asked, "--cgroup "+c)
	}
	for _, c := range f.containers {
		asked = append(asked, "--container "+c)
	}
	switch {
	case len(ids) == 0:
		return nil, usageError{fmt.Sprintf("no cgroup under %s matches %s", mount, strings.Join(asked, " "))}
	case len(ids) > probe.MaxCgroups:
		return nil, usageError{fmt.Sprintf("%d cgroups match %s, more than the %d the kernel side filters on: name fewer or deeper ones",
			len(ids), strings.Join(asked, " "), probe.MaxCgroups)}
	}
	return ids, nil
}

// processExists checks that a --pid names a running process.
func processExists(pid uint32) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return usageError{fmt.Sprintf("invalid --pid %d: no such process", pid)}
	}
	return nil
}

// completePIDs offers the running processes, each with its command name.
func completePIDs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	dirs, _ := os.ReadDir("/proc") // nothing to offer if unreadable
	var pids []cobra.Completion
	for _, d := range dirs {
		if _, err := strconv.ParseUint(d.Name(), 10, 32); err != nil || !strings.HasPrefix(d.Name(), toComplete) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + d.Name() + "/comm") // a process that just ended: no name
		pids = append(pids, cobra.CompletionWithDesc(d.Name(), strings.TrimSpace(string(comm))))
	}
	return pids, cobra.ShellCompDirectiveNoFileComp
}

// parseNetns resolves --netns, an inode number or a namespace file, to a
// namespace file and its inode. A value that names no network namespace is
// refused: a number is looked for among the namespaces that processes and
// /run/netns hold.
func parseNetns(value string) (path string, inode uint64, err error) {
	flag := "--netns " + value
	if ino, err := strconv.ParseUint(value, 10, 64); err == nil {
		path, err := netns.Find(ino)
		switch {
		case errors.Is(err, netns.ErrNotFound):
			return "", 0, usageError{flag + ": no process or /run/netns file is in that network namespace (without root only your own processes are searched)"}
		case err != nil:
			return "", 0, fmt.Errorf("%s: %w", flag, err)
		}
		return path, ino, nil
	}
	ino, err := netns.Inode(value)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", 0, usageError{flag + ": no such file"}
	case errors.Is(err, netns.ErrNotNetns):
		return "", 0, usageError{fmt.Sprintf("%s: %s is not a network namespace file (use /proc/PID/ns/net or /run/netns/NAME)", flag, value)}
	case err != nil:
		return "", 0, needsRoot(flag, err)
	}
	return value, ino, nil
}

// needsRoot explains a permission error of a flag that names another
// user's process or namespace.
func needsRoot(flag string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s needs root (CAP_SYS_ADMIN) unless it names your own process or network namespace: run tcptrace with sudo (%w)", flag, err)
	}
	return fmt.Errorf("%s: %w", flag, err)
}

// parseSize reads a byte count with an optional K, M or G suffix.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// startCPUProfile profiles the tracer itself, for work on its speed.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
