package otlp

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/metrics"
	"github.com/tcptrace/tcptrace/internal/render"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Endpoint
	}{
		{"http://collector:4318", Endpoint{Protocol: ProtocolHTTP, HostPort: "collector:4318"}},
		{"http://collector", Endpoint{Protocol: ProtocolHTTP, HostPort: "collector:4318"}},
		{"HTTPS://collector/otlp/", Endpoint{Protocol: ProtocolHTTP, HostPort: "collector:4318", Path: "/otlp", TLS: true}},
		{"grpc://[::1]:4317", Endpoint{Protocol: ProtocolGRPC, HostPort: "[::1]:4317"}},
		{"grpcs://collector", Endpoint{Protocol: ProtocolGRPC, HostPort: "collector:4317", TLS: true}},
	} {
		got, err := ParseEndpoint(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "collector:4318", "udp://collector:4317", "http://:4318", "http://u:p@collector:4318",
		"http://collector:4318?x=1", "grpc://collector:4317/v1/logs"} {
		if _, err := ParseEndpoint(bad); err == nil || !strings.HasPrefix(err.Error(), "invalid --otlp ") {
			t.Errorf("ParseEndpoint(%q): %v, want an invalid --otlp error", bad, err)
		}
	}
}

func TestSeverity(t *testing.T) {
	for kind, want := range map[events.FindingKind]string{"timewait_connect_reuse": "INFO", "timewait_syn_reuse": "INFO",
		"timewait_rst_kill": "WARN", "retransmit_timeout": "WARN", "abortive_close": "WARN", "a_kind_not_known_yet": "WARN"} {
		var r logRecordForTest
		r.fill(t, &events.Finding{Kind: kind, Message: "m"})
		if r.SeverityText != want {
			t.Errorf("%s: severity %s, want %s", kind, r.SeverityText, want)
		}
	}
}

// logRecordForTest is a record as the wire has it.
type logRecordForTest struct{ *logspb.LogRecord }

func (r *logRecordForTest) fill(t *testing.T, f *events.Finding) {
	c := newCollector(t, http.StatusOK)
	e := c.exporter(t)
	e.Observe(f)
	e.Close()
	recs := c.logRecords()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r.LogRecord = recs[0]
}

// collector is an OTLP/HTTP receiver keeping the requests it takes.
type collector struct {
	srv     *httptest.Server
	mu      sync.Mutex
	logs    []*collogs.ExportLogsServiceRequest
	metrics []*colmetrics.ExportMetricsServiceRequest
}

func newCollector(t *testing.T, logsStatus int) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch r.URL.Path {
		case "/v1/logs":
			if logsStatus != http.StatusOK {
				w.WriteHeader(logsStatus)
				return
			}
			var req collogs.ExportLogsServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				t.Error(err)
			}
			c.logs = append(c.logs, &req)
		case "/v1/metrics":
			var req colmetrics.ExportMetricsServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				t.Error(err)
			}
			c.metrics = append(c.metrics, &req)
		default:
			t.Errorf("request for %s", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) exporter(t *testing.T) *Exporter {
	return c.exporterWith(t, metrics.New(nil))
}

func (c *collector) exporterWith(t *testing.T, m *metrics.Metrics) *Exporter {
	ep, err := ParseEndpoint(c.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{Endpoint: ep, ServiceVersion: "v9.9.9", Metrics: m.Registry(), Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (c *collector) logRecords() []*logspb.LogRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var recs []*logspb.LogRecord
	for _, req := range c.logs {
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				recs = append(recs, sl.LogRecords...)
			}
		}
	}
	return recs
}

