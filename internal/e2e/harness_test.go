// Package e2e holds tcptrace's privileged end-to-end tests: real TCP traffic
// in throwaway network namespaces, traced by the real binary, with the events
// checked against what the kernel did and against its own counters.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/privtest"
)

var (
	tracerBinary string
	tracerDir    string // world-readable, for what an unprivileged user runs or reads
	goldenTaken  = map[string]bool{}
)

func TestMain(m *testing.M) {
	if os.Getenv(actorEnv) != "" {
		os.Exit(runActor())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// World-executable, so the unprivileged-user test can run it too.
	dir, err := os.MkdirTemp("", "tcptrace-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tracerDir = dir
	tracerBinary = filepath.Join(dir, "tcptrace")
	if err := installTracer(tracerBinary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// installTracer copies the binary named by TCPTRACE_BINARY (set by make test
// and the kernel-matrix runner) to dst, or builds it there.
func installTracer(dst string) error {
	src := os.Getenv("TCPTRACE_BINARY")
	if src == "" {
		build := exec.Command("go", "build", "-o", dst, "../../cmd/tcptrace")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build tcptrace (or set TCPTRACE_BINARY): %w", err)
		}
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("TCPTRACE_BINARY: %w", err)
	}
	return os.WriteFile(dst, data, 0o755)
}

func requireRoot(t *testing.T) {
	t.Helper()
	privtest.RequireRoot(t)
}

// floor is the oldest kernel tcptrace traces on (tracing programs got
// bpf_get_socket_cookie in 5.12); TestKernelFloor checks the refusal below.
var floor = [2]int{5, 12}

// requireTracing fails the test without root, and skips it on a kernel
// tcptrace refuses to trace on.
func requireTracing(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if belowFloor(t) {
		t.Skipf("tcptrace refuses kernels older than %d.%d (TestKernelFloor checks that)", floor[0], floor[1])
	}
}

// belowFloor tells whether the running kernel is older than floor.
func belowFloor(t *testing.T) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", u.Release, err)
	}
	return major < floor[0] || major == floor[0] && minor < floor[1]
}

// netns is a network namespace made for one scenario.
type netns struct {
	name  string
	inode uint64
}

var netnsSeq atomic.Int32

func newNetns(t *testing.T) *netns {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("tcptrace-e2e-%d-%d", os.Getpid(), netnsSeq.Add(1))
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	mustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return &netns{name: name, inode: st.Ino}
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft applies an nftables ruleset inside the namespace.
func (ns *netns) nft(t *testing.T, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

// sysctl sets a sysctl inside the namespace.
func (ns *netns) sysctl(t *testing.T, name, value string) {
	t.Helper()
	mustRun(t, "ip", "netns", "exec", ns.name, "sysctl", "-qw", name+"="+value)
}

// timewaitSockets lists the namespace's TIME_WAIT sockets as "local peer".
func (ns *netns) timewaitSockets(t *testing.T) []string {
	t.Helper()
	out := mustRun(t, "ip", "netns", "exec", ns.name, "ss", "-Htn", "state", "time-wait")
	var socks []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			socks = append(socks, f[2]+" "+f[3])
		}
	}
	return socks
}

// counters reads the namespace's /proc/net/netstat and /proc/net/snmp as
// "TcpExt.TW", "Tcp.RetransSegs" and so on.
func (ns *netns) counters(t *testing.T) map[string]int64 {
	t.Helper()
	out := mustRun(t, "ip", "netns", "exec", ns.name, "cat", "/proc/net/netstat", "/proc/net/snmp")
	counters := map[string]int64{}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) != len(values) || len(names) == 0 {
			continue
		}
		prefix := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			v, err := strconv.ParseInt(values[j], 10, 64)
			if err == nil {
				counters[prefix+"."+names[j]] = v
			}
		}
	}
	if _, ok := counters["Tcp.RetransSegs"]; !ok {
		t.Fatalf("no Tcp counters in:\n%s", out)
	}
	return counters
}

// wantDelta checks that a kernel counter moved by want between two readings.
func wantDelta(t *testing.T, before, after map[string]int64, counter string, want int64) {
	t.Helper()
	if d := after[counter] - before[counter]; d != want {
		t.Errorf("%s delta %d, want %d", counter, d, want)
	}
}

// actor is a TCP peer process (see runActor) inside a namespace.
type actor struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	pid   int
	port  int // local port, once listening or connected
}

