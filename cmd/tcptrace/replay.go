package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/replay"
	"github.com/tcptrace/tcptrace/internal/track"
)

const replayUsage = `tcptrace replay shows a recording (tcptrace --record FILE) again: the same
events, summaries and findings as the live run, text or JSON lines. It needs
no privileges, and runs on any system.

Usage:
  tcptrace replay FILE [flags]

Examples:
  tcptrace replay incident.tcptrace.gz
  tcptrace replay incident.tcptrace.gz --pid 1234 -o json
  tcptrace replay incident.tcptrace.gz --since 2026-11-21T10:00:00Z --until 2026-11-21T10:05:00Z

Flags:
`

// fullFindingsHelp is --full-findings' help, live and in replay alike.
const fullFindingsHelp = "write every finding in full, and no finding_summary lines (by default a finding that repeats " +
	"one of its network namespace is written short, naming the first)"

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("tcptrace replay", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	var pids, ports []string
	var output, since, until string
	var maxSockets int
	var fullFindings bool
	fs.StringSliceVar(&pids, "pid", nil, "only events of sockets owned by these processes")
	fs.StringSliceVar(&ports, "port", nil, "only events of sockets with this local or remote port")
	fs.StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	fs.StringVar(&until, "until", "", "replay up to this time (RFC 3339): sockets still open then end as open")
	fs.StringVarP(&output, "output", "o", "text", "output format: text or json")
	fs.IntVar(&maxSockets, "max-sockets", track.DefaultMaxSockets, "socket histories kept at once")
	fs.BoolVar(&fullFindings, "full-findings", false, fullFindingsHelp)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprint(stdout, replayUsage+fs.FlagUsages())
			return nil
		}
		return usageError{err.Error() + " (see tcptrace replay --help)"}
	}
	if fs.NArg() != 1 {
		return usageError{"tcptrace replay takes one recording file (see tcptrace replay --help)"}
	}
	if output != "text" && output != "json" {
		return usageError{fmt.Sprintf("invalid --output %q: use text or json", output)}
	}
	var filter pipeline.Filter
	for _, s := range pids {
		pid, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || pid == 0 {
			return usageError{fmt.Sprintf("invalid --pid %q: must be a process id (a positive number)", s)}
		}
		filter.PIDs = append(filter.PIDs, uint32(pid))
	}
	for _, s := range ports {
		port, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || port < 1 || port > 65535 {
			return usageError{fmt.Sprintf("invalid --port %q: must be a number from 1 to 65535", s)}
		}
		filter.Ports = append(filter.Ports, uint16(port))
	}
	for _, tv := range []struct {
		flag, value string
		dst         *time.Time
	}{{"--since", since, &filter.Since}, {"--until", until, &filter.Until}} {
		if tv.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, tv.value)
		if err != nil {
			return usageError{fmt.Sprintf("invalid %s %q: use RFC 3339, e.g. 2026-11-21T10:00:00Z", tv.flag, tv.value)}
		}
		*tv.dst = t
	}
	return replay.Run(replay.Config{File: fs.Arg(0), Format: output, MaxSockets: maxSockets, Filter: filter,
		FullFindings: fullFindings, Stdout: stdout, Stderr: stderr})
}
