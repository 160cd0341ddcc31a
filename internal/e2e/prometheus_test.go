package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestPrometheus: a real Prometheus server scrapes tcptrace -o none
// --metrics during a TIME_WAIT scenario (a burst of client-first closes, a
// client that takes its own TIME_WAIT over, the namespace deleted with the
// rest) and a keepalive one, and its query API then gives TIME_WAIT ends by
// cause and keepalive probes equal to the namespace's kernel counters:
// TcpExt.TW in all, TcpExt.TWRecycled taken over by connect(), and
// TcpExt.TCPKeepAlive.
func TestPrometheus(t *testing.T) {
	requireTracing(t)
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("prometheus is not installed (scripts/install-deps.sh installs it)")
		}
		t.Skip("prometheus is not installed (scripts/install-deps.sh installs it)")
	}
	// Under qemu's software emulation (the kernel matrix) everything runs
	// 10-30 times slower: the waits are for a real machine.
	slow := time.Duration(1)
	if os.Getenv("TCPTRACE_GUEST_KERNEL") != "" {
		slow = 20
	}
	ns := newNetns(t)
	metricsAddr := freeAddr(t)
	d := startDaemon(t, "--netns", fmt.Sprint(ns.inode), "--metrics", metricsAddr)
	prom := startPrometheus(t, bin, metricsAddr, 30*time.Second*slow)

	before := ns.counters(t)
	keepSrv, keepCli := ns.connected(t, "127.0.0.1")
	keepCli.do("keepalive 1 1 3")
	burst := ns.startActor(t)
	burst.do("timewaits 20")
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	cli := ns.clientFrom(t, port, srv)
	closeClientFirst(cli, srv)
	again := ns.clientFrom(t, port, srv) // takes the TIME_WAIT over
	time.Sleep(2500 * time.Millisecond)  // keepalive probes a second apart, answered
	// Every process gone, the last sockets closed: the counters stay.
	for _, a := range []*actor{keepSrv, keepCli, burst, srv, cli, again} {
		a.exit()
	}
	settle()
	after := ns.counters(t)
	// The TIME_WAIT sockets left end purged with their namespace.
	mustRun(t, "ip", "netns", "del", ns.name)
	time.Sleep(3 * time.Second) // the kernel tears the namespace down in a worker (as TestTimewaitPurge waits)

	// What tcptrace serves has settled; then wait for a scrape of it.
	for deadline := time.Now().Add(10 * time.Second * slow); ; settle() {
		if m := scrape(t, metricsAddr); m.equal(scrape(t, metricsAddr)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tcptrace's metrics did not settle")
		}
	}
	settled := time.Now()
	for deadline := settled.Add(15 * time.Second * slow); ; time.Sleep(250 * time.Millisecond) {
		if last := prom.query(t, `timestamp(up{job="tcptrace"} == 1)`); len(last) == 1 && last[0].value(t) > float64(settled.UnixMilli())/1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scraped tcptrace at %s no more after the scenario; its log:\n%s", metricsAddr, prom.log.String())
		}
	}
	netns := fmt.Sprintf(`netns="%d"`, ns.inode)
	ends := map[string]float64{}
	var allEnds float64
	for _, s := range prom.query(t, `sum by (cause) (tcptrace_timewait_ends_total{`+netns+`})`) {
		ends[s.Metric["cause"]] = s.value(t)
		allEnds += s.value(t)
	}
	t.Logf("TIME_WAIT ends by cause, from Prometheus: %v; kernel: TW %d, TWRecycled %d", ends,
		after["TcpExt.TW"]-before["TcpExt.TW"], after["TcpExt.TWRecycled"]-before["TcpExt.TWRecycled"])
	if tw := after["TcpExt.TW"] - before["TcpExt.TW"]; allEnds != float64(tw) || tw < 22 {
		t.Errorf("TIME_WAIT ends in all %v, want TcpExt.TW's delta %d (at least the burst's 20 and the reused and the reusing client)", allEnds, tw)
	}
	if recycled := after["TcpExt.TWRecycled"] - before["TcpExt.TWRecycled"]; ends["connect_reuse"] != float64(recycled) || recycled < 1 {
		t.Errorf("TIME_WAIT ends connect_reuse %v, want TcpExt.TWRecycled's delta %d (at least 1)", ends["connect_reuse"], recycled)
	}
	if ends["purged"] == 0 {
		t.Errorf("no TIME_WAIT end purged, yet the namespace went with its TIME_WAIT sockets: %v", ends)
	}
	var probes float64
	for _, s := range prom.query(t, `sum(tcptrace_keepalive_probes_total{`+netns+`})`) {
		probes = s.value(t)
	}
	t.Logf("keepalive probes, from Prometheus: %v; kernel: TCPKeepAlive %d", probes, after["TcpExt.TCPKeepAlive"]-before["TcpExt.TCPKeepAlive"])
	if keepalive := after["TcpExt.TCPKeepAlive"] - before["TcpExt.TCPKeepAlive"]; probes != float64(keepalive) || keepalive < 1 {
		t.Errorf("keepalive probes %v, want TcpExt.TCPKeepAlive's delta %d (at least 1)", probes, keepalive)
	}
	d.stop(t, syscall.SIGTERM)
}

// prometheusServer is a Prometheus server the test started.
type prometheusServer struct {
	addr string
	log  bytes.Buffer
}

// startPrometheus runs Prometheus on a free local port, scraping target
// every second, its data in a temporary directory, waits up to readyIn for
// it to be ready, and stops it when the test ends.
func startPrometheus(t *testing.T, bin, target string, readyIn time.Duration) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tcptrace
    static_configs:
      - targets: [%q]
`, target), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheusServer{addr: freeAddr(t)}
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(readyIn); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + p.addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus not ready after %v:\n%s", readyIn, p.log.String())
		}
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

func (s promSample) value(t *testing.T) float64 {
	t.Helper()
	text, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		t.Fatalf("sample %+v: %v", s, err)
	}
	return v
}

// query asks Prometheus's HTTP API for an instant vector.
func (p *prometheusServer) query(t *testing.T, promql string) []promSample {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(promql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Status != "success" || answer.Data.ResultType != "vector" {
		t.Fatalf("query %s: %v %s: %s", promql, err, answer.Error, body)
	}
	return answer.Data.Result
}
