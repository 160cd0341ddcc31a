// Package render writes events for people (aligned text) and for tools
// (JSON lines). Renderers buffer; the caller flushes at each poll so output
// stays live without a write per event.
package render

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Stats is the end-of-run account: what was delivered and what was lost.
type Stats struct {
	Events      uint64               // events written
	Lost        events.Loss          // records the kernel dropped (ring buffer full)
	Undecodable uint64               // records that failed to decode
	Evicted     uint64               // socket histories dropped to stay within --max-sockets
	QueuePeak   int64                // most record bytes read but not yet written at once (live only)
	Programs    []events.ProgramCost // with --bpf-stats (live only)
	ByType      map[events.Type]uint64
	Duration    time.Duration
	OTLP        *OTLPStats // with --otlp (live only)
}

// OTLPStats is what --otlp sent.
type OTLPStats struct {
	LogRecords uint64 // findings and summaries exported
	// LogRecordsDropped of those were not delivered: the queue was full,
	// or the collector refused them or was not reached before exit.
	LogRecordsDropped   uint64
	MetricExports       uint64
	MetricExportsFailed uint64
}

// Renderer writes events and the closing stats.
type Renderer interface {
	Event(events.Event) error
	Stats(Stats) error
	Flush() error
}

// Format is an output format.
type Format string

const (
	FormatText Format = "text" // for people
	FormatJSON Format = "json" // JSON lines, for tools (docs/json.md)
	// FormatNone writes no events, only the closing stats (as text, to
	// errw): a daemon's, whose events go to metrics or a recording.
	FormatNone Format = "none"
)

// New returns the renderer for a format. Text and none send their closing
// summary to errw so that stdout holds only events.
func New(format Format, w, errw io.Writer) (Renderer, error) {
	switch format {
	case FormatText:
		return &Text{w: bufio.NewWriterSize(w, batchSize), errw: errw, loc: time.Local}, nil
	case FormatJSON:
		return &JSON{w: w, buf: make([]byte, 0, batchSize+64<<10)}, nil
	case FormatNone:
		return None{errw: errw}, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want text, json or none)", format)
}

// batchSize is how much output is held before it is written: one write
// for many events.
const batchSize = 256 << 10

// JSON writes one JSON object per line (docs/json.md). Lines are encoded
// straight into the batch that is written, not copied there.
type JSON struct {
	w   io.Writer
	enc events.JSONEncoder
	buf []byte
}

func (j *JSON) Event(ev events.Event) error {
	j.buf = j.enc.Append(j.buf, ev)
	j.buf = append(j.buf, '\n')
	if len(j.buf) >= batchSize {
		return j.Flush()
	}
	return nil
}

func (j *JSON) Stats(s Stats) error {
	b := append(j.buf, `{"type":"stats","events":`...)
	b = strconv.AppendUint(b, s.Events, 10)
	b = append(b, `,"lost":`...)
	b = strconv.AppendUint(b, s.Lost.Total, 10)
	if len(s.Lost.ByKind) > 0 {
		b = append(b, `,"lost_by_kind":{`...)
		for i, kind := range slices.Sorted(maps.Keys(s.Lost.ByKind)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = events.AppendJSONString(b, kind)
			b = append(b, ':')
			b = strconv.AppendUint(b, s.Lost.ByKind[kind], 10)
		}
		b = append(b, `},"lost_by_cpu":[`...)
		for i, n := range s.Lost.ByCPU {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, n, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"undecodable":`...)
	b = strconv.AppendUint(b, s.Undecodable, 10)
	b = append(b, `,"evicted_histories":`...)
	b = strconv.AppendUint(b, s.Evicted, 10)
	if s.QueuePeak > 0 {
		b = append(b, `,"queue_peak_bytes":`...)
		b = strconv.AppendInt(b, s.QueuePeak, 10)
	}
	if len(s.Programs) > 0 {
		b = append(b, `,"bpf_programs":[`...)
		for i, c := range s.Programs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"program":`...)
			b = events.AppendJSONString(b, c.Program)
			b = append(b, `,"runs":`...)
			b = strconv.AppendUint(b, c.Runs, 10)
			b = append(b, `,"run_time_ns":`...)
			b = strconv.AppendInt(b, c.Time.Nanoseconds(), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if o := s.OTLP; o != nil {
		b = append(b, `,"otlp":{"log_records":`...)
		b = strconv.AppendUint(b, o.LogRecords, 10)
		b = append(b, `,"log_records_dropped":`...)
		b = strconv.AppendUint(b, o.LogRecordsDropped, 10)
		b = append(b, `,"metric_exports":`...)
		b = strconv.AppendUint(b, o.MetricExports, 10)
		b = append(b, `,"metric_exports_failed":`...)
		b = strconv.AppendUint(b, o.MetricExportsFailed, 10)
		b = append(b, '}')
	}
	b = append(b, `,"duration_ms":`...)
	b = events.AppendMillis(b, s.Duration)
	b = append(b, `,"by_type":{`...)
	for i, t := range sortedTypes(s.ByType) {
		if i > 0 {
			b = append(b, ',')
		}
		b = events.AppendJSONString(b, string(t))
		b = append(b, ':')
		b = strconv.AppendUint(b, s.ByType[t], 10)
	}
	b = append(b, "}}\n"...)
	j.buf = b
	return j.Flush()
}

func (j *JSON) Flush() error {
	if len(j.buf) == 0 {
		return nil
	}
	_, err := j.w.Write(j.buf)
	j.buf = j.buf[:0]
	return err
}

func sortedTypes(m map[events.Type]uint64) []events.Type {
	types := make([]events.Type, 0, len(m))
	for t := range m {
		types = append(types, t)
	}
	sort.Slice(types, func(a, b int) bool { return types[a] < types[b] })
	return types
}

// None writes no events, only the closing stats, as text to errw: the
// output of a daemon whose events go to metrics or a recording.
type None struct{ errw io.Writer }

func (None) Event(events.Event) error { return nil }
func (n None) Stats(s Stats) error    { return writeTextStats(n.errw, s) }
func (None) Flush() error             { return nil }
