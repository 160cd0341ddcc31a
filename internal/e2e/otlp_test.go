package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/container"
)

// TestOTLP: --otlp delivers to a real OpenTelemetry Collector (its OTLP
// receiver and file exporter, built from the collector's modules in
// otelcol/), over HTTP and over gRPC: a TIME_WAIT reuse's finding as a log
// record with the semantic conventions' attributes, equal to the finding
// and the sockets of the scenario, the actor's pid and container among
// them; every summary; and TIME_WAIT ends by cause as the namespace's
// TcpExt counter moved. Everything arrives though tcptrace is stopped
// right after the scenario: the exporter flushes at exit.
func TestOTLP(t *testing.T) {
	requireTracing(t)
	collectorBinary := otelcolBinary(t)
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			col := startCollector(t, collectorBinary)
			endpoint := "http://" + col.http
			if transport == "grpc" {
				endpoint = "grpc://" + col.grpc
			}
			ns := newNetns(t)
			// The first client runs in a kubelet's containerd container
			// (where the host has cgroup v2; the kernel matrix's guests do
			// not), so that its socket's records name the container. Made
			// before tcptrace starts: it looks for a cgroup it does not
			// know at most once a second.
			ctr := podContainer(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--otlp", endpoint)
			srv := ns.listener(t, "127.0.0.1")
			port := freePort()
			cli := ns.startActor(t)
			ctr.move(t, cli)
			cli.port, _ = strconv.Atoi(cli.do1(fmt.Sprintf("connect-from 127.0.0.1:%d %s", port, addr("127.0.0.1", srv.port))))
			srv.do("accept")
			closeClientFirst(cli, srv)
			before := ns.counters(t)
			ns.clientFrom(t, port, srv) // takes the TIME_WAIT socket over: connect_reuse
			settle()
			after := ns.counters(t)
			evs := tr.stop()
			col.stop(t)

			recycled := after["TcpExt.TWRecycled"] - before["TcpExt.TWRecycled"]
			if recycled != 1 {
				t.Errorf("TcpExt.TWRecycled delta %d, want 1", recycled)
			}
			netns := strconv.FormatUint(ns.inode, 10)
			records := col.logRecords(t, netns)
			f := one(t, evs, "finding")
			// The TIME_WAIT socket taken over is the first client's.
			if f.Kind != "timewait_connect_reuse" || f.PID != cli.pid {
				t.Fatalf("finding %+v, want timewait_connect_reuse of pid %d", f, cli.pid)
			}
			var found int
			for _, r := range records {
				if r.EventName != "tcptrace.finding" {
					continue
				}
				found++
				want := map[string]string{"tcptrace.finding.kind": f.Kind, "tcptrace.finding.id": fmt.Sprint(f.FindingID),
					"tcptrace.cookie": fmt.Sprint(f.Cookie), "tcptrace.netns": netns, "network.transport": "tcp", "network.type": "ipv4",
					"network.local.address": f.Saddr, "network.local.port": fmt.Sprint(f.Sport),
					"network.peer.address": f.Daddr, "network.peer.port": fmt.Sprint(f.Dport),
					"process.pid": fmt.Sprint(f.PID), "process.executable.name": f.Comm,
					"tcptrace.finding.evidence.port_bound_before_connect": "true"}
				for k, v := range want {
					if r.Attrs[k] != v {
						t.Errorf("finding's log record: %s = %q, want %q", k, r.Attrs[k], v)
					}
				}
				if f.Sport != port || f.Saddr != "127.0.0.1" || f.Dport != srv.port {
					t.Errorf("finding of %s:%d -> %s:%d, want the scenario's 127.0.0.1:%d -> :%d", f.Saddr, f.Sport, f.Daddr, f.Dport, port, srv.port)
				}
				if ctr != nil {
					for k, v := range map[string]string{"container.id": ctr.id, "container.runtime.name": "containerd", "k8s.pod.uid": ctr.podUID, "tcptrace.cgroup": ctr.path} {
						if r.Attrs[k] != v {
							t.Errorf("finding's log record: %s = %q, want %q", k, r.Attrs[k], v)
						}
					}
				}
				if r.Body != f.Message || r.SeverityText != "INFO" || r.Time.IsZero() {
					t.Errorf("finding's log record: severity %q, time %v, body %q; want INFO, the finding's time, its message %q", r.SeverityText, r.Time, r.Body, f.Message)
				}
			}
			if found != 1 {
				t.Errorf("%d findings in the collector's file, want 1", found)
			}
			summaries := map[string]bool{}
			for _, r := range records {
				if r.EventName == "tcptrace.summary" {
					summaries[r.Attrs["tcptrace.cookie"]+" "+r.Attrs["network.local.port"]] = true
				}
			}
			jsonSummaries := ofType(evs, "summary")
			for _, s := range jsonSummaries {
				if !summaries[fmt.Sprint(s.Cookie)+" "+fmt.Sprint(s.Sport)] {
					t.Errorf("summary of cookie %d, port %d not in the collector's file", s.Cookie, s.Sport)
				}
			}
			if len(summaries) != len(jsonSummaries) {
				t.Errorf("%d summaries in the collector's file, %d written", len(summaries), len(jsonSummaries))
			}
			if got := col.metric(t, "tcptrace_timewait_ends_total", map[string]string{"netns": netns, "cause": "connect_reuse"}); got != float64(recycled) {
				t.Errorf("tcptrace_timewait_ends_total{cause=connect_reuse} %v, want the TWRecycled delta %d", got, recycled)
			}
			if sent := otlpStats(t, tr); sent.LogRecords != len(records) || sent.Dropped != 0 {
				t.Errorf("stats: %+v, want %d log records (the collector's), none dropped", sent, len(records))
			}
		})
	}
}