// startActor starts a peer process in the namespace.
func (ns *netns) startActor(t *testing.T) *actor {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, self)
	cmd.Env = append(os.Environ(), actorEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &actor{t: t, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		a.stdin.Close()
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
	})
	fields := strings.Fields(a.readLine())
	if len(fields) != 2 || fields[0] != "started" {
		t.Fatalf("actor: %v", fields)
	}
	a.pid, _ = strconv.Atoi(fields[1])
	return a
}

// listener starts an actor listening on host, port chosen by the kernel.
func (ns *netns) listener(t *testing.T, host string) *actor {
	a := ns.startActor(t)
	a.port, _ = strconv.Atoi(a.do1("listen " + addr(host, 0)))
	return a
}

// client starts an actor connected to host:port.
func (ns *netns) client(t *testing.T, host string, port int) *actor {
	a := ns.startActor(t)
	a.port, _ = strconv.Atoi(a.do1("connect " + addr(host, port)))
	return a
}

// clientFrom starts an actor connected from 127.0.0.1:port (bound first,
// SO_REUSEADDR) to srv, and has srv accept.
func (ns *netns) clientFrom(t *testing.T, port int, srv *actor) *actor {
	t.Helper()
	a := ns.startActor(t)
	a.port, _ = strconv.Atoi(a.do1(fmt.Sprintf("connect-from 127.0.0.1:%d %s", port, addr("127.0.0.1", srv.port))))
	srv.do("accept")
	return a
}

// connected starts a listener on host and a client connected to it, and
// has the listener accept: a server and a client process, one connection.
func (ns *netns) connected(t *testing.T, host string) (srv, cli *actor) {
	t.Helper()
	srv = ns.listener(t, host)
	cli = ns.client(t, host, srv.port)
	srv.do("accept")
	return srv, cli
}

func (a *actor) readLine() string {
	a.t.Helper()
	if !a.lines.Scan() {
		a.t.Fatalf("actor ended: %v", a.lines.Err())
	}
	return a.lines.Text()
}

// do1 sends one command, waits for it to be done and returns its result.
func (a *actor) do1(cmd string) string {
	a.t.Helper()
	fmt.Fprintln(a.stdin, cmd)
	line := a.readLine()
	result, ok := strings.CutPrefix(line, "ok")
	if !ok {
		a.t.Fatalf("actor %q: %s", cmd, line)
	}
	return strings.TrimSpace(result)
}

// try sends one command and returns the actor's answer, success or not.
func (a *actor) try(cmd string) string {
	a.t.Helper()
	fmt.Fprintln(a.stdin, cmd)
	return a.readLine()
}

// do sends commands in turn, each once the previous one is done.
func (a *actor) do(cmds ...string) {
	a.t.Helper()
	for _, c := range cmds {
		a.do1(c)
	}
}

// exit ends the actor and waits for it.
func (a *actor) exit() {
	a.t.Helper()
	fmt.Fprintln(a.stdin, "exit")
	a.stdin.Close()
	if err := a.cmd.Wait(); err != nil {
		a.t.Fatalf("actor: %v", err)
	}
}

