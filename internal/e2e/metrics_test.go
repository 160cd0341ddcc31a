package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetrics: --metrics serves what the events say while tracing: the
// TIME_WAIT sockets of a burst of client-first closes counted as they
// began (as many as the kernel's TcpExt.TW moved, and as timewait_enter
// events), alive by substate, and every state change by old and new
// state, all labelled by the scenario's namespace.
func TestMetrics(t *testing.T) {
	const conns = 50
	ns := newNetns(t)
	addr := freeAddr(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--metrics", addr)
	before := ns.counters(t)
	ns.startActor(t).do(fmt.Sprintf("timewaits %d", conns))
	after := ns.counters(t)
	tw := after["TcpExt.TW"] - before["TcpExt.TW"]
	if tw != conns {
		t.Errorf("TcpExt.TW delta %d, want %d", tw, conns)
	}
	netns := fmt.Sprintf(`netns="%d"`, ns.inode)
	// The last server sockets close after the clients' TIME_WAIT began:
	// scrape until two scrapes a poll apart agree.
	var m exposition
	for deadline := time.Now().Add(10 * time.Second); ; {
		m = scrape(t, addr)
		settle()
		if m.sum("tcptrace_timewait_enters_total", netns) == float64(tw) && m.equal(scrape(t, addr)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics did not settle on %d TIME_WAIT enters:\n%s", tw, m.text)
		}
	}
	evs := tr.stop()

	if n := len(ofType(evs, "timewait_enter")); m.sum("tcptrace_timewait_enters_total", netns, `substate="TIME_WAIT"`) != float64(n) {
		t.Errorf("tcptrace_timewait_enters_total %v, want the %d timewait_enter events", m.sum("tcptrace_timewait_enters_total", netns), n)
	}
	if got := m.sum("tcptrace_timewait_sockets", netns, `substate="TIME_WAIT"`); got != conns {
		t.Errorf("tcptrace_timewait_sockets{substate=TIME_WAIT} %v, want %d", got, conns)
	}
	changes := map[[2]string]int{}
	for _, e := range ofType(evs, "state") {
		changes[[2]string{e.OldState, e.NewState}]++
	}
	for change, n := range changes {
		labels := []string{netns, `old_state="` + change[0] + `"`, `new_state="` + change[1] + `"`}
		if got := m.sum("tcptrace_state_changes_total", labels...); got != float64(n) {
			t.Errorf("tcptrace_state_changes_total %s->%s: %v, want %d state events", change[0], change[1], got, n)
		}
	}
	if got, want := m.sum("tcptrace_state_changes_total"), float64(len(ofType(evs, "state"))); got != want {
		t.Errorf("tcptrace_state_changes_total in all: %v, want %v", got, want)
	}
	if m.sum("tcptrace_events_lost_total") != 0 {
		t.Errorf("tcptrace_events_lost_total %v", m.sum("tcptrace_events_lost_total"))
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(m.text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

// TestMetricsAddressTaken: an address tcptrace cannot listen on stops it
// before it traces, in one sentence.
func TestMetricsAddressTaken(t *testing.T) {
	requireTracing(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := exec.Command(tracerBinary, "--metrics", l.Addr().String(), "--duration", "1s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--metrics "+l.Addr().String()+": cannot listen there") {
		t.Errorf("tcptrace --metrics on a port taken: %v\n%s", err, out)
	}
}

// freeAddr returns a local address no one listens on now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// exposition is one scrape of /metrics, in the text format.
type exposition struct{ text string }

func scrape(t *testing.T, addr string) exposition {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s\n%s", err, resp.Status, body)
	}
	return exposition{string(body)}
}

// sum adds the values of the series of metric name that have every label
// given (as `name="value"`).
func (m exposition) sum(name string, labels ...string) float64 {
	var total float64
	for line := range strings.SplitSeq(m.text, "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name || !containsAll(labelSet, labels) {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			total += v
		}
	}
	return total
}

// equal tells whether two scrapes agree on every tcptrace series.
func (m exposition) equal(o exposition) bool {
	ours := func(text string) string {
		var b strings.Builder
		for line := range strings.SplitSeq(text, "\n") {
			if strings.HasPrefix(line, "tcptrace_") && !strings.HasPrefix(line, "tcptrace_output_queue_bytes") {
				b.WriteString(line + "\n")
			}
		}
		return b.String()
	}
	return ours(m.text) == ours(o.text)
}

func containsAll(labelSet string, labels []string) bool {
	for _, l := range labels {
		if !strings.Contains(labelSet, l) {
			return false
		}
	}
	return true
}
