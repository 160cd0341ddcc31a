package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runTracer runs the tcptrace binary to completion.
func runTracer(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCommand(t, exec.Command(tracerBinary, args...))
}

func runCommand(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
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

// TestCLIErrors: every bad input gives one sentence that says what is wrong,
// a non-zero exit, and never a Go stack trace.
func TestCLIErrors(t *testing.T) {
	nopid := missingPID(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pid", "abc"}, 2, `tcptrace: invalid --pid "abc": must be a process id (a positive number)`},
		{[]string{"--pid", "1,x"}, 2, `tcptrace: invalid --pid "x"`},
		{[]string{"--pid", fmt.Sprint(nopid)}, 2, fmt.Sprintf("tcptrace: invalid --pid %d: no such process", nopid)},
		{[]string{"--port", "70000"}, 2, `tcptrace: invalid --port "70000": must be a number from 1 to 65535`},
		{[]string{"--port", "0"}, 2, `tcptrace: invalid --port "0"`},
		{[]string{"-o", "yaml"}, 2, `tcptrace: invalid --output "yaml": use text, json or none`},
		{[]string{"-4", "-6"}, 2, "tcptrace: -4 and -6 exclude each other"},
		{[]string{"--netns", "/nonexistent/ns"}, 2, "tcptrace: --netns /nonexistent/ns: no such file"},
		{[]string{"--netns", "1"}, 2, "tcptrace: --netns 1: no process or /run/netns file is in that network namespace"},
		{[]string{"--lport", "0"}, 2, `tcptrace: invalid --lport "0"`},
		{[]string{"--rport", "x"}, 2, `tcptrace: invalid --rport "x"`},
		{[]string{"features", "--duration", "1s", "--pid", "1"}, 2, "tcptrace: --duration is for tracing, not for features (see tcptrace features --help)"},
		{[]string{"--ring-size", "3M"}, 2, `tcptrace: invalid --ring-size "3M": use a power of two`},
		{[]string{"--duration", "-1s"}, 2, "tcptrace: invalid --duration -1s"},
		{[]string{"--bogus"}, 2, "tcptrace: unknown flag: --bogus (see tcptrace --help)"},
		{[]string{"extra"}, 2, `tcptrace: "extra" is not a tcptrace command`},
		{[]string{"--btf-path", "/nonexistent/vmlinux"}, 1, "tcptrace: this kernel exposes no BTF type information"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := runTracer(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("stderr %q, want it to start with %q", stderr, tt.want)
			}
			if strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "goroutine") {
				t.Errorf("want one line, got %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// TestUnprivileged: a user without CAP_BPF/CAP_PERFMON is told to use sudo.
func TestUnprivileged(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed")
	}
	for _, args := range [][]string{{"--duration", "1s"}, {"--pid", "1"}} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", tracerBinary}, args...)...)
		_, stderr, code := runCommand(t, cmd)
		want := "tcptrace: loading BPF programs needs root (or the CAP_BPF and CAP_PERFMON capabilities): run tcptrace with sudo\n"
		if code != 1 || stderr != want {
			t.Errorf("%v: exit %d, stderr %q; want exit 1, %q", args, code, stderr, want)
		}
	}
	// features still works, says what is missing, and claims nothing it
	// could not check: the same hooks as root sees, none "selected" or
	// refused for the addresses the kernel hides from this user.
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", tracerBinary, "features")
	stdout, stderr, code := runCommand(t, cmd)
	if code != 0 || !strings.Contains(stdout, "privileges:  no: loading BPF programs needs root") ||
		!strings.Contains(stdout, "ring buffer: not checked") || !strings.Contains(stdout, "helpers:     not checked") {
		t.Errorf("features as nobody: exit %d\n%s%s", code, stdout, stderr)
	}
	rootOut, _, _ := runTracer(t, "features")
	// The capabilities a container or a unit needs: root holds them all,
	// nobody none.
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYSLOG"} {
		if !slices.Contains(strings.Fields(capabilityLine(rootOut, c)), "held") || !slices.Contains(strings.Fields(capabilityLine(stdout, c)), "missing") {
			t.Errorf("features says of %s as root %q, as nobody %q; want held, missing", c, capabilityLine(rootOut, c), capabilityLine(stdout, c))
		}
	}
	if got, want := hookNames(stdout), hookNames(rootOut); !slices.Equal(got, want) {
		t.Errorf("features lists hooks %v as nobody, %v as root", got, want)
	}
	for line := range strings.SplitSeq(stdout, "\n") {
		if strings.Contains(line, "selected") || strings.Contains(line, "kallsyms") {
			t.Errorf("features as nobody claims what it could not check: %s", line)
		}
	}
}

// capabilityLine is the line of a features output about capability c.
func capabilityLine(features, c string) string {
	for line := range strings.SplitSeq(features, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == c {
			return line
		}
	}
	return ""
}

// hookNames lists the hooks of a features output, in order.
func hookNames(features string) []string {
	var names []string
	for line := range strings.SplitSeq(features, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(line, "  ") && f[0] != "HOOK" {
			names = append(names, f[0]+" "+f[2])
		}
	}
	return names
}

func TestHelpAndVersion(t *testing.T) {
	stdout, _, code := runTracer(t, "--help")
	if code != 0 || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "--pid") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
	if strings.Contains(stdout, "btf-path") {
		t.Error("--help shows the hidden --btf-path")
	}
	stdout, _, code = runTracer(t, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "tcptrace ") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}

// TestFeatures: as root every hook is loaded and attached for real.
func TestFeatures(t *testing.T) {
	requireRoot(t)
	stdout, stderr, code := runTracer(t, "features")
	if belowFloor(t) { // it names what this kernel lacks, and loads nothing
		if code != 0 || !strings.Contains(stdout, "helpers:     no: this kernel is too old: tracing needs Linux 5.12 or newer") ||
			strings.Contains(stdout, "attached") {
			t.Errorf("features below the floor: exit %d, stdout:\n%s", code, stdout)
		}
		return
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, hook := range []string{"sock/inet_sock_set_state", "tcp/tcp_retransmit_skb", "tcp/tcp_send_reset",
		"tcp/tcp_receive_reset", "tcp/tcp_destroy_sock"} {
		found := false
		for line := range strings.SplitSeq(stdout, "\n") {
			if strings.Contains(line, hook) && strings.Contains(line, "attached") {
				found = true
			}
		}
		if !found {
			t.Errorf("hook %s not reported attached:\n%s", hook, stdout)
		}
	}
	if !strings.Contains(stdout, "kernel:") || !strings.Contains(stdout, "BTF:         /sys/kernel/btf/vmlinux") {
		t.Errorf("features lacks kernel or BTF source:\n%s", stdout)
	}
	// Every tracepoint and iterator tcptrace uses exists on the kernels it
	// is tested on (5.11+): an optional one unavailable there is a program
	// the verifier refused.
	for line := range strings.SplitSeq(stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && (f[1] == "tp_btf" || f[1] == "iter") && f[3] != "attached" {
			t.Errorf("hook %s not attached: %s", f[0], line)
		}
	}
	// The precise hooks: all attached where the kernel permits fentry/fexit
	// (Debian's 6.1, 6.12), else each unavailable, saying why and what
	// tcptrace shows without it (the 6.18 host: EPERM).
	precise := map[string]string{
		"fentry/tcp_write_wakeup":          "the tracepoints tell the same, inferred",
		"fentry/tcp_rcv_state_process":     "the states are still traced, the segments that drive them are not shown",
		"fexit/tcp_timewait_state_process": "the tracepoints tell the same, inferred",
	}
	statuses := map[string]bool{}
	for line := range strings.SplitSeq(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || precise[f[0]] == "" {
			continue
		}
		attached := f[3] == "attached"
		statuses[f[0]] = attached
		if !attached && (f[3] != "unavailable:" || !strings.Contains(line, "does not permit") || !strings.HasSuffix(line, precise[f[0]])) {
			t.Errorf("precise hook %s neither attached nor refused with its reason and fallback: %s", f[0], line)
		}
	}
	if len(statuses) != len(precise) || statuses["fentry/tcp_write_wakeup"] != statuses["fentry/tcp_rcv_state_process"] ||
		statuses["fentry/tcp_write_wakeup"] != statuses["fexit/tcp_timewait_state_process"] {
		t.Errorf("precise hooks %v, want all three listed, all attached or all refused:\n%s", statuses, stdout)
	}
}

// TestStatusLine: on a terminal (tmux here) text mode keeps a status line
// with the event rate; piped, it stays plain (checked by every tracer run).
func TestStatusLine(t *testing.T) {
	requireTracing(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed")
	}
	ns := newNetns(t)
	session := fmt.Sprintf("tcptrace-%d", os.Getpid())
	ready := filepath.Join(t.TempDir(), "ready")
	mustRun(t, "tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "30",
		tracerBinary+" --netns "+fmt.Sprint(ns.inode)+" --ready-file "+ready+" --duration 6s; sleep 10")
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", session).Run() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tcptrace in tmux not ready after 20 s")
		}
	}
	srv, cli := ns.connected(t, "127.0.0.1")
	cli.do("close")
	srv.do("close")
	time.Sleep(1500 * time.Millisecond)
	screen := mustRun(t, "tmux", "capture-pane", "-p", "-t", session)
	if !strings.Contains(screen, "events/s,") || !strings.Contains(screen, "sockets tracked") ||
		!strings.Contains(screen, "CLOSE -> LISTEN") {
		t.Errorf("terminal shows no status line under the events:\n%s", screen)
	}
	time.Sleep(5 * time.Second)
	screen = mustRun(t, "tmux", "capture-pane", "-p", "-t", session)
	if strings.Contains(screen, "events/s,") || !strings.Contains(screen, "events in") {
		t.Errorf("at exit the status line should give way to the summary:\n%s", screen)
	}
}