// event is one JSON line of tcptrace's output (docs/json.md).
type event struct {
	Type         string         `json:"type"`
	TS           string         `json:"ts"`
	Cookie       uint64         `json:"cookie"`
	Family       int            `json:"family"`
	Saddr        string         `json:"saddr"`
	Sport        int            `json:"sport"`
	Daddr        string         `json:"daddr"`
	Dport        int            `json:"dport"`
	Netns        uint64         `json:"netns"`
	PID          int            `json:"pid"`
	Comm         string         `json:"comm"`
	OldState     string         `json:"old_state"`
	NewState     string         `json:"new_state"`
	State        string         `json:"state"`
	Reason       string         `json:"reason"`
	NoSocket     bool           `json:"no_socket"`
	Verdict      string         `json:"verdict"`
	Flags        string         `json:"flags"`
	Seq          uint32         `json:"seq"`
	Ack          uint32         `json:"ack"`
	Len          int            `json:"len"`
	RcvNxt       uint32         `json:"rcv_nxt"`
	OutOfWindow  bool           `json:"out_of_window"`
	DataAfterFIN bool           `json:"data_after_fin"`
	PrevStateMs  *float64       `json:"prev_state_ms"`
	Events       int            `json:"events"`
	Lost         int            `json:"lost"`
	Undecodable  int            `json:"undecodable"`
	LostByKind   map[string]int `json:"lost_by_kind"`
	LostByCPU    []int          `json:"lost_by_cpu"`
	BPFPrograms  []programCost  `json:"bpf_programs"`
	Cgroup       string         `json:"cgroup"`
	ContainerID  string         `json:"container_id"`
	Runtime      string         `json:"container_runtime"`
	PodUID       string         `json:"pod_uid"`
	Pod          string         `json:"pod"`
	PodNamespace string         `json:"pod_namespace"`

	Substate     string         `json:"substate"`
	OldSubstate  string         `json:"old_substate"`
	NewSubstate  string         `json:"new_substate"`
	TimeKnown    bool           `json:"time_known"`
	WithinMs     *float64       `json:"within_ms"`
	SeenAt       string         `json:"seen_at"`
	RSTReason    string         `json:"rst_reason"`
	TimeoutMs    *float64       `json:"timeout_ms"`
	Cause        string         `json:"cause"`
	AgeMs        *float64       `json:"age_ms"`
	Inferred     bool           `json:"inferred"`
	InferredFrom string         `json:"inferred_from"`
	Successor    uint64         `json:"successor"`
	Kind         string         `json:"kind"`
	FindingID    uint64         `json:"id"`
	See          uint64         `json:"see"`
	Count        uint64         `json:"count"`
	Message      string         `json:"message"`
	Evidence     map[string]any `json:"evidence"`
	Sysctls      map[string]any `json:"sysctls"`
	History      []struct {
		State          string   `json:"state"`
		Ms             *float64 `json:"ms"`
		TimewaitSocket bool     `json:"timewait_socket"`
	} `json:"history"`
	ClosedBy   string       `json:"closed_by"`
	End        string       `json:"end"`
	Close      *closeObject `json:"close"`
	Incomplete bool         `json:"incomplete"`
}

// closeObject is a summary's close (docs/json.md).
type closeObject struct {
	Shape             string   `json:"shape"`
	FirstFIN          string   `json:"first_fin"`
	HalfCloseMs       *float64 `json:"half_close_ms"`
	HalfCloseWithinMs *float64 `json:"half_close_within_ms"`
	State             string   `json:"state"`
	Rule              string   `json:"rule"`
	ResetReason       string   `json:"reset_reason"`
	Counter           string   `json:"counter"`
	Inferred          bool     `json:"inferred"`
	InferredFrom      string   `json:"inferred_from"`
	SeenFrom          string   `json:"seen_from"`
}

// tracer is a running tcptrace.
type tracer struct {
	t            *testing.T
	lossExpected bool   // the test loses records on purpose
	golden       string // where its recording and output go, if anywhere
	cmd          *exec.Cmd
	stdout       bytes.Buffer
	stderr       bytes.Buffer
	once         sync.Once
	events       []event
	stats        event
}

// startTracer runs tcptrace -o json with args and waits until it is ready.
func startTracer(t *testing.T, args ...string) *tracer {
	t.Helper()
	return startTracerStalled(t, nil, args...)
}

// stalledWriter holds every write until open is closed.
type stalledWriter struct {
	open <-chan struct{}
	w    io.Writer
}

func (s stalledWriter) Write(p []byte) (int, error) {
	<-s.open
	return s.w.Write(p)
}

// testRingSize is the ring the tests' tracers get unless they ask for one:
// the kernel zeroes a ring's pages as it makes it, which for the default
// 128 MiB takes seconds in the emulated kernels of the matrix, at each of
// the suite's hundreds of starts. The stalled-output test keeps the
// default: it is the test of it.
const testRingSize = "16M"