// podCgroup is a cgroup named as a kubelet's containerd container.
type podCgroup struct{ id, podUID, path, dir string }

// podContainer makes a cgroup named as a containerd container of a
// kubelet's pod, removed at the test's end; nil without cgroup v2.
func podContainer(t *testing.T) *podCgroup {
	mount, err := container.Mount()
	if err != nil {
		t.Logf("no container attributes checked: %v", err)
		return nil
	}
	c := &podCgroup{id: strings.Repeat("0e1c0a", 10) + "5678", podUID: "7d3e2f1a-4b5c-4d6e-8f90-a1b2c3d4e5f6"}
	base := fmt.Sprintf("/tcptrace-e2e-otlp-%d-%d", os.Getpid(), netnsSeq.Add(1))
	c.path = base + "/kubepods.slice/kubepods-pod" + strings.ReplaceAll(c.podUID, "-", "_") + ".slice/cri-containerd-" + c.id + ".scope"
	c.dir = filepath.Join(mount, c.path)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// After the actors in it are gone: cleanups run last first.
	t.Cleanup(func() {
		for d := c.dir; d != mount && strings.HasPrefix(d, filepath.Join(mount, base)); d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	return c
}

// move puts a into the cgroup (nothing without one).
func (c *podCgroup) move(t *testing.T, a *actor) {
	if c == nil {
		return
	}
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(a.pid)), 0); err != nil {
		t.Fatal(err)
	}
}

// otelcolBinary is the test collector: TCPTRACE_OTELCOL (make test builds
// it, as bin/otelcol), or built here from otelcol/ (the first build takes
// a minute or two; Go's build cache makes the next ones quick).
func otelcolBinary(t *testing.T) string {
	if bin := os.Getenv("TCPTRACE_OTELCOL"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "otelcol")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "otelcol"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test collector (or set TCPTRACE_OTELCOL): %v\n%s", err, out)
	}
	return bin
}

// collector is a running test collector writing what it receives to files.
type collector struct {
	cmd           *exec.Cmd
	http, grpc    string
	logs, metrics string
	stderr        strings.Builder
	waitErr       chan error
}

