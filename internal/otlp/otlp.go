// Package otlp exports to an OpenTelemetry collector over OTLP: findings
// and socket summaries as log records, and the Prometheus metrics of
// internal/metrics as OTLP metrics, read from the same registry (one list
// of metric definitions, two ways out).
//
// Nothing here blocks the pipeline, and little runs on its goroutine: it
// makes each record and hands it to a goroutine of the exporter's, which
// emits it into the SDK (the costlier half: a copy of every attribute).
// Records then wait in the SDK's batch processor, a bounded queue that
// drops the oldest when full, and are sent from its goroutine; metrics are
// gathered and sent from the periodic reader's. What was not delivered is
// counted for the closing stats.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render"
)

// Config is one export.
type Config struct {
	Endpoint       Endpoint
	ServiceVersion string
	// Metrics is the registry whose metrics are exported (internal/metrics').
	Metrics prometheus.Gatherer
	// Stderr takes the warnings: export errors, at most one a minute.
	Stderr io.Writer
}

// Queue bounds. A busy server makes thousands of summaries a second: the
// queue holds a few seconds of them while the collector is slow, and large
// batches (a summary's record is some hundreds of bytes on the wire, well
// within the 4 MiB a collector's receivers take by default) keep the
// requests few.
const (
	queueRecords = 16384
	batchRecords = 2048
	// handoffRecords bounds the records made but not yet emitted into the
	// SDK: a burst the emitter has not caught up with yet.
	handoffRecords = 4096
	// exitTimeout bounds the flush at exit, a collector that cannot be
	// reached included.
	exitTimeout = 5 * time.Second
)

// Exporter sends what the pipeline writes. Observe is for the pipeline's
// goroutine; Close for when it is done.
type Exporter struct {
	logger   log.Logger
	logs     *sdklog.LoggerProvider
	meters   *sdkmetric.MeterProvider
	sent     countingLogs
	exports  countingMetrics
	made     uint64               // records Observe made
	records  chan log.Record      // from Observe to emit
	emitDone chan struct{}        // closed once emit has emitted the last record
	attrs    []attribute.KeyValue // reused for each record: the SDK copies them
	body     []byte
	closed   sync.Once
	account  render.OTLPStats
	warnings *warner
	endpoint Endpoint
}

// New starts an export. It connects lazily: a collector that is not up yet
// loses nothing until the queue is full.
func New(ctx context.Context, cfg Config) (*Exporter, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("tcptrace"), semconv.ServiceVersion(cfg.ServiceVersion)),
		resource.WithHost(),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES: k8s.node.name and the like, from a DaemonSet
	)
	if err != nil {
		return nil, fmt.Errorf("otlp: resource: %w", err)
	}
	logExp, metricExp, err := exporters(ctx, cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	w := &warner{w: cfg.Stderr, every: time.Minute}
	// The SDK reports export errors to the global handler, and its
	// warnings (records its queue dropped among them) to the global
	// logger; tcptrace's are the only exports in this process.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { w.warn(err) }))
	otel.SetLogger(logr.New(warnSink{w}))
	e := &Exporter{warnings: w, endpoint: cfg.Endpoint, records: make(chan log.Record, handoffRecords), emitDone: make(chan struct{})}
	e.sent.Exporter = logExp
	e.exports.Exporter = metricExp
	// Each record's keys are distinct as made (records.go): the SDK's check
	// for duplicates, a map per record, would cost more than the rest of it.
	e.logs = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithAllowKeyDuplication(), sdklog.WithProcessor(
		sdklog.NewBatchProcessor(&e.sent, sdklog.WithMaxQueueSize(queueRecords), sdklog.WithExportMaxBatchSize(batchRecords))))
	e.logger = e.logs.Logger("github.com/tcptrace/tcptrace", log.WithInstrumentationVersion(cfg.ServiceVersion))
	go e.emit()
	// The reader's interval is the SDK's (60 s, OTEL_METRIC_EXPORT_INTERVAL),
	// and it exports once more at exit.
	e.meters = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(
		sdkmetric.NewPeriodicReader(&e.exports, sdkmetric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(cfg.Metrics))))))
	return e, nil
}

func exporters(ctx context.Context, ep Endpoint) (sdklog.Exporter, sdkmetric.Exporter, error) {
	var (
		logExp    sdklog.Exporter
		metricExp sdkmetric.Exporter
		err       error
	)
	switch ep.Protocol {
	case ProtocolHTTP:
		logOpts := []otlploghttp.Option{otlploghttp.WithEndpoint(ep.HostPort), otlploghttp.WithURLPath(ep.Path + "/v1/logs")}
		metricOpts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(ep.HostPort), otlpmetrichttp.WithURLPath(ep.Path + "/v1/metrics")}
		if !ep.TLS {
			logOpts, metricOpts = append(logOpts, otlploghttp.WithInsecure()), append(metricOpts, otlpmetrichttp.WithInsecure())
		}
		if logExp, err = otlploghttp.New(ctx, logOpts...); err == nil {
			metricExp, err = otlpmetrichttp.New(ctx, metricOpts...)
		}
	case ProtocolGRPC:
		logOpts := []otlploggrpc.Option{otlploggrpc.WithEndpoint(ep.HostPort)}
		metricOpts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(ep.HostPort)}
		if !ep.TLS {
			logOpts, metricOpts = append(logOpts, otlploggrpc.WithInsecure()), append(metricOpts, otlpmetricgrpc.WithInsecure())
		}
		if logExp, err = otlploggrpc.New(ctx, logOpts...); err == nil {
			metricExp, err = otlpmetricgrpc.New(ctx, metricOpts...)
		}
	default:
		return nil, nil, fmt.Errorf("otlp: unknown protocol %q", ep.Protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("otlp %s: %w", ep, err)
	}
	return logExp, metricExp, nil
}

