// Command bench measures what tracing costs a loopback connection-churn load:
// runs of the same load untraced, traced by tcptrace, and traced by tcptrace
// --discard (its kernel side alone: the records are read and dropped),
// interleaved, each in a fresh network namespace. For each pair with the
// untraced run next to it, it reports as median [min-max]:
//   - the throughput ratio traced/untraced;
//   - the ratio of the machine's busy CPU time per connection, untraced over
//     traced: on a shared VM, whose neighbours take CPU away at random, this
//     moves less than throughput does;
//   - the tracer's own CPU while the load ran, the events it delivered and
//     lost, and its time from start to ready.
//
// Run as root: make bench.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const loadEnv = "TCPTRACE_BENCH_LOAD"

func main() {
	if spec := os.Getenv(loadEnv); spec != "" {
		os.Exit(runLoad(spec))
	}
	tracer := flag.String("tracer", "bin/tcptrace", "tcptrace binary")
	reps := flag.Int("reps", 7, "traced/untraced pairs (0: none, e.g. for -bpf-stats alone)")
	flag.DurationVar(&theLoad.duration, "duration", 2*time.Second, "length of each load run (unless -conns)")
	flag.IntVar(&theLoad.conns, "conns", 0, "make this many connections a run instead of running for -duration")
	flag.IntVar(&theLoad.clients, "clients", 4, "client goroutines connecting at once")
	flag.IntVar(&theLoad.addrs, "addrs", 1, "client addresses (127.0.1.1 and up) the clients connect from, for more 4-tuples than one address has ports")
	bpfStats := flag.Bool("bpf-stats", false, "also measure each BPF program (tcptrace --discard --bpf-stats, one run): runs and ns per connection")
	soak := flag.Int("soak", 0, "also run a soak: this many connections left in TIME_WAIT, traced; reports lost, evicted, peak RSS, the purge when the namespace goes, and the exit time")
	var compare compareFlags
	flag.Var(&compare, "compare", "another tracer command to measure the same way, e.g. \"exec /usr/sbin/tcpstates\"; {netns} stands for the load's namespace inode (repeatable)")
	sink := flag.String("sink", "file", "where tcptrace's output goes: file (JSON lines to a file) or null (text to /dev/null)")
	flag.Parse()
	if *sink != "file" && *sink != "null" {
		fmt.Fprintln(os.Stderr, "bench: -sink is file or null")
		os.Exit(2)
	}
	toNull = *sink == "null"
	tracerPath, err := filepath.Abs(*tracer)
	if err == nil {
		err = bench(tracerPath, compare, *reps)
	}
	if err == nil && *bpfStats {
		err = programCosts(tracerPath)
	}
	if err == nil && *soak > 0 {
		err = soakRun(tracerPath, *soak)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// loadSpec is the churn load's shape, passed to the load process in loadEnv.
type loadSpec struct {
	duration time.Duration
	conns    int // when > 0, instead of duration
	clients  int
	addrs    int
}

// theLoad is the load every run makes.
var theLoad loadSpec

func (l loadSpec) String() string {
	return fmt.Sprintf("%s %d %d %d", l.duration, l.conns, l.clients, l.addrs)
}

func parseLoadSpec(s string) (loadSpec, error) {
	var l loadSpec
	var d string
	if _, err := fmt.Sscan(s, &d, &l.conns, &l.clients, &l.addrs); err != nil {
		return l, fmt.Errorf("load spec %q: %w", s, err)
	}
	var err error
	l.duration, err = time.ParseDuration(d)
	return l, err
}

// result is one run of the load.
type result struct {
	connsPerSec float64
	// cpuPerConn is the machine's busy CPU time (all tasks, softirq
	// included; not steal) per connection: steadier than throughput on a
	// shared VM, whose neighbours take CPUs away at random.
	cpuPerConn time.Duration
	events     int64   // delivered by the tracer
	lost       int64   // reported lost by the tracer
	tracerCPU  float64 // tracer CPU seconds per second, while the load ran
	ready      time.Duration
	conns      int64
	loadTime   time.Duration
	output     string // the tracer's output file, while inspect runs
	// ownPeak is the most anonymous memory (heap, stacks: RssAnon) the
	// tracer held, sampled every 50 ms, while inspect runs.
	ownPeak *atomic.Int64
}

// compareFlags collects -compare commands; they run interleaved with the rest.
type compareFlags []string

func (c *compareFlags) String() string       { return strings.Join(*c, ", ") }
func (c *compareFlags) Set(cmd string) error { *c = append(*c, cmd); return nil }

// variant is one way to run the load: untraced, or under a tracer.
type variant struct {
	name   string
	tracer func(netns uint64) *exec.Cmd // nil: untraced
}

func bench(tracer string, compare []string, reps int) error {
	if reps == 0 {
		return nil
	}
	format := "json"
	if toNull {
		format = "text"
	}
	tcptrace := func(extra ...string) func(uint64) *exec.Cmd {
		return func(netns uint64) *exec.Cmd {
			return exec.Command(tracer, append([]string{"--netns", fmt.Sprint(netns), "-o", format}, extra...)...)
		}
	}
	variants := []variant{
		{"untraced", nil},
		{"tcptrace", tcptrace()},
		// The kernel side alone (BPF programs, ring buffer, reading it):
		// the rest of tcptrace's cost is its user-space processing.
		{"tcptrace --discard", tcptrace("--discard")},
	}
	for _, c := range compare {
		variants = append(variants, variant{c, func(netns uint64) *exec.Cmd {
			return exec.Command("sh", "-c", strings.ReplaceAll(c, "{netns}", fmt.Sprint(netns)))
		}})
	}
	results := map[string][]result{}
	for rep := range reps {
		for _, v := range variants {
			r, err := runOnce(v.tracer, theLoad, nil)
			if err != nil {
				return fmt.Errorf("rep %d %s: %w", rep, v.name, err)
			}
			results[v.name] = append(results[v.name], r)
			fmt.Printf("rep %d %-18s %8.0f conn/s  %5.1f µs CPU/conn  events %8d  lost %6d  tracer CPU %.2f  ready %v\n",
				rep, v.name, r.connsPerSec, float64(r.cpuPerConn.Nanoseconds())/1e3, r.events, r.lost, r.tracerCPU,
				r.ready.Round(time.Millisecond))
		}
	}
	fmt.Println()
	base := results["untraced"]
	for _, v := range variants[1:] {
		var ratios, cpuRatios, evRate, cpu, lost, ready []float64
		for i, r := range results[v.name] {
			ratios = append(ratios, r.connsPerSec/base[i].connsPerSec)
			cpuRatios = append(cpuRatios, float64(base[i].cpuPerConn)/float64(r.cpuPerConn))
			evRate = append(evRate, float64(r.events)/r.loadTime.Seconds())
			cpu = append(cpu, r.tracerCPU)
			lost = append(lost, float64(r.lost))
			ready = append(ready, float64(r.ready.Milliseconds()))
		}
		fmt.Printf("%s: throughput ratio traced/untraced %s\n", v.name, summary(ratios, "%.3f"))
		fmt.Printf("%s: CPU per connection, untraced/traced %s\n", v.name, summary(cpuRatios, "%.3f"))
		fmt.Printf("%s: tracer CPU during the load %s s/s\n", v.name, summary(cpu, "%.2f"))
		if v.name == "tcptrace" {
			fmt.Printf("%s: events/s delivered %s, lost per run %s, start to ready %s ms\n",
				v.name, summary(evRate, "%.0f"), summary(lost, "%.0f"), summary(ready, "%.0f"))
		}
	}
	return nil
}

func summary(xs []float64, format string) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf(format+" ["+format+"-"+format+"]", med, s[0], s[len(s)-1])
}

var (
	statsLine   = regexp.MustCompile(`"type":"stats","events":(\d+),"lost":(\d+)`)
	textSummary = regexp.MustCompile(`(\d+) events in \S+, (\d+) lost`)
	// toNull sends tcptrace's output (as text) to /dev/null, to measure the
	// tracer without the cost of storing what it writes.
	toNull bool
)

// runOnce makes a namespace, starts the tracer (if any) and the load in it.
// inspect, if not nil, runs once the load is done, with the namespace's name
// and the tracer still running, and stops the tracer.
func runOnce(tracerCmd func(netns uint64) *exec.Cmd, load loadSpec, inspect func(name string, tr *exec.Cmd, r *result) error) (result, error) {
	var r result
	name := fmt.Sprintf("tcptrace-bench-%d", os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return r, fmt.Errorf("ip netns add: %w: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return r, fmt.Errorf("lo up: %w: %s", err, out)
	}
	sysctl := fmt.Sprintf("net.ipv4.tcp_max_tw_buckets=%d", maxTimewaitBuckets)
	if out, err := exec.Command("ip", "netns", "exec", name, "sysctl", "-qw", sysctl).CombinedOutput(); err != nil {
		return r, fmt.Errorf("sysctl %s: %w: %s", sysctl, err, out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		return r, err
	}

	var tr *exec.Cmd
	var outFile *os.File
	if tracerCmd != nil {
		dir, err := os.MkdirTemp("", "tcptrace-bench")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		ready := filepath.Join(dir, "ready")
		tr = tracerCmd(st.Ino)
		isTcptrace := strings.HasSuffix(tr.Path, "tcptrace")
		// Output goes to a file, as a user's would: reading it through a
		// pipe here would put the benchmark's own CPU on the scale.
		outFile, err = os.Create(filepath.Join(dir, "out"))
		if err != nil {
			return r, err
		}
		defer outFile.Close()
		tr.Stdout, tr.Stderr = outFile, os.Stderr
		if isTcptrace && toNull {
			tr.Stdout, tr.Stderr = nil, outFile // exec's nil is /dev/null
		}
		if isTcptrace {
			tr.Args = append(tr.Args, "--ready-file", ready)
		}
		start := time.Now()
		if err := tr.Start(); err != nil {
			return r, err
		}
		if inspect != nil { // not in the measured runs, whose busy CPU it would add to
			r.ownPeak = new(atomic.Int64)
			stopSampling := make(chan struct{})
			defer close(stopSampling)
			go sampleOwnMemory(tr.Process.Pid, r.ownPeak, stopSampling)
		}
		if isTcptrace {
			for {
				if _, err := os.Stat(ready); err == nil {
					break
				}
				if time.Since(start) > 20*time.Second {
					tr.Process.Kill()
					return r, fmt.Errorf("tracer not ready")
				}
				time.Sleep(time.Millisecond)
			}
		} else {
			time.Sleep(3 * time.Second) // bcc compiles its program first
		}
		r.ready = time.Since(start)
	}

	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	loadCmd := exec.Command("ip", "netns", "exec", name, self)
	loadCmd.Env = append(os.Environ(), loadEnv+"="+load.String())
	busyBefore, err := busyCPU()
	if err != nil {
		return r, err
	}
	var tracerBefore time.Duration
	if tr != nil {
		if tracerBefore, err = processCPU(tr.Process.Pid); err != nil {
			return r, err
		}
	}
	loadStart := time.Now()
	out, err := loadCmd.Output()
	r.loadTime = time.Since(loadStart)
	if err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	busy, err := busyCPU()
	if err != nil {
		return r, err
	}
	if _, err := fmt.Sscan(string(out), &r.connsPerSec, &r.conns); err != nil || r.conns == 0 {
		return r, fmt.Errorf("load said %q", out)
	}
	r.cpuPerConn = (busy - busyBefore) / time.Duration(r.conns)

	if tr != nil {
		// Its start-up is not the load's concern: only the CPU it used
		// while the load ran counts.
		tracerCPU, err := processCPU(tr.Process.Pid)
		if err != nil {
			return r, err
		}
		r.tracerCPU = (tracerCPU - tracerBefore).Seconds() / time.Since(loadStart).Seconds()
		if inspect != nil { // it stops the tracer
			r.output = outFile.Name()
			if err := inspect(name, tr, &r); err != nil {
				tr.Process.Kill()
				tr.Wait()
				return r, err
			}
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
		tr.Process.Signal(os.Interrupt)
		if err := tr.Wait(); err != nil {
			return r, fmt.Errorf("tracer: %w", err)
		}
		if r.events, r.lost, err = countOutput(outFile); err != nil {
			return r, err
		}
	}
	return r, nil
}

// countOutput counts the lines a tracer wrote; for tcptrace it takes the
// events and lost counts from its closing stats line.
func countOutput(f *os.File) (events, lost int64, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		events++
		m := statsLine.FindSubmatch(sc.Bytes())
		if m == nil {
			m = textSummary.FindSubmatch(sc.Bytes())
		}
		if m != nil {
			events, _ = strconv.ParseInt(string(m[1]), 10, 64)
			lost, _ = strconv.ParseInt(string(m[2]), 10, 64)
			return events, lost, nil
		}
	}
	return events, 0, sc.Err()
}

// runLoad is the churn load, run inside the namespace: clients connect
// (from spec.addrs addresses), send a request, read the reply and close
// first; the server replies and closes. About ten state changes per
// connection, and a TIME_WAIT socket on the client's side. Prints
// connections/s and connections.
func runLoad(specText string) int {
	spec, err := parseLoadSpec(specText)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go serve(ln)
	var done, started atomic.Int64
	deadline := time.Now().Add(spec.duration)
	more := func() bool {
		if spec.conns > 0 {
			return started.Add(1) <= int64(spec.conns)
		}
		return time.Now().Before(deadline)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for client := range spec.clients {
		wg.Go(func() {
			buf := make([]byte, 64)
			for n := client; more(); n += spec.clients {
				var d net.Dialer
				if spec.addrs > 1 { // all of 127/8 is on lo
					i := n % spec.addrs
					d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/255), byte(1+i%255))}
				}
				c, err := d.Dial("tcp", ln.Addr().String())
				if err != nil {
					continue
				}
				c.Write(buf[:16])
				io.ReadFull(c, buf[:16])
				c.Close()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.1f %d\n", float64(done.Load())/time.Since(start).Seconds(), done.Load())
	return 0
}

// busyCPU is the CPU time all CPUs spent busy since boot: user, nice,
// system, irq and softirq from /proc/stat; idle, iowait and steal are not.
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// processCPU is the user and system CPU time a process has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which may hold spaces: state,
	// ppid, ... utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux ABI.
const clockTicks = 100

func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			r := bufio.NewReader(c)
			buf := make([]byte, 16)
			if _, err := io.ReadFull(r, buf); err == nil {
				c.Write(buf)
			}
			io.Copy(io.Discard, r)
			c.Close()
		}()
	}
}

// statsOf returns the closing stats line of a tcptrace JSON output file.
func statsOf(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var stats map[string]any
	if err := json.Unmarshal(lines[len(lines)-1], &stats); err != nil || stats["type"] != "stats" {
		return nil, fmt.Errorf("%s: no stats line at the end", path)
	}
	return stats, nil
}

// programCosts runs the load once under tcptrace --discard --bpf-stats and
// prints each BPF program's runs and kernel time per connection.
func programCosts(tracer string) error {
	var stats map[string]any
	r, err := runOnce(func(netns uint64) *exec.Cmd {
		return exec.Command(tracer, "--netns", fmt.Sprint(netns), "-o", "json", "--discard", "--bpf-stats")
	}, theLoad, func(_ string, tr *exec.Cmd, r *result) error {
		tr.Process.Signal(os.Interrupt)
		if err := tr.Wait(); err != nil {
			return fmt.Errorf("tracer: %w", err)
		}
		var err error
		stats, err = statsOf(r.output)
		return err
	})
	if err != nil && stats == nil {
		return fmt.Errorf("bpf stats run: %w", err)
	}
	programs, _ := stats["bpf_programs"].([]any)
	if len(programs) == 0 {
		return fmt.Errorf("bpf stats run: no bpf_programs in the stats")
	}
	conns := float64(r.conns)
	fmt.Printf("\nBPF programs, kernel side alone (%d connections, kernel.bpf_stats_enabled):\n", r.conns)
	fmt.Printf("| program | runs per connection | ns per run | ns per connection |\n|---|---|---|---|\n")
	var total float64
	for _, p := range programs {
		p := p.(map[string]any)
		runs, ns := p["runs"].(float64), p["run_time_ns"].(float64)
		total += ns
		fmt.Printf("| %s | %.2f | %.0f | %.0f |\n", p["program"], runs/conns, ns/runs, ns/conns)
	}
	fmt.Printf("| all | | | %.0f |\n", total/conns)
	return nil
}

// soakRun leaves n TIME_WAIT sockets in a namespace under tcptrace, then
// deletes the namespace and stops tcptrace: what it lost and evicted, its
// peak memory, whether every TIME_WAIT socket ended purged, and how long it
// took to exit.
func soakRun(tracer string, n int) error {
	var report string
	_, err := runOnce(func(netns uint64) *exec.Cmd {
		return exec.Command(tracer, "--netns", fmt.Sprint(netns), "-o", "json")
	}, loadSpec{conns: n, clients: theLoad.clients, addrs: max(theLoad.addrs, n/20000+1)}, func(name string, tr *exec.Cmd, r *result) error {
		out, err := exec.Command("ip", "netns", "exec", name, "ss", "-Htan", "state", "time-wait").Output()
		if err != nil {
			return fmt.Errorf("ss: %w", err)
		}
		timewaits := bytes.Count(out, []byte("\n"))
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns del: %w: %s", err, out)
		}
		// The kernel purges a dead namespace's TIME_WAIT sockets in its
		// cleanup work: wait for the output to stop growing.
		time.Sleep(time.Second)
		for size := int64(-1); ; time.Sleep(time.Second) {
			st, err := os.Stat(r.output)
			if err != nil {
				return err
			}
			if st.Size() == size {
				break
			}
			size = st.Size()
		}
		peak, err := peakRSS(tr.Process.Pid)
		if err != nil {
			return err
		}
		stopped := time.Now()
		tr.Process.Signal(syscall.SIGTERM)
		if err := tr.Wait(); err != nil {
			return fmt.Errorf("tracer: %w", err)
		}
		exit := time.Since(stopped)
		stats, err := statsOf(r.output)
		if err != nil {
			return err
		}
		purged, err := countPurged(r.output)
		if err != nil {
			return err
		}
		own := r.ownPeak.Load()
		report = fmt.Sprintf("soak: %d connections (%.0f/s), %d TIME_WAIT sockets (ss), %d ended purged when the namespace went; "+
			"lost %v, evicted %v, peak RSS %d MB, of which tcptrace's own memory (RssAnon) %d MB (%.0f bytes per TIME_WAIT socket) "+
			"and the rest the binary and the ring buffer (mapped twice); exit %v after SIGTERM",
			r.conns, r.connsPerSec, timewaits, purged, stats["lost"], stats["evicted_histories"], peak>>20, own>>20,
			float64(own)/float64(max(timewaits, 1)), exit.Round(time.Millisecond))
		return nil
	})
	if report == "" {
		return fmt.Errorf("soak: %w", err)
	}
	fmt.Println()
	fmt.Println(report)
	return nil
}

// maxTimewaitBuckets is the load namespace's tcp_max_tw_buckets: above
// what any run leaves, so that the kernel keeps every TIME_WAIT socket.
const maxTimewaitBuckets = 4 << 20

// countPurged counts the timewait_end lines with cause purged.
func countPurged(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if bytes.Contains(line, []byte(`"type":"timewait_end"`)) && bytes.Contains(line, []byte(`"cause":"purged"`)) {
			n++
		}
	}
	return n, nil
}

// peakRSS is a process's peak resident memory (VmHWM): its own memory,
// the binary's pages and the ring buffer's, which is mapped twice (its
// pages follow themselves, so that a record can wrap around the end).
func peakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM") }

// sampleOwnMemory keeps in peak the most anonymous memory (RssAnon: the
// heap and stacks, not the mappings) pid holds, until stop.
func sampleOwnMemory(pid int, peak *atomic.Int64, stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if v, err := procStatus(pid, "RssAnon"); err == nil && v > peak.Load() {
				peak.Store(v)
			}
		}
	}
}

// procStatus reads a memory field (in kB) of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
