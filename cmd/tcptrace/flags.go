//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/probe"
	"github.com/tcptrace/tcptrace/internal/tracer"
	"github.com/tcptrace/tcptrace/internal/track"
)

const usageHead = `tcptrace shows what the Linux kernel does to TCP connections: every state
change, retransmission and reset, attributed to the process that owns the
socket, live, as text or JSON lines.

Usage:
  tcptrace [flags]              trace until Ctrl-C or --duration
  tcptrace features             show the kernel hooks and how each is attached
  tcptrace sysctl [--pid N]     the TCP sysctls of a network namespace, explained
  tcptrace replay FILE          show a recording again (no root needed; see replay --help)
  tcptrace report FILE -o report.html   a recording as one HTML page with a timeline per socket

Examples:
  sudo tcptrace --pid 1234                 sockets of process 1234, accepted ones included
  sudo tcptrace --port 443 -o json         port 443 (local or remote), as JSON lines
  sudo tcptrace --pid 1234,5678 -6         two processes, IPv6 only
  sudo tcptrace --netns /run/netns/blue    one network namespace (path or inode)
  sudo tcptrace --duration 30s > trace.txt
  sudo tcptrace --record incident.tcptrace.gz   trace and record, to replay anywhere later

Flags:
`

type traceFlags struct {
	pids, ports  []string
	netns        string
	ipv4, ipv6   bool
	output       string
	duration     time.Duration
	readyFile    string
	ringSize     string
	wakeupBytes  int
	pollInterval time.Duration
	maxSockets   int
	fullFindings bool
	record       string
	recordMax    string
	btfPath      string
	cpuProfile   string
	discard      bool
	version      bool
	skipHooks    []string
	bpfStats     bool
}

func newFlagSet(f *traceFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tcptrace", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringSliceVar(&f.pids, "pid", nil, "only sockets owned by these processes (repeat or comma-separate)")
	fs.StringSliceVar(&f.ports, "port", nil, "only sockets with this local or remote port (repeat or comma-separate)")
	fs.StringVar(&f.netns, "netns", "", "only this network namespace: inode number or namespace file (/proc/PID/ns/net, /run/netns/NAME)")
	fs.BoolVarP(&f.ipv4, "ipv4", "4", false, "only IPv4 sockets")
	fs.BoolVarP(&f.ipv6, "ipv6", "6", false, "only IPv6 sockets")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json (JSON lines, see docs/json.md)")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s, 5m); default: until Ctrl-C")
	fs.StringVar(&f.ringSize, "ring-size", "4M", "BPF ring buffer size, a power of two (e.g. 512K, 4M, 64M)")
	fs.DurationVar(&f.pollInterval, "poll-interval", 10*time.Millisecond, "longest delay between an event and its output; shorter costs more CPU under load")
	fs.IntVar(&f.wakeupBytes, "wakeup-bytes", 64<<10, "wake the reader early once this many bytes wait in the ring (0: for every event)")
	fs.IntVar(&f.maxSockets, "max-sockets", track.DefaultMaxSockets, "socket histories kept at once; the least recently active are dropped (counted in stats)")
	fs.BoolVar(&f.fullFindings, "full-findings", false, fullFindingsHelp)
	fs.StringVar(&f.record, "record", "", "also record the run to this file, for tcptrace replay and report (docs/record.md)")
	fs.StringVar(&f.recordMax, "record-max-size", "1G", "stop recording (not tracing) once the file reaches this size (e.g. 100M; 0: no limit)")
	fs.StringVar(&f.readyFile, "ready-file", "", "write this file once every hook is attached (for scripts)")
	fs.StringSliceVar(&f.skipHooks, "skip-hook", nil, "leave out optional hooks, by program (e.g. learn_owners), as if this kernel refused them (see tcptrace features)")
	fs.BoolVar(&f.bpfStats, "bpf-stats", false, "count the runs of each BPF program and the kernel time spent in them, and report them in the closing stats (each run costs a clock read more)")
	fs.StringVar(&f.btfPath, "btf-path", probe.DefaultBTFPath, "kernel BTF to read")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the tracer to this file")
	fs.BoolVar(&f.discard, "discard", false, "read the kernel's records and drop them: no decoding, no output (what the kernel side costs, for make bench)")
	_ = fs.MarkHidden("btf-path")
	_ = fs.MarkHidden("discard")
	_ = fs.MarkHidden("cpuprofile")
	return fs
}

