//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/probe"
)

// runCLI runs the command tree as main does, and returns what it wrote
// and its exit code. None of the command lines given here reaches the
// kernel: they are refused first, or need no privileges.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// missingPID returns a process id that no process has.
func missingPID(t *testing.T) int {
	for pid := 4194303; pid > 1; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

// TestCLIMessages: every refusal is one line on stderr, "tcptrace: " once
// and then the one sentence, with the exit code that says who is to blame.
func TestCLIMessages(t *testing.T) {
	dir := t.TempDir()
	notRecording := filepath.Join(dir, "bad.rec")
	if err := os.WriteFile(notRecording, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nopid := missingPID(t)
	tooManyPorts := strings.TrimSuffix(strings.Repeat("80,", probe.MaxPorts+1), ",")
	tests := []struct {
		args []string
		code int
		want string // all of stderr after "tcptrace: ", but for its newline
	}{
		// A flag of another command is named as such.
		{[]string{"features", "--duration", "1s", "--pid", "1"}, exitUsage, "--duration is for tracing, not for features (see tcptrace features --help)"},
		{[]string{"features", "-p", "1"}, exitUsage, "-p is for tracing, replay and sysctl, not for features (see tcptrace features --help)"},
		{[]string{"--since", "2026-11-21T10:00:00Z"}, exitUsage, "--since is for replay, not for tracing (see tcptrace --help)"},
		{[]string{"report", "x", "--lport", "80"}, exitUsage, "--lport is for tracing and replay, not for report (see tcptrace report --help)"},
		{[]string{"sysctl", "--btf-path", "x"}, exitUsage, "unknown flag: --btf-path (see tcptrace sysctl --help)"}, // hidden: not offered
		{[]string{"--bogus"}, exitUsage, "unknown flag: --bogus (see tcptrace --help)"},
		{[]string{"--duration"}, exitUsage, "flag needs an argument: --duration (see tcptrace --help)"},
		// Commands and arguments.
		{[]string{"featrues"}, exitUsage, `"featrues" is not a tcptrace command; did you mean features? (see tcptrace --help)`},
		{[]string{"extra"}, exitUsage, `"extra" is not a tcptrace command (see tcptrace --help)`},
		{[]string{"features", "x"}, exitUsage, `features takes no arguments, got "x" (see tcptrace features --help)`},
		{[]string{"replay"}, exitUsage, "replay takes one recording file, got 0 arguments (see tcptrace replay --help)"},
		{[]string{"report", "a", "b", "-o", "r.html"}, exitUsage, "report takes one recording file, got 2 arguments (see tcptrace report --help)"},
		{[]string{"report", notRecording}, exitUsage, "report needs -o FILE, the HTML page to write (see tcptrace report --help)"},
		{[]string{"help", "bogus"}, exitUsage, `no help for "bogus": the commands are completion, features, replay, report and sysctl (see tcptrace --help)`},
		{[]string{"completion", "tcsh"}, exitUsage, `"tcsh" is not a tcptrace completion command (see tcptrace completion --help)`},
		// Values.
		{[]string{"--pid", "abc"}, exitUsage, `invalid --pid "abc": must be a process id (a positive number)`},
		{[]string{"-p", "1,x"}, exitUsage, `invalid --pid "x": must be a process id (a positive number)`},
		{[]string{"--pid", fmt.Sprint(nopid)}, exitUsage, fmt.Sprintf("invalid --pid %d: no such process", nopid)},
		{[]string{"--cgroup", "system.slice"}, exitUsage, `invalid --cgroup "system.slice": must be a cgroup v2 path starting with /, as in /proc/PID/cgroup`},
		{[]string{"--container", "xyz"}, exitUsage, `invalid --container "xyz": must be a container id or its prefix (hex digits)`},
		{[]string{"replay", notRecording, "--container", "-"}, exitUsage, `invalid --container "-": must be a container id or its prefix (hex digits)`},
		{[]string{"--port", "70000"}, exitUsage, `invalid --port "70000": must be a number from 1 to 65535`},
		{[]string{"--lport", "0"}, exitUsage, `invalid --lport "0": must be a number from 1 to 65535`},
		{[]string{"--rport", "https"}, exitUsage, `invalid --rport "https": must be a number from 1 to 65535`},
		{[]string{"--lport", tooManyPorts}, exitUsage, fmt.Sprintf("too many --lport values: at most %d", probe.MaxPorts)},
		{[]string{"-o", "yaml"}, exitUsage, `invalid --output "yaml": use text, json or none`},
		{[]string{"replay", notRecording, "-o", "none"}, exitUsage, `invalid --output "none": use text or json`},
		{[]string{"--record", "x", "--record-keep", "-1"}, exitUsage, "invalid --record-keep -1: use 0 to 1000"},
		{[]string{"--record-keep", "3"}, exitUsage, "--record-keep needs --record FILE and a --record-max-size to rotate at"},
		{[]string{"--record", "x", "--record-max-size", "0", "--record-keep", "3"}, exitUsage, "--record-keep needs --record FILE and a --record-max-size to rotate at"},
		{[]string{"--record", "x", "--record-keep", "3", "--report", "r.html"}, exitUsage, "--report is made of the whole recording, which --record-keep splits: use one or the other"},
		{[]string{"-4", "-6"}, exitUsage, "-4 and -6 exclude each other: give at most one"},
		{[]string{"--netns", "/nonexistent/ns"}, exitUsage, "--netns /nonexistent/ns: no such file"},
		{[]string{"--netns", notRecording}, exitUsage, fmt.Sprintf("--netns %s: %s is not a network namespace file (use /proc/PID/ns/net or /run/netns/NAME)", notRecording, notRecording)},
		{[]string{"--netns", "1"}, exitUsage, "--netns 1: no process or /run/netns file is in that network namespace (without root only your own processes are searched)"},
		{[]string{"--ring-size", "3M"}, exitUsage, fmt.Sprintf(`invalid --ring-size "3M": use a power of two from %dK to 1G, e.g. 4M`, os.Getpagesize()>>10)},
		{[]string{"--duration", "-1s"}, exitUsage, "invalid --duration -1s: must not be negative"},
		{[]string{"--max-sockets", "0"}, exitUsage, "invalid --max-sockets 0: must be at least 1"},
		{[]string{"--metrics", "9464"}, exitUsage, `invalid --metrics "9464": use host:port, e.g. :9464 or 127.0.0.1:9464`},
		{[]string{"--metrics", ":http"}, exitUsage, `invalid --metrics ":http": use host:port, e.g. :9464 or 127.0.0.1:9464`},
		{[]string{"--metrics-labels", "comm"}, exitUsage, "--metrics-labels needs --metrics ADDR or --otlp ENDPOINT"},
		{[]string{"--metrics", ":9464", "--metrics-labels", "pid"}, exitUsage, `--metrics-labels: unknown label "pid" (known: comm, container, pod)`},
		{[]string{"--otlp", "localhost:4318"}, exitUsage, `invalid --otlp "localhost:4318": no scheme: use http://HOST:PORT for OTLP/HTTP (e.g. http://localhost:4318) or grpc://HOST:PORT for OTLP/gRPC (e.g. grpc://localhost:4317), https:// or grpcs:// for TLS`},
		{[]string{"--otlp", "tcp://localhost:4317"}, exitUsage, `invalid --otlp "tcp://localhost:4317": unknown scheme tcp: use http://HOST:PORT for OTLP/HTTP (e.g. http://localhost:4318) or grpc://HOST:PORT for OTLP/gRPC (e.g. grpc://localhost:4317), https:// or grpcs:// for TLS`},
		{[]string{"--otlp", "grpc://localhost:4317/v1"}, exitUsage, `invalid --otlp "grpc://localhost:4317/v1": gRPC takes no path: use http://HOST:PORT for OTLP/HTTP (e.g. http://localhost:4318) or grpc://HOST:PORT for OTLP/gRPC (e.g. grpc://localhost:4317), https:// or grpcs:// for TLS`},
		{[]string{"--otlp", "http://:4318"}, exitUsage, `invalid --otlp "http://:4318": no host: use http://HOST:PORT for OTLP/HTTP (e.g. http://localhost:4318) or grpc://HOST:PORT for OTLP/gRPC (e.g. grpc://localhost:4317), https:// or grpcs:// for TLS`},
		{[]string{"--otlp", "http://localhost:4318", "--metrics-labels", "pid"}, exitUsage, `--metrics-labels: unknown label "pid" (known: comm, container, pod)`},
		{[]string{"--runtime-endpoint", "tcp://localhost:1234"}, exitUsage, `--runtime-endpoint: CRI endpoint "tcp://localhost:1234": only unix:///PATH sockets are supported`},
		{[]string{"--runtime-endpoint", "crio.sock"}, exitUsage, `--runtime-endpoint: CRI endpoint "crio.sock": want unix:///PATH or an absolute PATH`},
		{[]string{"replay", notRecording, "--max-sockets", "0"}, exitUsage, "invalid --max-sockets 0: must be at least 1"},
		{[]string{"replay", notRecording, "--since", "10:00"}, exitUsage, `invalid --since "10:00": use RFC 3339, e.g. 2026-11-21T10:00:00Z`},
		{[]string{"replay", notRecording, "-p", "0"}, exitUsage, `invalid --pid "0": must be a process id (a positive number)`},
		// Files.
		{[]string{"replay", notRecording}, exitError, notRecording + " is not a tcptrace recording (not gzip-compressed: unexpected EOF): make one with tcptrace --record FILE"},
		{[]string{"report", notRecording, "-o", filepath.Join(dir, "r.html")}, exitError, notRecording + " is not a tcptrace recording (not gzip-compressed: unexpected EOF): make one with tcptrace --record FILE"},
		// Before tracing, not after it.
		{[]string{"--report", filepath.Join(dir, "none", "r.html")}, exitError, "--report: open " + filepath.Join(dir, "none", "r.html") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tt.args...)
			if want := "tcptrace: " + tt.want + "\n"; code != tt.code || stderr != want {
				t.Errorf("exit %d, stderr\n%q\nwant exit %d, stderr\n%q", code, stderr, tt.code, want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// TestExplainSaysItOnce: the sentences for the failures a user can fix
// neither repeat tcptrace's name after the "tcptrace: " prefix nor the
// words of the error they explain.
func TestExplainSaysItOnce(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: load BPF programs: operation not permitted", probe.ErrNotPrivileged),
			"loading BPF programs needs root (or the CAP_BPF and CAP_PERFMON capabilities): run tcptrace with sudo"},
		{fmt.Errorf("%w: read /x: open /x: no such file or directory", probe.ErrNoBTF),
			"this kernel exposes no BTF type information (read /x: open /x: no such file or directory); tcptrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, as most distributions ship since 2020"},
		{fmt.Errorf("%w: this kernel's tracing programs cannot call bpf_get_socket_cookie", probe.ErrKernelTooOld),
			"this kernel is too old: tracing needs Linux 5.12 or newer (this kernel's tracing programs cannot call bpf_get_socket_cookie); upgrade the kernel, or trace with tcpdump/ss on this one"},
		{fmt.Errorf("hook tcp/tcp_probe: %w: tracepoint tcp_probe not in BTF", probe.ErrHookMissing),
			"this kernel lacks a hook tcptrace needs (hook tcp/tcp_probe: tracepoint tcp_probe not in BTF); run 'tcptrace features' to see which"},
	}
	for _, tt := range tests {
		if got := explain(tt.err); got != tt.want {
			t.Errorf("explain(%v)\n = %q\nwant %q", tt.err, got, tt.want)
		}
	}
}

// TestHelp: `tcptrace help X` and `tcptrace X --help` print X's help (not
// the main one), with examples, its own flags and no hidden ones.
func TestHelp(t *testing.T) {
	tests := []struct {
		command    []string
		has, lacks []string
	}{
		{nil, []string{"tcptrace shows what the Linux kernel does", "Examples:", "-p, --pid", "--lport", "--rport", "--netns", "--version",
			"--otlp", "tcptrace -o none --otlp http://localhost:4318", "features", "sysctl", "replay", "report", "completion"}, []string{"btf-path", "--discard", "--cpuprofile", "--since"}},
		{[]string{"features"}, []string{"tcptrace features shows", "Examples:", "-h, --help"}, []string{"--duration", "--pid", "btf-path"}},
		{[]string{"sysctl"}, []string{"tcptrace sysctl shows", "Examples:", "-p, --pid", "--netns", "--output"}, []string{"--duration", "--lport"}},
		{[]string{"replay"}, []string{"tcptrace replay shows", "Examples:", "--since", "--until", "--lport", "--rport", "--full-findings"}, []string{"--netns", "--duration"}},
		{[]string{"report"}, []string{"tcptrace report makes", "Examples:", "--title"}, []string{"--pid"}},
		{[]string{"completion", "bash"}, []string{"bash"}, nil},
	}
	for _, tt := range tests {
		name := strings.Join(tt.command, " ")
		viaFlag, stderr, code := runCLI(t, append(tt.command, "--help")...)
		if code != exitOK || stderr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", name, code, stderr)
		}
		viaHelp, stderr, code := runCLI(t, append([]string{"help"}, tt.command...)...)
		if code != exitOK || stderr != "" {
			t.Errorf("help %s: exit %d, stderr %q", name, code, stderr)
		}
		if viaHelp != viaFlag {
			t.Errorf("help %s differs from %s --help:\n%s\n---\n%s", name, name, viaHelp, viaFlag)
		}
		for _, s := range tt.has {
			if !strings.Contains(viaFlag, s) {
				t.Errorf("%s --help lacks %q:\n%s", name, s, viaFlag)
			}
		}
		for _, s := range tt.lacks {
			if strings.Contains(viaFlag, s) {
				t.Errorf("%s --help shows %q:\n%s", name, s, viaFlag)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, stderr, code := runCLI(t, "--version")
	if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "tcptrace dev (commit ") || !strings.Contains(stdout, ", go1.") ||
		strings.Count(stdout, "\n") != 1 {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want one line: version, commit and Go version", code, stdout, stderr)
	}
}

// TestCompletionScripts: each shell gets a script, and bash accepts its own.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		script, stderr, code := runCLI(t, "completion", shell)
		if code != exitOK || stderr != "" || !strings.Contains(script, "tcptrace") {
			t.Fatalf("completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(script))
		}
		if shell != "bash" {
			continue
		}
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Fatal("bash is needed")
		}
		check := exec.Command(bash, "-n")
		check.Stdin = strings.NewReader(script)
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("bash -n on the bash completion script: %v\n%s", err, out)
		}
	}
}

// TestCompletions: what the shell is offered, from cobra's __complete.
func TestCompletions(t *testing.T) {
	tests := []struct {
		args  []string
		wants []string
	}{
		{[]string{""}, []string{"features\t", "sysctl\t", "replay\t", "report\t", "completion\t", "help\t"}},
		{[]string{"-o", ""}, []string{"text", "json"}},
		{[]string{"replay", "x", "-o", ""}, []string{"text", "json"}},
		{[]string{"help", "re"}, []string{"replay\t", "report\t"}},
		{[]string{"--pid", fmt.Sprint(os.Getpid())}, []string{fmt.Sprint(os.Getpid()) + "\t"}},
		{[]string{"--lp"}, []string{"--lport\t"}},
	}
	for _, tt := range tests {
		stdout, _, code := runCLI(t, append([]string{cobra.ShellCompRequestCmd}, tt.args...)...)
		lines := strings.Split(stdout, "\n")
		for _, want := range tt.wants {
			if code != exitOK || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
				t.Errorf("completing %q: exit %d, no %q in\n%s", tt.args, code, want, stdout)
			}
		}
	}
}

// TestCgroupFilterFlags: --cgroup takes paths below the mount or under it,
// --container id prefixes; tracing resolves them to cgroup ids now and
// refuses when none matches.
func TestCgroupFilterFlags(t *testing.T) {
	var filters filterFlags
	fs := (&cobra.Command{}).Flags()
	filters.define(fs)
	if err := fs.Parse([]string{"--cgroup", "/sys/fs/cgroup/system.slice/,/kubepods", "--container", "3F4E", "--cgroup", "/sys/fs/cgroup"}); err != nil {
		t.Fatal(err)
	}
	sf, err := filters.parse(nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sf.cgroups.Paths, []string{"/system.slice", "/kubepods", "/"}) || !slices.Equal(sf.cgroups.ContainerPrefixes, []string{"3f4e"}) {
		t.Errorf("filter %+v, want paths [/system.slice /kubepods /] and container prefix 3f4e", sf.cgroups)
	}

	mount, err := container.Mount()
	if err != nil {
		t.Skip(err)
	}
	cmd := &cobra.Command{}
	f := defineTraceFlags(cmd)
	if err := cmd.ParseFlags([]string{"--cgroup", "/tcptrace-no-such.slice", "--container", "0"}); err != nil {
		t.Fatal(err)
	}
	want := "no cgroup under " + mount + " matches --cgroup /tcptrace-no-such.slice --container 0"
	if _, err := f.config(); err == nil || err.Error() != want {
		t.Errorf("config: %v, want %q", err, want)
	}
	cmd = &cobra.Command{}
	f = defineTraceFlags(cmd)
	if err := cmd.ParseFlags([]string{"--cgroup", "/"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config()
	if err != nil && !strings.Contains(err.Error(), "more than the") {
		t.Fatal(err)
	}
	if err == nil && len(cfg.Probe.Filter.Cgroups) == 0 {
		t.Error("--cgroup / resolved to no cgroup id")
	}
}

// TestPortFilterFlags: --port is local or remote, --lport local only,
// --rport remote only, each repeatable and comma-separated, into the
// kernel's filter.
func TestPortFilterFlags(t *testing.T) {
	cmd := &cobra.Command{}
	f := defineTraceFlags(cmd)
	if err := cmd.ParseFlags([]string{"--port", "22", "--lport", "80,443", "--lport", "8080", "--rport", "5432", "-p", "1"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Probe.Filter
	if !slices.Equal(got.Ports, []uint16{22}) || !slices.Equal(got.LocalPorts, []uint16{80, 443, 8080}) ||
		!slices.Equal(got.RemotePorts, []uint16{5432}) || !slices.Equal(got.PIDs, []uint32{1}) {
		t.Errorf("filter %+v, want ports [22], local ports [80 443 8080], remote ports [5432], pids [1]", got)
	}

	var replayFilters filterFlags
	fs := (&cobra.Command{}).Flags()
	replayFilters.define(fs)
	if err := fs.Parse([]string{"--rport", "53", "--lport", "1024", "--pid", "4194304"}); err != nil {
		t.Fatal(err)
	}
	sf, err := replayFilters.parse(nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sf.ports) != 0 || !slices.Equal(sf.localPorts, []uint16{1024}) || !slices.Equal(sf.remotePorts, []uint16{53}) ||
		!slices.Equal(sf.pids, []uint32{4194304}) {
		t.Errorf("replay's filter %+v: want local ports [1024], remote [53], and the pid of a process gone", sf)
	}
}

// TestRuntimeEndpoint: the CRI endpoint is --runtime-endpoint's, else
// crictl's variable's, and a bad one in the variable is refused by name.
func TestRuntimeEndpoint(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		env, want, err string
	}{
		{nil, "", "", ""},
		{nil, "unix:///run/crio/crio.sock", "unix:///run/crio/crio.sock", ""},
		{[]string{"--runtime-endpoint", "/run/x.sock"}, "unix:///run/crio/crio.sock", "/run/x.sock", ""},
		{nil, "crio.sock", "", `$CONTAINER_RUNTIME_ENDPOINT: CRI endpoint "crio.sock": want unix:///PATH or an absolute PATH`},
	} {
		t.Setenv(container.RuntimeEndpointEnv, tc.env)
		cmd := &cobra.Command{}
		f := defineTraceFlags(cmd)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.config()
		if got := fmt.Sprint(err); cfg.RuntimeEndpoint != tc.want || (err != nil || tc.err != "") && got != tc.err {
			t.Errorf("%v with $%s=%q: endpoint %q, error %v; want %q, error %q", tc.args, container.RuntimeEndpointEnv, tc.env,
				cfg.RuntimeEndpoint, err, tc.want, tc.err)
		}
	}
}
