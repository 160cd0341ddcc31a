package metrics

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// brokenCollector fails every collection, as a scrape that cannot be
// answered would.
type brokenCollector struct{ desc *prometheus.Desc }

func (b brokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }
func (b brokenCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(b.desc, errors.New("cannot read it"))
}

// lockedBuffer is written by the server's goroutines, read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestServeErrors: a scrape that fails is answered with an error, and said
// on the log as one line of tcptrace's; tracing's metrics go on being
// served.
func TestServeErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := New(nil)
	m.registry.MustRegister(brokenCollector{prometheus.NewDesc("tcptrace_broken", "Fails.", nil, nil)})
	var log lockedBuffer
	srv, err := m.Serve(addr, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := m.Serve(addr, &log); err == nil || !strings.Contains(err.Error(), "--metrics "+addr+": cannot listen there") {
		t.Errorf("a second Serve on %s: %v, want it refused", addr, err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if resp.StatusCode != http.StatusInternalServerError || len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "tcptrace: metrics server: error gathering metrics:") || !strings.Contains(lines[0], "cannot read it") {
		t.Errorf("scrape: %s, log %q; want 500 and one line of tcptrace's naming the error", resp.Status, log.String())
	}
}