func parseFlags(args []string, stdout io.Writer) (*traceFlags, *pflag.FlagSet, error) {
	f := &traceFlags{}
	fs := newFlagSet(f)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprint(stdout, usageHead+fs.FlagUsages())
			return nil, fs, err
		}
		return nil, fs, usageError{err.Error() + " (see tcptrace --help)"}
	}
	if fs.NArg() > 0 {
		return nil, fs, usageError{fmt.Sprintf("unexpected argument %q (see tcptrace --help)", fs.Arg(0))}
	}
	return f, fs, nil
}

func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, _, err := parseFlags(args, stdout)
	if err == pflag.ErrHelp {
		return nil
	}
	if err != nil {
		return err
	}
	if f.version {
		fmt.Fprintln(stdout, "tcptrace", version)
		return nil
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Stdout, cfg.Stderr = stdout, stderr
	cfg.Args = append([]string{"tcptrace"}, args...)
	// A status line only for a person watching text on a terminal.
	cfg.Status = cfg.Format == "text" && isTerminal(stdout) && isTerminal(stderr)
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	return tracer.Run(ctx, cfg)
}

// config validates the flags and turns them into a tracer configuration.
func (f *traceFlags) config() (tracer.Config, error) {
	cfg := tracer.Config{
		BTFPath:      f.btfPath,
		Format:       f.output,
		Duration:     f.duration,
		PollInterval: f.pollInterval,
		ReadyFile:    f.readyFile,
		Discard:      f.discard,
	}
	if f.output != "text" && f.output != "json" {
		return cfg, usageError{fmt.Sprintf("invalid --output %q: use text or json", f.output)}
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
	filter := &cfg.Probe.Filter
	switch {
	case f.ipv4:
		filter.Family = 4
	case f.ipv6:
		filter.Family = 6
	}
	for _, s := range f.pids {
		pid, err := parsePID(s)
		if err != nil {
			return cfg, err
		}
		filter.PIDs = append(filter.PIDs, pid)
	}
	if len(filter.PIDs) > probe.MaxPIDs {
		return cfg, usageError{fmt.Sprintf("too many --pid values: at most %d", probe.MaxPIDs)}
	}
	for _, s := range f.ports {
		port, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || port < 1 || port > 65535 {
			return cfg, usageError{fmt.Sprintf("invalid --port %q: must be a number from 1 to 65535", s)}
		}
		filter.Ports = append(filter.Ports, uint16(port))
	}
	if len(filter.Ports) > probe.MaxPorts {
		return cfg, usageError{fmt.Sprintf("too many --port values: at most %d", probe.MaxPorts)}
	}
	if f.netns != "" {
		ino, err := parseNetns(f.netns)
		if err != nil {
			return cfg, err
		}
		filter.Netns = ino
	}
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
	if f.maxSockets < 1 {
		return cfg, usageError{fmt.Sprintf("invalid --max-sockets %d: must be at least 1", f.maxSockets)}
	}
	cfg.MaxSockets = f.maxSockets
	cfg.FullFindings = f.fullFindings
	cfg.Record = f.record
	max, err := parseSize(f.recordMax)
	if err != nil {
		return cfg, usageError{fmt.Sprintf("invalid --record-max-size %q: use a size such as 100M or 2G, or 0", f.recordMax)}
	}
	cfg.RecordMax = int64(max)
	return cfg, nil
}

func parsePID(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	pid, err := strconv.ParseUint(s, 10, 32)
	if err != nil || pid == 0 {
		return 0, usageError{fmt.Sprintf("invalid --pid %q: must be a process id (a positive number)", s)}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0, usageError{fmt.Sprintf("invalid --pid %d: no such process", pid)}
	}
	return uint32(pid), nil
}

// parseNetns accepts a namespace inode number or a namespace file.
func parseNetns(s string) (uint32, error) {
	if ino, err := strconv.ParseUint(s, 10, 32); err == nil && ino > 0 {
		return uint32(ino), nil
	}
	var st unix.Stat_t
	if err := unix.Stat(s, &st); err != nil {
		return 0, usageError{fmt.Sprintf("invalid --netns %q: not an inode number, and %v", s, err)}
	}
	return uint32(st.Ino), nil
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

func runFeatures(args []string, stdout io.Writer) error {
	f, _, err := parseFlags(args, stdout)
	if err == pflag.ErrHelp {
		return nil
	}
	if err != nil {
		return err
	}
	return printFeatures(stdout, f.btfPath)
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