// startTracerStalled is startTracer with an output nobody reads until
// open is closed (nil: read at once), as a stuck pipe or disk would be.
func startTracerStalled(t *testing.T, open <-chan struct{}, args ...string) *tracer {
	t.Helper()
	requireTracing(t)
	ready := filepath.Join(t.TempDir(), "ready")
	tr := &tracer{t: t}
	// TCPTRACE_RECORD_GOLDEN=DIR records each test's first tracer and its
	// output into DIR: the golden replays of internal/replay/testdata.
	if dir := os.Getenv("TCPTRACE_RECORD_GOLDEN"); dir != "" && !goldenTaken[t.Name()] {
		goldenTaken[t.Name()] = true
		tr.golden = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_", "=", "_").Replace(t.Name()))
		args = append(args, "--record", tr.golden+".rec.gz")
	}
	if open == nil && !slices.Contains(args, "--ring-size") {
		args = append([]string{"--ring-size", testRingSize}, args...)
	}
	tr.cmd = exec.Command(tracerBinary, append([]string{"-o", "json", "--ready-file", ready}, args...)...)
	tr.cmd.Stdout, tr.cmd.Stderr = &tr.stdout, &tr.stderr
	if open != nil {
		tr.cmd.Stdout = stalledWriter{open, &tr.stdout}
	}
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcptrace not ready after 20s; stderr:\n%s", tr.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop interrupts the tracer, waits for it and parses its output.
func (tr *tracer) stop() []event {
	tr.t.Helper()
	return tr.stopWith(os.Interrupt)
}

// stopWith stops tcptrace with sig and returns what it wrote.
func (tr *tracer) stopWith(sig os.Signal) []event {
	tr.t.Helper()
	tr.once.Do(func() {
		tr.cmd.Process.Signal(sig)
		if err := tr.cmd.Wait(); err != nil {
			tr.t.Fatalf("tcptrace: %v\n%s", err, tr.stderr.String())
		}
		for line := range strings.SplitSeq(strings.TrimSpace(tr.stdout.String()), "\n") {
			var e event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				tr.t.Fatalf("bad JSON line %q: %v", line, err)
			}
			if e.Type == "stats" {
				tr.stats = e
				continue
			}
			tr.events = append(tr.events, e)
		}
		if tr.stats.Type != "stats" {
			tr.t.Fatalf("no stats line in output:\n%s", tr.stdout.String())
		}
		if tr.stats.Events != len(tr.events) {
			tr.t.Errorf("stats say %d events, output has %d", tr.stats.Events, len(tr.events))
		}
		if tr.stats.Lost != 0 && !tr.lossExpected {
			tr.t.Errorf("%d events lost", tr.stats.Lost)
		}
		if tr.stats.Undecodable != 0 {
			tr.t.Errorf("%d records did not decode: %s", tr.stats.Undecodable, tr.stderr.String())
		}
		if tr.stats.Lost == 0 && slices.ContainsFunc(tr.events, func(e event) bool { return e.Incomplete }) {
			tr.t.Error("nothing was lost, yet a story says it is incomplete")
		}
		if strings.Contains(tr.stdout.String()+tr.stderr.String(), "\x1b") {
			tr.t.Error("terminal escapes in output that goes to a pipe")
		}
		if tr.golden != "" {
			if err := os.WriteFile(tr.golden+".json", tr.stdout.Bytes(), 0o644); err != nil {
				tr.t.Fatal(err)
			}
		}
	})
	return tr.events
}

// socketWith returns the events of the socket whose first event matches.
func socketWith(evs []event, match func(event) bool) []event {
	var cookie uint64
	for _, e := range evs {
		if e.Cookie != 0 && match(e) {
			cookie = e.Cookie
			break
		}
	}
	var out []event
	for _, e := range evs {
		if cookie != 0 && e.Cookie == cookie {
			out = append(out, e)
		}
	}
	return out
}

// transitions renders a socket's state events as "A->B->C".
func transitions(evs []event) string {
	var states []string
	for _, e := range evs {
		if e.Type != "state" {
			continue
		}
		if len(states) == 0 {
			states = append(states, e.OldState)
		}
		states = append(states, e.NewState)
	}
	return strings.Join(states, "->")
}

// dumpEvents logs every event, to see what the kernel did when a test fails.
func dumpEvents(t *testing.T, evs []event) {
	t.Helper()
	for _, e := range evs {
		t.Logf("%s cookie=%d pid=%d %s:%d -> %s:%d %s->%s %s %s", e.Type, e.Cookie, e.PID,
			e.Saddr, e.Sport, e.Daddr, e.Dport, e.OldState, e.NewState, e.State, e.Reason)
	}
}

func ofType(evs []event, typ string) []event {
	var out []event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// programCost is one entry of the stats line's bpf_programs.
type programCost struct {
	Program   string `json:"program"`
	Runs      int    `json:"runs"`
	RunTimeNs int64  `json:"run_time_ns"`
}