// attrs flattens attributes to strings, maps as key.subkey.
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	var add func(prefix string, kvs []*commonpb.KeyValue)
	add = func(prefix string, kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			switch v := kv.Value.GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				m[prefix+kv.Key] = v.StringValue
			case *commonpb.AnyValue_IntValue:
				m[prefix+kv.Key] = strconv.FormatInt(v.IntValue, 10)
			case *commonpb.AnyValue_BoolValue:
				m[prefix+kv.Key] = strconv.FormatBool(v.BoolValue)
			case *commonpb.AnyValue_KvlistValue:
				add(prefix+kv.Key+".", v.KvlistValue.Values)
			case nil:
				m[prefix+kv.Key] = "<empty>"
			case *commonpb.AnyValue_DoubleValue:
				m[prefix+kv.Key] = "double " + strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
			default:
				m[prefix+kv.Key] = kv.Value.String()
			}
		}
	}
	add("", kvs)
	return m
}

var (
	when   = time.Date(2026, 11, 21, 18, 38, 21, 343312123, time.UTC)
	client = &events.Cgroup{Path: "/kubepods.slice/kubepods-besteffort-pod1234.slice/cri-containerd-abcd.scope", ContainerID: "abcd",
		Runtime: "containerd", PodUID: "1234", Pod: "web-0", PodNamespace: "shop"}
	header = events.Header{Time: when, Cookie: 937514, Family: 4, Netns: 4026531840,
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("127.0.0.1:40000"),
		Owner: events.Owner{PID: 25481, Comm: "python3", CgroupID: 7, Cgroup: client}}
)