// Observe exports an event written, if it is a finding or a summary. Never
// blocks: a record the emitter has no room for is dropped (and counted as
// not delivered). Not after Close.
func (e *Exporter) Observe(ev events.Event) {
	var r log.Record
	switch ev := ev.(type) {
	case *events.Finding:
		e.body, e.attrs = findingRecord(&r, ev, e.body[:0], e.attrs[:0])
	case *events.Summary:
		e.body, e.attrs = summaryRecord(&r, ev, e.body[:0], e.attrs[:0])
	default:
		return
	}
	r.SetObservedTimestamp(time.Now())
	e.made++
	select {
	case e.records <- r: // its attributes are its own: the record copied them
	default:
		e.warnings.warn(errBehind)
	}
}

var errBehind = errors.New("log records dropped: the export cannot keep up (the closing stats count them)")

// emit hands the records to the SDK, whose batch processor only queues.
func (e *Exporter) emit() {
	defer close(e.emitDone)
	for r := range e.records {
		e.logger.Emit(context.Background(), r)
	}
}

// Close sends what is queued and the metrics once more, and stops. It
// returns what was sent, for the closing stats (the same on every call). A
// failed metrics export is made up for by the next, which sends every
// metric again: but for the last one, at exit.
func (e *Exporter) Close() render.OTLPStats {
	e.closed.Do(func() {
		close(e.records)
		<-e.emitDone
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		// At once, so that a collector not reached costs the wait once.
		metricsDone := make(chan error, 1)
		go func() { metricsDone <- e.meters.Shutdown(ctx) }()
		for _, err := range []error{e.logs.Shutdown(ctx), <-metricsDone} {
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				e.warnings.force(fmt.Errorf("at exit: %s not reached within %s", e.endpoint, exitTimeout))
			case err != nil:
				e.warnings.force(fmt.Errorf("at exit: %w", err))
			}
		}
		e.account = render.OTLPStats{
			LogRecords:          e.made,
			LogRecordsDropped:   e.made - min(e.made, e.sent.delivered.Load()),
			MetricExports:       e.exports.tried.Load(),
			MetricExportsFailed: e.exports.failed.Load(),
		}
		if e.account.LogRecordsDropped > 0 {
			fmt.Fprintf(e.warnings.w, "tcptrace: warning: otlp: %d of %d log records not delivered\n", e.account.LogRecordsDropped, e.account.LogRecords)
		}
	})
	return e.account
}

// countingLogs counts the log records the collector took.
type countingLogs struct {
	sdklog.Exporter
	delivered atomic.Uint64
}

func (c *countingLogs) Export(ctx context.Context, records []sdklog.Record) error {
	err := c.Exporter.Export(ctx, records)
	if err == nil {
		c.delivered.Add(uint64(len(records)))
	}
	return err
}

// countingMetrics counts the exports of the metrics, and those that failed.
type countingMetrics struct {
	sdkmetric.Exporter
	tried, failed atomic.Uint64
}

func (c *countingMetrics) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	c.tried.Add(1)
	err := c.Exporter.Export(ctx, rm)
	if err != nil {
		c.failed.Add(1)
	}
	return err
}

// warnSink passes the SDK's warnings and errors to the warner; its
// information and debugging messages go nowhere.
type warnSink struct{ w *warner }

func (warnSink) Init(logr.RuntimeInfo)  {}
func (warnSink) Enabled(level int) bool { return level <= 1 } // global.Warn logs at V(1)
func (s warnSink) Info(_ int, msg string, kv ...any) {
	s.w.warn(fmt.Errorf("%s%s", msg, pairs(kv)))
}
func (s warnSink) Error(err error, msg string, kv ...any) {
	s.w.warn(fmt.Errorf("%s%s: %w", msg, pairs(kv), err))
}
func (s warnSink) WithValues(...any) logr.LogSink { return s }
func (s warnSink) WithName(string) logr.LogSink   { return s }

// pairs writes a log message's keys and values as " (k v, k v)".
func pairs(kv []any) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%v %v", kv[i], kv[i+1])
	}
	return " (" + b.String() + ")"
}

// warner writes export errors to stderr, at most one every so often: a
// collector that is down fails every export.
type warner struct {
	w          io.Writer
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (w *warner) warn(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now := time.Now(); !w.last.IsZero() && now.Sub(w.last) < w.every {
		w.suppressed++
		return
	}
	w.write(err)
}

func (w *warner) force(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.write(err)
}

func (w *warner) write(err error) {
	w.last = time.Now()
	more := ""
	if w.suppressed > 0 {
		more = fmt.Sprintf(" (and %d more errors since the last warning)", w.suppressed)
		w.suppressed = 0
	}
	fmt.Fprintf(w.w, "tcptrace: warning: otlp: %v%s\n", err, more)
}