// TestDiscard: --discard (make bench's kernel-side-only run) traces with
// every hook attached but reads the records without showing one, and loses
// none.
func TestDiscard(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--discard")
	before := ns.counters(t)
	srv, cli := ns.connected(t, "127.0.0.1")
	cli.do("write 100", "close")
	srv.do("read-eof", "close")
	settle()
	wantDelta(t, before, ns.counters(t), "Tcp.ActiveOpens", 1)
	if evs := tr.stop(); len(evs) != 0 || tr.stats.Events != 0 {
		t.Errorf("--discard showed %d events (stats: %d), want none", len(evs), tr.stats.Events)
	}
}

// TestKernelFloor: below Linux 5.12 tcptrace says in one sentence that it
// cannot trace there and why, and exits 1; from it on, it traces.
func TestKernelFloor(t *testing.T) {
	requireRoot(t)
	_, stderr, code := runTracer(t, "--duration", "200ms")
	if belowFloor(t) {
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "needs Linux 5.12 or newer") ||
			!strings.Contains(stderr, "bpf_get_socket_cookie") {
			t.Errorf("below the floor: exit %d, stderr %q; want 1 and one sentence naming 5.12 and the missing helper", code, stderr)
		}
		return
	}
	if code != 0 {
		t.Errorf("exit %d, stderr %q; want tracing", code, stderr)
	}
}