// TestExportHTTP: a finding and a summary arrive over OTLP/HTTP as log
// records with the semantic conventions' attributes and tcptrace's, the
// words as body, the event's time, the resource naming the host; other
// events do not; the metrics arrive from the Prometheus registry, by the
// same names and labels.
func TestExportHTTP(t *testing.T) {
	c := newCollector(t, http.StatusOK)
	m := metrics.New(nil)
	e := c.exporterWith(t, m)
	finding := &events.Finding{Header: header, Kind: "timewait_syn_reuse", ID: 1, Message: "The TIME_WAIT socket of ...",
		Evidence: map[string]any{"cause": "syn_accepted", "age_ms": 1700.32, "inferred": true},
		Sysctls:  map[string]any{"net.ipv4.tcp_tw_reuse": int64(2), "net.ipv4.tcp_tw_recycle": nil}}
	repeat := &events.Finding{Header: header, Kind: "timewait_syn_reuse", ID: 2, See: 1, Count: 2, Evidence: map[string]any{"cause": "syn_accepted"}}
	summary := &events.Summary{Header: header, History: []events.Phase{{State: events.StateEstablished, Duration: time.Millisecond, DurationKnown: true}},
		End: "timewait_syn_accepted", ClosedBy: "local", Retransmits: 1, Lifetime: 1500 * time.Microsecond, LifetimeKnown: true}
	for _, ev := range []events.Event{&events.StateChange{Header: header, Old: events.StateSynRecv, New: events.StateEstablished}, finding, repeat, summary} {
		m.Observe(ev)
		e.Observe(ev)
	}
	sent := e.Close()
	if want := (render.OTLPStats{LogRecords: 3, MetricExports: 1}); sent != want {
		t.Errorf("sent %+v, want %+v", sent, want)
	}
	recs := c.logRecords()
	if len(recs) != 3 {
		t.Fatalf("%d log records, want 3", len(recs))
	}
	socket := map[string]string{"network.transport": "tcp", "network.type": "ipv4", "network.local.address": "127.0.0.1", "network.local.port": "8080",
		"network.peer.address": "127.0.0.1", "network.peer.port": "40000", "process.pid": "25481", "process.executable.name": "python3",
		"tcptrace.cookie": "937514", "tcptrace.netns": "4026531840", "tcptrace.cgroup": client.Path, "container.id": "abcd",
		"container.runtime.name": "containerd", "k8s.pod.uid": "1234", "k8s.pod.name": "web-0", "k8s.namespace.name": "shop"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range socket {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for i, want := range []struct {
		event, severity, body string
		attrs                 map[string]string
	}{
		{EventFinding, "INFO", finding.Message, with(map[string]string{"tcptrace.finding.kind": "timewait_syn_reuse", "tcptrace.finding.id": "1",
			"tcptrace.finding.evidence.cause": "syn_accepted", "tcptrace.finding.evidence.age_ms": "double 1700.32", "tcptrace.finding.evidence.inferred": "true",
			"tcptrace.finding.sysctls.net.ipv4.tcp_tw_reuse": "2", "tcptrace.finding.sysctls.net.ipv4.tcp_tw_recycle": "<empty>"})},
		{EventFinding, "INFO", "timewait_syn_reuse (same as finding #1, 2 so far)", with(map[string]string{"tcptrace.finding.kind": "timewait_syn_reuse",
			"tcptrace.finding.id": "2", "tcptrace.finding.see": "1", "tcptrace.finding.count": "2", "tcptrace.finding.evidence.cause": "syn_accepted"})},
		{EventSummary, "INFO", "ESTABLISHED 1 ms [timewait_syn_accepted; closed by local; 1 retransmits; lived 1.5 ms]", with(map[string]string{
			"tcptrace.summary.end": "timewait_syn_accepted", "tcptrace.summary.closed_by": "local", "tcptrace.summary.retransmits": "1",
			"tcptrace.summary.resets_sent": "0", "tcptrace.summary.resets_received": "0", "tcptrace.summary.lifetime_ms": "double 1.5"})},
	} {
		r := recs[i]
		if r.EventName != want.event || r.SeverityText != want.severity || r.Body.GetStringValue() != want.body || r.TimeUnixNano != uint64(when.UnixNano()) {
			t.Errorf("record %d: event %q severity %q body %q time %d, want %q %q %q %d", i, r.EventName, r.SeverityText, r.Body.GetStringValue(), r.TimeUnixNano,
				want.event, want.severity, want.body, when.UnixNano())
		}
		keys := map[string]bool{}
		for _, kv := range r.Attributes {
			if keys[kv.Key] {
				t.Errorf("record %d: %s twice", i, kv.Key)
			}
			keys[kv.Key] = true
		}
		got := attrs(r.Attributes)
		for k, v := range want.attrs {
			if got[k] != v {
				t.Errorf("record %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want.attrs[k]; !ok {
				t.Errorf("record %d: %s = %q, not wanted", i, k, got[k])
			}
		}
	}
	res := attrs(c.logs[0].ResourceLogs[0].Resource.Attributes)
	if res["service.name"] != "tcptrace" || res["service.version"] != "v9.9.9" || res["host.name"] == "" {
		t.Errorf("resource %v, want service.name, service.version and host.name", res)
	}

	var found bool
	for _, req := range c.metrics {
		for _, sm := range req.ResourceMetrics[0].ScopeMetrics {
			for _, mt := range sm.Metrics {
				if mt.Name != "tcptrace_findings_total" {
					continue
				}
				dps := mt.GetSum().GetDataPoints()
				found = len(dps) == 1 && dps[0].GetAsDouble() == 2 && mt.GetSum().IsMonotonic &&
					attrs(dps[0].Attributes)["kind"] == "timewait_syn_reuse" && attrs(dps[0].Attributes)["netns"] == "4026531840"
				if !found {
					t.Errorf("tcptrace_findings_total: %v", mt)
				}
			}
		}
	}
	if !found {
		t.Error("no tcptrace_findings_total of 2 exported")
	}
}

// TestExportRefused: records the collector refuses are counted as not
// delivered, and Close does not wait for a collector that says no.
func TestExportRefused(t *testing.T) {
	c := newCollector(t, http.StatusBadRequest)
	e := c.exporter(t)
	for range 3 {
		e.Observe(&events.Finding{Header: header, Kind: "timewait_rst_kill", Message: "m"})
	}
	start := time.Now()
	if sent := e.Close(); sent.LogRecords != 3 || sent.LogRecordsDropped != 3 {
		t.Errorf("sent %+v, want 3 log records, 3 dropped", sent)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s", d)
	}
}

// TestExportQueueFull: a collector that takes its time never holds up
// Observe; what the queue could not hold is counted as not delivered.
func TestExportQueueFull(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
	}))
	defer srv.Close()
	ep, _ := ParseEndpoint(srv.URL)
	var warnings syncBuffer
	e, err := New(context.Background(), Config{Endpoint: ep, Metrics: metrics.New(nil).Registry(), Stderr: &warnings})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * queueRecords
	start := time.Now()
	for range n {
		e.Observe(&events.Summary{Header: header, End: "closed"})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d Observe calls took %s", n, d)
	}
	// The hand-off, the queue and the batch under way hold what can be
	// delivered.
	close(release)
	sent := e.Close()
	if held := uint64(queueRecords + batchRecords + handoffRecords); sent.LogRecords != n || sent.LogRecordsDropped < n-held || sent.LogRecordsDropped == n {
		t.Errorf("sent %+v, want %d log records, at least %d not delivered, some delivered", sent, n, n-held)
	}
	if !strings.Contains(warnings.String(), "log records dropped: the export cannot keep up") {
		t.Errorf("warnings %q, want one that records were dropped", warnings.String())
	}
}