func startCollector(t *testing.T, bin string) *collector {
	dir := t.TempDir()
	c := &collector{http: freeAddr(t), grpc: freeAddr(t), logs: filepath.Join(dir, "logs.jsonl"), metrics: filepath.Join(dir, "metrics.jsonl")}
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  file/logs:
    path: %s
  file/metrics:
    path: %s
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file/logs]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
`, c.grpc, c.http, c.logs, c.metrics)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "--config", path)
	c.cmd.Stdout, c.cmd.Stderr = &c.stderr, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitErr = make(chan error, 1)
	go func() { c.waitErr <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.waitErr
		}
	})
	for _, a := range []string{c.http, c.grpc} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			conn, err := net.Dial("tcp", a)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the collector does not listen on %s: %v\n%s", a, err, c.stderr.String())
			}
		}
	}
	return c
}

// stop ends the collector as a service manager would: its exporters write
// out what they hold.
func (c *collector) stop(t *testing.T) {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-c.waitErr:
		if err != nil {
			t.Fatalf("collector: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("collector did not stop\n%s", c.stderr.String())
	}
}

// otlpValue is an attribute's value in OTLP's JSON form.
type otlpValue struct {
	StringValue *string  `json:"stringValue"`
	IntValue    *string  `json:"intValue"` // 64-bit integers are strings in OTLP JSON
	BoolValue   *bool    `json:"boolValue"`
	DoubleValue *float64 `json:"doubleValue"`
	KvlistValue *struct {
		Values []otlpKeyValue `json:"values"`
	} `json:"kvlistValue"`
}

type otlpKeyValue struct {
	Key   string    `json:"key"`
	Value otlpValue `json:"value"`
}

// flatten gives attributes as strings, a map's entries as key.entry.
func flatten(into map[string]string, prefix string, kvs []otlpKeyValue) map[string]string {
	for _, kv := range kvs {
		v := kv.Value
		switch {
		case v.StringValue != nil:
			into[prefix+kv.Key] = *v.StringValue
		case v.IntValue != nil:
			into[prefix+kv.Key] = *v.IntValue
		case v.BoolValue != nil:
			into[prefix+kv.Key] = strconv.FormatBool(*v.BoolValue)
		case v.DoubleValue != nil:
			into[prefix+kv.Key] = strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
		case v.KvlistValue != nil:
			flatten(into, prefix+kv.Key+".", v.KvlistValue.Values)
		}
	}
	return into
}

// logRecord is one log record the collector wrote.
type logRecord struct {
	EventName, SeverityText, Body string
	Time                          time.Time
	Attrs                         map[string]string
}

// logRecords reads the collector's log file: the records of one netns.
func (c *collector) logRecords(t *testing.T, netns string) []logRecord {
	var recs []logRecord
	eachLine(t, c.logs, func(line []byte) {
		var req struct {
			ResourceLogs []struct {
				Resource struct {
					Attributes []otlpKeyValue `json:"attributes"`
				} `json:"resource"`
				ScopeLogs []struct {
					LogRecords []struct {
						TimeUnixNano string `json:"timeUnixNano"`
						SeverityText string `json:"severityText"`
						EventName    string `json:"eventName"`
						Body         struct {
							StringValue string `json:"stringValue"`
						} `json:"body"`
						Attributes []otlpKeyValue `json:"attributes"`
					} `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatalf("collector's log file: %v\n%s", err, line)
		}
		for _, rl := range req.ResourceLogs {
			res := flatten(map[string]string{}, "", rl.Resource.Attributes)
			if res["service.name"] != "tcptrace" || res["host.name"] == "" {
				t.Errorf("resource %v, want service.name tcptrace and host.name", res)
			}
			for _, sl := range rl.ScopeLogs {
				for _, r := range sl.LogRecords {
					ns, _ := strconv.ParseInt(r.TimeUnixNano, 10, 64)
					rec := logRecord{EventName: r.EventName, SeverityText: r.SeverityText, Body: r.Body.StringValue,
						Time: time.Unix(0, ns), Attrs: flatten(map[string]string{}, "", r.Attributes)}
					if rec.Attrs["tcptrace.netns"] == netns {
						recs = append(recs, rec)
					}
				}
			}
		}
	})
	return recs
}

// metric is the newest value the collector's metrics file has for the
// series of name with these attributes (a counter's: cumulative).
func (c *collector) metric(t *testing.T, name string, attrs map[string]string) float64 {
	var value float64
	var newest int64
	eachLine(t, c.metrics, func(line []byte) {
		var req struct {
			ResourceMetrics []struct {
				ScopeMetrics []struct {
					Metrics []struct {
						Name string `json:"name"`
						Sum  struct {
							DataPoints []struct {
								Attributes   []otlpKeyValue `json:"attributes"`
								TimeUnixNano string         `json:"timeUnixNano"`
								AsDouble     float64        `json:"asDouble"`
							} `json:"dataPoints"`
						} `json:"sum"`
					} `json:"metrics"`
				} `json:"scopeMetrics"`
			} `json:"resourceMetrics"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatalf("collector's metrics file: %v\n%s", err, line)
		}
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != name {
						continue
					}
				points:
					for _, dp := range m.Sum.DataPoints {
						got := flatten(map[string]string{}, "", dp.Attributes)
						for k, v := range attrs {
							if got[k] != v {
								continue points
							}
						}
						if at, _ := strconv.ParseInt(dp.TimeUnixNano, 10, 64); at >= newest {
							newest, value = at, dp.AsDouble
						}
					}
				}
			}
		}
	})
	if newest == 0 {
		t.Errorf("no %s%v in the collector's metrics file", name, attrs)
	}
	return value
}

func eachLine(t *testing.T, path string, do func([]byte)) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 64<<20)
	for s.Scan() {
		do(s.Bytes())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

// otlpSent is the closing stats' account of the export.
type otlpSent struct {
	LogRecords int `json:"log_records"`
	Dropped    int `json:"log_records_dropped"`
}

func otlpStats(t *testing.T, tr *tracer) otlpSent {
	out := strings.TrimSpace(tr.stdout.String())
	var stats struct {
		OTLP *otlpSent `json:"otlp"`
	}
	if err := json.Unmarshal([]byte(out[strings.LastIndexByte(out, '\n')+1:]), &stats); err != nil || stats.OTLP == nil {
		t.Fatalf("no otlp in the closing stats (%v)", err)
	}
	return *stats.OTLP
}
