// Command bench measures what tracing costs a loopback connection-churn load:
// runs of the same load untraced and traced by tcptrace, interleaved, each in
// a fresh network namespace, with the traced/untraced throughput ratio of
// each pair reported as median [min-max]. It also reports the events the
// tracer delivered and lost, its CPU time, and its time from start to ready.
// Run as root: make bench.
package main

import (
	"bufio"
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
	if d := os.Getenv(loadEnv); d != "" {
		os.Exit(runLoad(d))
	}
	tracer := flag.String("tracer", "bin/tcptrace", "tcptrace binary")
	reps := flag.Int("reps", 7, "traced/untraced pairs")
	runFor := flag.Duration("duration", 2*time.Second, "length of each load run")
	compare := flag.String("compare", "", "another tracer command to measure the same way, e.g. tcpstates-bpfcc")
	sink := flag.String("sink", "file", "where tcptrace's output goes: file (JSON lines to a file) or null (text to /dev/null)")
	flag.Parse()
	if *sink != "file" && *sink != "null" {
		fmt.Fprintln(os.Stderr, "bench: -sink is file or null")
		os.Exit(2)
	}
	toNull = *sink == "null"
	if err := bench(*tracer, *compare, *reps, *runFor); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one run of the load.
type result struct {
	connsPerSec float64
	events      int64   // delivered by the tracer
	lost        int64   // reported lost by the tracer
	tracerCPU   float64 // tracer CPU seconds per second of load
	ready       time.Duration
}

func bench(tracer, compare string, reps int, runFor time.Duration) error {
	tracer, err := filepath.Abs(tracer)
	if err != nil {
		return err
	}
	variants := []string{"untraced", "tcptrace"}
	if compare != "" {
		variants = append(variants, compare)
	}
	results := map[string][]result{}
	for rep := range reps {
		for _, v := range variants {
			var r result
			var err error
			switch v {
			case "untraced":
				r, err = runOnce(nil, runFor)
			case "tcptrace":
				format := "json"
				if toNull {
					format = "text"
				}
				r, err = runOnce(func(netns uint64) *exec.Cmd {
					return exec.Command(tracer, "--netns", fmt.Sprint(netns), "-o", format)
				}, runFor)
			default:
				r, err = runOnce(func(uint64) *exec.Cmd { return exec.Command("sh", "-c", v) }, runFor)
			}
			if err != nil {
				return fmt.Errorf("rep %d %s: %w", rep, v, err)
			}
			results[v] = append(results[v], r)
			fmt.Printf("rep %d %-10s %8.0f conn/s  events %8d  lost %6d  tracer cpu %.2f  ready %v\n",
				rep, v, r.connsPerSec, r.events, r.lost, r.tracerCPU, r.ready.Round(time.Millisecond))
		}
	}
	fmt.Println()
	for _, v := range variants[1:] {
		var ratios, evRate, cpu, lost, ready []float64
		for i := range reps {
			ratios = append(ratios, results[v][i].connsPerSec/results["untraced"][i].connsPerSec)
			evRate = append(evRate, float64(results[v][i].events)/runFor.Seconds())
			cpu = append(cpu, results[v][i].tracerCPU)
			lost = append(lost, float64(results[v][i].lost))
			ready = append(ready, float64(results[v][i].ready.Milliseconds()))
		}
		fmt.Printf("%s: throughput ratio traced/untraced %s\n", v, summary(ratios, "%.3f"))
		if v == "tcptrace" {
			fmt.Printf("%s: events/s delivered %s, lost per run %s, tracer CPU %s s/s, start to ready %s ms\n",
				v, summary(evRate, "%.0f"), summary(lost, "%.0f"), summary(cpu, "%.2f"), summary(ready, "%.0f"))
		} else {
			fmt.Printf("%s: tracer CPU %s s/s\n", v, summary(cpu, "%.2f"))
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
func runOnce(tracerCmd func(netns uint64) *exec.Cmd, runFor time.Duration) (result, error) {
	var r result
	name := fmt.Sprintf("tcptrace-bench-%d", os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return r, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return r, fmt.Errorf("lo up: %v: %s", err, out)
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
	load := exec.Command("ip", "netns", "exec", name, self)
	load.Env = append(os.Environ(), loadEnv+"="+runFor.String())
	out, err := load.Output()
	if err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	if r.connsPerSec, err = strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil {
		return r, fmt.Errorf("load said %q", out)
	}

	if tr != nil {
		time.Sleep(50 * time.Millisecond)
		tr.Process.Signal(os.Interrupt)
		if err := tr.Wait(); err != nil {
			return r, fmt.Errorf("tracer: %w", err)
		}
		cpu := tr.ProcessState.UserTime() + tr.ProcessState.SystemTime()
		r.tracerCPU = cpu.Seconds() / runFor.Seconds()
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

// runLoad is the churn load, run inside the namespace: clients connect,
// send a request, read the reply and close first; the server replies and
// closes. About ten state changes per connection. Prints connections/s.
func runLoad(d string) int {
	runFor, err := time.ParseDuration(d)
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
	var done atomic.Int64
	deadline := time.Now().Add(runFor)
	var wg sync.WaitGroup
	const clients = 4
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 64)
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", ln.Addr().String())
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
	start := time.Now()
	wg.Wait()
	fmt.Printf("%.1f\n", float64(done.Load())/time.Since(start).Seconds())
	return 0
}

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
