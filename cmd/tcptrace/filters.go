package main

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/track"
)

// filterFlags are the socket filters tracing and replay share: every one
// given must hold, and the values of one are alternatives.
type filterFlags struct {
	pids, ports, lports, rports []string
	cgroups, containers         []string
}

func (f *filterFlags) define(fs *pflag.FlagSet) {
	fs.StringSliceVarP(&f.pids, "pid", "p", nil, "only sockets owned by these processes (repeat or comma-separate)")
	fs.StringSliceVar(&f.cgroups, "cgroup", nil, "only sockets whose owners run in these cgroups or below them: cgroup v2 paths, "+
		"e.g. /system.slice/nginx.service or /sys/fs/cgroup/kubepods.slice (repeat or comma-separate)")
	fs.StringSliceVar(&f.containers, "container", nil, "only sockets whose owners run in these containers: ids or their prefixes, "+
		"as docker ps or crictl ps show them, e.g. 3f4e5d6c7b8a (repeat or comma-separate)")
	fs.StringSliceVar(&f.ports, "port", nil, "only sockets with one of these ports, local or remote (repeat or comma-separate)")
	fs.StringSliceVar(&f.lports, "lport", nil, "only sockets with one of these local ports: a server's listener and connections (repeat or comma-separate)")
	fs.StringSliceVar(&f.rports, "rport", nil, "only sockets with one of these remote ports: the connections to a service (repeat or comma-separate)")
}

// socketFilter is what the filter flags ask for.
type socketFilter struct {
	pids                           []uint32
	cgroups                        container.Selector
	ports, localPorts, remotePorts []uint16
}

// parse reads the filter flags, each process id with parsePID; max limits
// how many values one flag may have (0: no limit).
func (f *filterFlags) parse(parsePID func(string) (uint32, error), maxPIDs, maxPorts int) (socketFilter, error) {
	var sf socketFilter
	if maxPIDs > 0 && len(f.pids) > maxPIDs {
		return sf, usageError{fmt.Sprintf("too many --pid values: at most %d", maxPIDs)}
	}
	for _, s := range f.pids {
		pid, err := parsePID(s)
		if err != nil {
			return sf, err
		}
		sf.pids = append(sf.pids, pid)
	}
	for _, s := range f.cgroups {
		path, err := parseCgroupPath(s)
		if err != nil {
			return sf, err
		}
		sf.cgroups.Paths = append(sf.cgroups.Paths, path)
	}
	for _, s := range f.containers {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" || len(s) > 64 || strings.Trim(s, "0123456789abcdef") != "" {
			return sf, usageError{fmt.Sprintf("invalid --container %q: must be a container id or its prefix (hex digits)", s)}
		}
		sf.cgroups.ContainerPrefixes = append(sf.cgroups.ContainerPrefixes, s)
	}
	for _, list := range []struct {
		flag   string
		values []string
		dst    *[]uint16
	}{{"--port", f.ports, &sf.ports}, {"--lport", f.lports, &sf.localPorts}, {"--rport", f.rports, &sf.remotePorts}} {
		if maxPorts > 0 && len(list.values) > maxPorts {
			return sf, usageError{fmt.Sprintf("too many %s values: at most %d", list.flag, maxPorts)}
		}
		for _, s := range list.values {
			port, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
			if err != nil || port < 1 || port > 65535 {
				return sf, usageError{fmt.Sprintf("invalid %s %q: must be a number from 1 to 65535", list.flag, s)}
			}
			*list.dst = append(*list.dst, uint16(port))
		}
	}
	return sf, nil
}

// parsePIDNumber reads a process id, without asking whether the process
// exists (a recording's may be long gone).
func parsePIDNumber(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	pid, err := strconv.ParseUint(s, 10, 32)
	if err != nil || pid == 0 {
		return 0, usageError{fmt.Sprintf("invalid --pid %q: must be a process id (a positive number)", s)}
	}
	return uint32(pid), nil
}

// cgroupMounts are where the cgroup v2 tree is mounted, which a --cgroup
// path may start with.
var cgroupMounts = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}

// parseCgroupPath reads a --cgroup path: below the cgroup2 mount, or the
// cgroup's directory under it.
func parseCgroupPath(s string) (string, error) {
	p := path.Clean(strings.TrimSpace(s))
	if !strings.HasPrefix(p, "/") {
		return "", usageError{fmt.Sprintf("invalid --cgroup %q: must be a cgroup v2 path starting with /, as in /proc/PID/cgroup", s)}
	}
	for _, mount := range cgroupMounts {
		if rest, ok := strings.CutPrefix(p, mount); ok && (rest == "" || rest[0] == '/') {
			return "/" + strings.TrimPrefix(rest, "/"), nil
		}
	}
	return p, nil
}

// viewFlags say how tracing and replay show what they find.
type viewFlags struct {
	format       string
	formats      []outputFormat // the -o values the command takes
	maxSockets   int
	fullFindings bool
	summaryOnly  bool
}

// outputFormat is one value of -o and what it writes.
type outputFormat struct{ name, what string }

var (
	textOutput      = outputFormat{"text", ""}
	jsonLinesOutput = outputFormat{"json", "JSON lines, see docs/json.md"}
	// noOutput is for a daemon whose events go to --metrics or --record.
	noOutput = outputFormat{"none", "no events: for --metrics or --record; the closing stats still go to stderr"}
)

// define defines the view flags, -o taking formats.
func (v *viewFlags) define(cmd *cobra.Command, formats ...outputFormat) {
	v.formats = formats
	defineFormat(cmd, &v.format, formats...)
	cmd.Flags().IntVar(&v.maxSockets, "max-sockets", track.DefaultMaxSockets, "socket histories kept at once, each some 250 bytes "+
		"in TIME_WAIT (25 MB per 100,000), 2 KB otherwise; the least recently active are dropped (counted in stats)")
	cmd.Flags().BoolVar(&v.fullFindings, "full-findings", false, "write every finding in full, and no finding_summary lines "+
		"(by default a finding that repeats one of its network namespace is written short, naming the first)")
	cmd.Flags().BoolVar(&v.summaryOnly, "summary-only", false, "write only each connection's summary, one line each "+
		"(text: a table of bytes sent and received and lifetime, like tcplife), for busy servers")
}

func (v *viewFlags) check() error {
	if err := checkFormat(v.format, v.formats); err != nil {
		return err
	}
	if v.maxSockets < 1 {
		return usageError{fmt.Sprintf("invalid --max-sockets %d: must be at least 1", v.maxSockets)}
	}
	return nil
}

// defineFormat defines -o/--output, taking formats; the first is the default.
func defineFormat(cmd *cobra.Command, format *string, formats ...outputFormat) {
	var names, described []string
	for _, f := range formats {
		names = append(names, f.name)
		if f.what != "" {
			described = append(described, fmt.Sprintf("%s (%s)", f.name, f.what))
		} else {
			described = append(described, f.name)
		}
	}
	cmd.Flags().StringVarP(format, "output", "o", formats[0].name, "output format: "+orList(described))
	// Fails only for a flag that does not exist, and it was just defined.
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
}

func checkFormat(format string, formats []outputFormat) error {
	var names []string
	for _, f := range formats {
		if f.name == format {
			return nil
		}
		names = append(names, f.name)
	}
	return usageError{fmt.Sprintf("invalid --output %q: use %s", format, orList(names))}
}

// orList lists alternatives as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
