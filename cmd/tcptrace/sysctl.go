//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tcptrace/tcptrace/internal/netns"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/sysctl"
)

const sysctlUsageHead = `tcptrace sysctl shows the TCP sysctls that decide how long connections
linger in TIME_WAIT and FIN_WAIT2, how keepalives and retransmissions are
timed and when the kernel gives a connection up: their values in one network
namespace, each with what it does. Reading another namespace needs root.

Usage:
  tcptrace sysctl [--pid PID | --netns NS] [-o text|json]

Examples:
  tcptrace sysctl                              tcptrace's own network namespace
  sudo tcptrace sysctl --pid 1234              the namespace of process 1234
  sudo tcptrace sysctl --netns /run/netns/blue -o json

Flags:
`

type sysctlFlags struct {
	pid, netns, output string
}

// runSysctl is the `tcptrace sysctl` subcommand; args follow "sysctl".
func runSysctl(args []string, stdout io.Writer) error {
	var f sysctlFlags
	flags := pflag.NewFlagSet("tcptrace sysctl", pflag.ContinueOnError)
	flags.SortFlags = false
	flags.StringVar(&f.pid, "pid", "", "the network namespace of this process")
	flags.StringVar(&f.netns, "netns", "", "this network namespace: inode number or namespace file (/proc/PID/ns/net, /run/netns/NAME)")
	flags.StringVarP(&f.output, "output", "o", "text", "output format: text or json (one JSON object)")
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	if err := flags.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprint(stdout, sysctlUsageHead+flags.FlagUsages())
			return nil
		}
		return usageError{err.Error() + " (see tcptrace sysctl --help)"}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (see tcptrace sysctl --help)", flags.Arg(0))}
	}
	if f.output != "text" && f.output != "json" {
		return usageError{fmt.Sprintf("invalid --output %q: use text or json", f.output)}
	}
	target, err := chooseNetns(f, flags.Changed("pid"), flags.Changed("netns"))
	if err != nil {
		return err
	}
	snap, err := sysctl.ReadNetns(target.path)
	if err != nil {
		return target.explain(err)
	}
	if f.output == "json" {
		return writeSysctlsJSON(stdout, snap)
	}
	return writeSysctlsText(stdout, snap)
}

// netnsTarget is the namespace file to read, with what to tell the user
// when it is not there.
type netnsTarget struct {
	path string
	flag string // the flag that named it, e.g. "--pid 1234"; "" for our own namespace
	gone string // why it may be missing, e.g. "no such process"
}

// chooseNetns turns --pid or --netns into a namespace file; with neither it
// is tcptrace's own namespace.
func chooseNetns(f sysctlFlags, pidSet, netnsSet bool) (netnsTarget, error) {
	switch {
	case pidSet && netnsSet:
		return netnsTarget{}, usageError{"--pid and --netns exclude each other: give at most one"}
	case pidSet:
		pid, err := parsePID(f.pid)
		if err != nil {
			return netnsTarget{}, err
		}
		return netnsTarget{path: netns.ForPID(int(pid)), flag: fmt.Sprintf("--pid %d", pid), gone: "no such process"}, nil
	case netnsSet:
		flag := "--netns " + f.netns
		ino, err := strconv.ParseUint(f.netns, 10, 64)
		if err != nil {
			return netnsTarget{path: f.netns, flag: flag, gone: "no such file"}, nil
		}
		path, err := netns.Find(ino)
		if errors.Is(err, netns.ErrNotFound) {
			return netnsTarget{}, usageError{flag + ": no process or /run/netns file is in that network namespace (without root only your own processes are searched)"}
		}
		if err != nil {
			return netnsTarget{}, err
		}
		return netnsTarget{path: path, flag: flag, gone: "the network namespace is gone"}, nil
	}
	return netnsTarget{path: "/proc/self/ns/net"}, nil
}

// explain turns the failures a user can fix into one sentence.
func (t netnsTarget) explain(err error) error {
	switch {
	case t.flag == "":
		return err
	case errors.Is(err, fs.ErrNotExist):
		return usageError{t.flag + ": " + t.gone}
	case errors.Is(err, netns.ErrNotNetns):
		return usageError{fmt.Sprintf("%s: %s is not a network namespace file (use /proc/PID/ns/net or /run/netns/NAME)", t.flag, t.path)}
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s needs root (CAP_SYS_ADMIN) unless it names your own process or network namespace: run it with sudo (%w)", t.flag, err)
	}
	return err
}

// sysctlValueText is a value as the text output shows it. Tabs, which
// separate the numbers of multi-number sysctls, become spaces so that they
// do not break the columns.
func sysctlValueText(v sysctl.Value) string {
	switch {
	case v.Present:
		return strings.Join(strings.Fields(v.Raw), " ")
	case v.RemovedIn != "":
		return "absent (removed in Linux " + v.RemovedIn + ")"
	}
	return "absent on this kernel"
}

func writeSysctlsText(w io.Writer, snap sysctl.Snapshot) error {
	fmt.Fprintf(w, "network namespace %d\n", snap.Netns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSCTL\tVALUE\tWHAT IT DOES")
	for _, v := range snap.Values {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, sysctlValueText(v), v.Description)
	}
	return tw.Flush()
}

// writeSysctlsJSON writes one object: {"type":"sysctls","netns":INODE,
// "values":{NAME: VALUE}}. A value is a number, null when the kernel has no
// such sysctl, or the raw text should a kernel ever hold a non-number there.
func writeSysctlsJSON(w io.Writer, snap sysctl.Snapshot) error {
	values := make(map[string]any, len(snap.Values))
	for _, v := range snap.Values {
		switch n, err := v.Int(); {
		case !v.Present:
			values[v.Name] = nil
		case err != nil:
			values[v.Name] = v.Raw
		default:
			values[v.Name] = n
		}
	}
	out := struct {
		Type   string         `json:"type"`
		Netns  uint64         `json:"netns"`
		Values map[string]any `json:"values"`
	}{"sysctls", snap.Netns, values}
	if err := json.NewEncoder(w).Encode(out); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
