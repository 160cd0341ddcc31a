package main

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/track"
)

// filterFlags are the socket filters tracing and replay share: every one
// given must hold, and the values of one are alternatives.
type filterFlags struct {
	pids                  pidList
	ports, lports, rports portList
	cgroups, containers   []string
}

func (f *filterFlags) define(fs *pflag.FlagSet) {
	f.ports.flag, f.lports.flag, f.rports.flag = "--port", "--lport", "--rport"
	fs.VarP(&f.pids, "pid", "p", "only sockets owned by these processes (repeat or comma-separate)")
	fs.StringSliceVar(&f.cgroups, "cgroup", nil, "only sockets whose owners run in these cgroups or below them: cgroup v2 paths, "+
		"e.g. /system.slice/nginx.service or /sys/fs/cgroup/kubepods.slice (repeat or comma-separate)")
	fs.StringSliceVar(&f.containers, "container", nil, "only sockets whose owners run in these containers: ids or their prefixes, "+
		"as docker ps or crictl ps show them, e.g. 3f4e5d6c7b8a (repeat or comma-separate)")
	fs.Var(&f.ports, "port", "only sockets with one of these ports, local or remote (repeat or comma-separate)")
	fs.Var(&f.lports, "lport", "only sockets with one of these local ports: a server's listener and connections (repeat or comma-separate)")
	fs.Var(&f.rports, "rport", "only sockets with one of these remote ports: the connections to a service (repeat or comma-separate)")
}

// pidList is a flag of process ids, each checked as it is given (whether
// the process exists is for the command to ask: a recording's may be long
// gone).
type pidList []uint32

func (l *pidList) Type() string { return "pids" }

func (l *pidList) String() string { return joinNumbers(*l) }

func (l *pidList) Set(list string) error {
	for _, s := range strings.Split(list, ",") {
		pid, err := parsePIDNumber(s)
		if err != nil {
			return err
		}
		*l = append(*l, pid)
	}
	return nil
}

// pidValue is a flag of one process id.
type pidValue uint32

func (p *pidValue) Type() string { return "pid" }

func (p *pidValue) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(*p), 10)
}

func (p *pidValue) Set(s string) error {
	pid, err := parsePIDNumber(s)
	*p = pidValue(pid)
	return err
}

// parsePIDNumber reads a process id, without asking whether the process
// exists.
func parsePIDNumber(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	pid, err := strconv.ParseUint(s, 10, 32)
	if err != nil || pid == 0 {
		return 0, usageError{fmt.Sprintf("invalid --pid %q: must be a process id (a positive number)", s)}
	}
	return uint32(pid), nil
}

// portList is a flag of port numbers, each checked as it is given.
type portList struct {
	flag  string // as the user typed it, for errors
	ports []uint16
}

func (l *portList) Type() string { return "ports" }

func (l *portList) String() string { return joinNumbers(l.ports) }

func (l *portList) Set(list string) error {
	for _, s := range strings.Split(list, ",") {
		port, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || port < 1 || port > 65535 {
			return usageError{fmt.Sprintf("invalid %s %q: must be a number from 1 to 65535", l.flag, s)}
		}
		l.ports = append(l.ports, uint16(port))
	}
	return nil
}

func joinNumbers[N uint16 | uint32](ns []N) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.FormatUint(uint64(n), 10)
	}
	return strings.Join(s, ",")
}

// socketFilter is what the filter flags ask for.
type socketFilter struct {
	pids                           []uint32
	cgroups                        container.Selector
	ports, localPorts, remotePorts []uint16
}

// parse reads the filter flags, asking checkPID (if not nil) about each
// process id; max limits how many values one flag may have (0: no limit).
func (f *filterFlags) parse(checkPID func(uint32) error, maxPIDs, maxPorts int) (socketFilter, error) {
	sf := socketFilter{pids: f.pids, ports: f.ports.ports, localPorts: f.lports.ports, remotePorts: f.rports.ports}
	if maxPIDs > 0 && len(f.pids) > maxPIDs {
		return sf, usageError{fmt.Sprintf("too many --pid values: at most %d", maxPIDs)}
	}
	for _, pid := range f.pids {
		if checkPID == nil {
			break
		}
		if err := checkPID(pid); err != nil {
			return sf, err
		}
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
	for _, list := range []portList{f.ports, f.lports, f.rports} {
		if maxPorts > 0 && len(list.ports) > maxPorts {
			return sf, usageError{fmt.Sprintf("too many %s values: at most %d", list.flag, maxPorts)}
		}
	}
	return sf, nil
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
	format       render.Format
	maxSockets   int
	fullFindings bool
	summaryOnly  bool
}

// outputFormat is one value of -o and what it writes.
type outputFormat struct {
	format render.Format
	what   string
}

var (
	textOutput      = outputFormat{render.FormatText, ""}
	jsonLinesOutput = outputFormat{render.FormatJSON, "JSON lines, see docs/json.md"}
	// noOutput is for a daemon whose events go to --metrics, --otlp or --record.
	noOutput = outputFormat{render.FormatNone, "no events: for --metrics, --otlp or --record; the closing stats still go to stderr"}
)

// define defines the view flags, -o taking formats.
func (v *viewFlags) define(cmd *cobra.Command, formats ...outputFormat) {
	defineFormat(cmd, &v.format, formats...)
	cmd.Flags().IntVar(&v.maxSockets, "max-sockets", track.DefaultMaxSockets, "socket histories kept at once, each some 250 bytes "+
		"in TIME_WAIT (25 MB per 100,000), 2 KB otherwise; the least recently active are dropped (counted in stats)")
	cmd.Flags().BoolVar(&v.fullFindings, "full-findings", false, "write every finding in full, and no finding_summary lines "+
		"(by default a finding that repeats one of its network namespace is written short, naming the first)")
	cmd.Flags().BoolVar(&v.summaryOnly, "summary-only", false, "write only each connection's summary, one line each "+
		"(text: a table of bytes sent and received and lifetime, like tcplife), for busy servers")
}

func (v *viewFlags) check() error {
	if v.maxSockets < 1 {
		return usageError{fmt.Sprintf("invalid --max-sockets %d: must be at least 1", v.maxSockets)}
	}
	return nil
}

// defineFormat defines -o/--output, taking formats; the first is the
// default, and each says what it writes.
func defineFormat(cmd *cobra.Command, format *render.Format, formats ...outputFormat) {
	*format = formats[0].format
	value := formatValue{format: format}
	var described []string
	for _, f := range formats {
		value.names = append(value.names, string(f.format))
		if f.what != "" {
			described = append(described, fmt.Sprintf("%s (%s)", f.format, f.what))
		} else {
			described = append(described, string(f.format))
		}
	}
	cmd.Flags().VarP(value, "output", "o", "output format: "+orList(described))
	// Fails only for a flag that does not exist, and it was just defined.
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(value.names, cobra.ShellCompDirectiveNoFileComp))
}

// formatValue is -o/--output, checked as it is given.
type formatValue struct {
	format *render.Format
	names  []string // the formats the command takes
}

func (v formatValue) String() string { return string(*v.format) }
func (v formatValue) Type() string   { return "format" }

func (v formatValue) Set(s string) error {
	if !slices.Contains(v.names, s) {
		return usageError{fmt.Sprintf("invalid --output %q: use %s", s, orList(v.names))}
	}
	*v.format = render.Format(s)
	return nil
}

// orList lists alternatives as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