// syncBuffer is a buffer that goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// grpcCollector takes OTLP over gRPC.
type grpcCollector struct {
	collogs.UnimplementedLogsServiceServer
	mu      sync.Mutex
	records int
	metrics int
}

func (g *grpcCollector) Export(_ context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			g.records += len(sl.LogRecords)
		}
	}
	return &collogs.ExportLogsServiceResponse{}, nil
}

type grpcMetrics struct {
	colmetrics.UnimplementedMetricsServiceServer
	g *grpcCollector
}

func (m grpcMetrics) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			m.g.metrics += len(sm.Metrics)
		}
	}
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

// TestExportGRPC: grpc:// sends the same over OTLP/gRPC.
func TestExportGRPC(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcCollector{}
	srv := grpc.NewServer()
	collogs.RegisterLogsServiceServer(srv, g)
	colmetrics.RegisterMetricsServiceServer(srv, grpcMetrics{g: g})
	go srv.Serve(l)
	defer srv.Stop()
	ep, err := ParseEndpoint("grpc://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(nil)
	e, err := New(context.Background(), Config{Endpoint: ep, Metrics: m.Registry(), Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	f := &events.Finding{Header: header, Kind: "timewait_rst_kill", Message: "m"}
	m.Observe(f)
	e.Observe(f)
	if sent := e.Close(); sent != (render.OTLPStats{LogRecords: 1, MetricExports: 1}) {
		t.Errorf("sent %+v", sent)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.records != 1 || g.metrics == 0 {
		t.Errorf("collector got %d records, %d metrics; want 1 and some", g.records, g.metrics)
	}
}

// TestWarnings: export errors are told, at most one a minute, with the
// count of those left untold.
func TestWarnings(t *testing.T) {
	var out bytes.Buffer
	w := &warner{w: &out, every: time.Minute}
	w.warn(io.ErrUnexpectedEOF)
	w.warn(io.ErrUnexpectedEOF)
	w.warn(io.ErrUnexpectedEOF)
	w.force(io.EOF)
	want := "tcptrace: warning: otlp: unexpected EOF\ntcptrace: warning: otlp: EOF (and 2 more errors since the last warning)\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// BenchmarkObserve is what each summary exported costs: its record made
// and handed off on the pipeline's goroutine, emitted into the SDK, then
// batched, encoded and sent (cpu-ns/op: the process's CPU time, the
// receiver's included; the machine's other work makes ns/op noisy). It
// waits for each batch to be delivered, so that none is dropped.
func BenchmarkObserve(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	ep, _ := ParseEndpoint(srv.URL)
	e, err := New(context.Background(), Config{Endpoint: ep, Metrics: metrics.New(nil).Registry(), Stderr: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	s := &events.Summary{Header: header, History: []events.Phase{{State: events.StateEstablished, Duration: time.Millisecond, DurationKnown: true},
		{State: events.StateTimeWait, Duration: time.Second, DurationKnown: true, Timewait: true}},
		End: "timewait_expired", ClosedBy: "local", Lifetime: 2 * time.Millisecond, LifetimeKnown: true}
	b.ReportAllocs()
	cpu := cpuTime(b)
	for n := uint64(1); b.Loop(); n++ {
		e.Observe(s)
		for n%batchRecords == 0 && e.sent.delivered.Load() < n {
			time.Sleep(100 * time.Microsecond)
		}
	}
	sent := e.Close()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	if sent.LogRecordsDropped > 0 {
		b.Errorf("%d of %d not delivered", sent.LogRecordsDropped, sent.LogRecords)
	}
}

// cpuTime is the CPU time the process has used, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestSDKWarnings: the SDK's warnings (such as the records its queue
// dropped) reach stderr; its information does not.
func TestSDKWarnings(t *testing.T) {
	var out bytes.Buffer
	l := logr.New(warnSink{&warner{w: &out, every: time.Nanosecond}})
	l.V(1).Info("dropped log records", "dropped", 3)
	l.V(4).Info("exporting")
	l.Error(io.EOF, "export failed")
	want := "tcptrace: warning: otlp: dropped log records (dropped 3)\ntcptrace: warning: otlp: export failed: EOF\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestExportUnanswered: a collector that never answers holds tcptrace's
// exit up for exitTimeout, once for logs and metrics together, and what
// it did not take is counted and told.
func TestExportUnanswered(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // connections wait in the backlog, unanswered
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ep, _ := ParseEndpoint("http://" + l.Addr().String())
	var warnings syncBuffer
	e, err := New(context.Background(), Config{Endpoint: ep, Metrics: metrics.New(nil).Registry(), Stderr: &warnings})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(&events.Finding{Header: header, Kind: "timewait_rst_kill", Message: "m"})
	start := time.Now()
	sent := e.Close()
	if d := time.Since(start); d < exitTimeout-time.Second || d > exitTimeout+2*time.Second {
		t.Errorf("Close took %s, want about %s", d, exitTimeout)
	}
	if sent.LogRecords != 1 || sent.LogRecordsDropped != 1 || sent.MetricExports != 1 || sent.MetricExportsFailed != 1 {
		t.Errorf("sent %+v, want 1 log record not delivered, 1 metrics export failed", sent)
	}
	if want := "tcptrace: warning: otlp: at exit: " + ep.String() + " not reached within 5s\n"; !strings.Contains(warnings.String(), want) {
		t.Errorf("warnings %q, want %q", warnings.String(), want)
	}
}

// TestSocketAttrsIPv6: an IPv6 socket is network.type ipv6, its addresses
// as IPv6 writes them; an owner not known leaves out its attributes.
func TestSocketAttrsIPv6(t *testing.T) {
	h := events.Header{Family: 6, Cookie: 5, Netns: 7, Local: netip.MustParseAddrPort("[::1]:443"), Remote: netip.MustParseAddrPort("[::ffff:10.0.0.1]:5000")}
	got := map[string]string{}
	for _, kv := range socketAttrs(nil, &h) {
		got[string(kv.Key)] = kv.Value.String()
	}
	want := map[string]string{"network.transport": "tcp", "network.type": "ipv6", "network.local.address": "::1", "network.local.port": "443",
		"network.peer.address": "::ffff:10.0.0.1", "network.peer.port": "5000", "tcptrace.cookie": "5", "tcptrace.netns": "7"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
