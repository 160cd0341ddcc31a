package otlp

import (
	"maps"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/render"
)

// Event names of the log records (OTLP's event_name).
const (
	EventFinding = "tcptrace.finding"
	EventSummary = "tcptrace.summary"
)

// informational are the finding kinds that explain the kernel doing what
// it is meant to, no connection harmed: INFO. Every other kind (an RST
// that killed a TIME_WAIT socket, a timeout abort, an abortive close, a
// full TIME_WAIT table...) is a WARN.
var informational = map[events.FindingKind]bool{
	events.FindingTimewaitSynReuse:       true,
	events.FindingTimewaitConnectReuse:   true,
	events.FindingTimewaitRFC1337Kept:    true,
	events.FindingZeroWindowNotKeepalive: true,
}

// findingRecord fills r from a finding: its words as the body (a repeat's
// one line naming the finding told in full where it has none).
func findingRecord(r *log.Record, f *events.Finding, body []byte, attrs []attribute.KeyValue) ([]byte, []attribute.KeyValue) {
	r.SetEventName(EventFinding)
	r.SetTimestamp(f.Time)
	if informational[f.Kind] {
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
	} else {
		r.SetSeverity(log.SeverityWarn)
		r.SetSeverityText("WARN")
	}
	if f.Message != "" {
		r.SetBody(attribute.StringValue(f.Message))
	} else {
		body = render.AppendDetail(body, f)
		r.SetBody(attribute.StringValue(string(body)))
	}
	attrs = socketAttrs(attrs, &f.Header)
	attrs = append(attrs, attribute.String("tcptrace.finding.kind", string(f.Kind)), attribute.Int64("tcptrace.finding.id", int64(f.ID)))
	if f.See != 0 {
		attrs = append(attrs, attribute.Int64("tcptrace.finding.see", int64(f.See)), attribute.Int64("tcptrace.finding.count", int64(f.Count)))
	}
	if f.Evidence != nil {
		attrs = append(attrs, attribute.Map("tcptrace.finding.evidence", mapValue(f.Evidence)...))
	}
	if f.Sysctls != nil {
		attrs = append(attrs, attribute.Map("tcptrace.finding.sysctls", mapValue(f.Sysctls)...))
	}
	r.AddAttributes(attrs...)
	return body, attrs
}

// summaryRecord fills r from a socket's summary, its text line as the body.
func summaryRecord(r *log.Record, s *events.Summary, body []byte, attrs []attribute.KeyValue) ([]byte, []attribute.KeyValue) {
	r.SetEventName(EventSummary)
	r.SetTimestamp(s.Time)
	r.SetSeverity(log.SeverityInfo)
	r.SetSeverityText("INFO")
	body = render.AppendDetail(body, s)
	r.SetBody(attribute.StringValue(string(body)))
	attrs = socketAttrs(attrs, &s.Header)
	attrs = append(attrs, attribute.String("tcptrace.summary.end", string(s.End)))
	if s.ClosedBy != "" {
		attrs = append(attrs, attribute.String("tcptrace.summary.closed_by", string(s.ClosedBy)))
	}
	if s.Close.Shape != "" {
		attrs = append(attrs, attribute.String("tcptrace.summary.close.shape", string(s.Close.Shape)))
	}
	attrs = append(attrs, attribute.Int("tcptrace.summary.retransmits", s.Retransmits),
		attribute.Int("tcptrace.summary.resets_sent", s.ResetsSent), attribute.Int("tcptrace.summary.resets_received", s.ResetsReceived))
	if s.LifetimeKnown {
		attrs = append(attrs, attribute.Float64("tcptrace.summary.lifetime_ms", float64(s.Lifetime.Microseconds())/1000))
	}
	if s.CountersKnown {
		attrs = append(attrs, attribute.Int64("tcptrace.summary.counters.bytes_acked", int64(s.Counters.BytesAcked)),
			attribute.Int64("tcptrace.summary.counters.bytes_received", int64(s.Counters.BytesReceived)))
	}
	if s.BeforeTrace {
		attrs = append(attrs, attribute.Bool("tcptrace.summary.started_before_trace", true))
	}
	if s.Incomplete {
		attrs = append(attrs, attribute.Bool("tcptrace.summary.incomplete", true))
	}
	r.AddAttributes(attrs...)
	return body, attrs
}

// socketAttrs appends the socket's and its owner's attributes, by the
// semantic conventions where they name them.
func socketAttrs(attrs []attribute.KeyValue, h *events.Header) []attribute.KeyValue {
	attrs = append(attrs, semconv.NetworkTransportTCP)
	switch h.Family {
	case 4:
		attrs = append(attrs, semconv.NetworkTypeIPv4)
	case 6:
		attrs = append(attrs, semconv.NetworkTypeIPv6)
	}
	if h.Local.IsValid() {
		attrs = append(attrs, semconv.NetworkLocalAddress(h.Local.Addr().String()), semconv.NetworkLocalPort(int(h.Local.Port())))
	}
	if h.Remote.IsValid() {
		attrs = append(attrs, semconv.NetworkPeerAddress(h.Remote.Addr().String()), semconv.NetworkPeerPort(int(h.Remote.Port())))
	}
	attrs = append(attrs, attribute.Int64("tcptrace.cookie", int64(h.Cookie)), attribute.Int64("tcptrace.netns", int64(h.Netns)))
	if h.Owner.PID != 0 {
		attrs = append(attrs, semconv.ProcessPID(int(h.Owner.PID)))
	}
	if h.Owner.Comm != "" {
		attrs = append(attrs, semconv.ProcessExecutableName(h.Owner.Comm))
	}
	cg := h.Owner.Cgroup
	if cg == nil {
		return attrs
	}
	for _, a := range []struct {
		value string
		kv    func(string) attribute.KeyValue
	}{
		{cg.Path, func(v string) attribute.KeyValue { return attribute.String("tcptrace.cgroup", v) }},
		{cg.ContainerID, semconv.ContainerID},
		{cg.Runtime, semconv.ContainerRuntimeName},
		{cg.PodUID, semconv.K8SPodUID},
		{cg.Pod, semconv.K8SPodName},
		{cg.PodNamespace, semconv.K8SNamespaceName},
	} {
		if a.value != "" {
			attrs = append(attrs, a.kv(a.value))
		}
	}
	return attrs
}

// mapValue turns a finding's evidence or sysctls (the JSON's values) into
// a map attribute's entries, sorted by key as the JSON has them.
func mapValue(m map[string]any) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: value(m[k])})
	}
	return kvs
}

func value(v any) attribute.Value {
	switch v := v.(type) {
	case string:
		return attribute.StringValue(v)
	case bool:
		return attribute.BoolValue(v)
	case int:
		return attribute.IntValue(v)
	case int64:
		return attribute.Int64Value(v)
	case uint32:
		return attribute.Int64Value(int64(v))
	case uint64:
		return attribute.Int64Value(int64(v))
	case float64:
		return attribute.Float64Value(v)
	case []float64:
		vs := make([]attribute.Value, len(v))
		for i, f := range v {
			vs[i] = attribute.Float64Value(f)
		}
		return attribute.SliceValue(vs...)
	case map[string]any:
		return attribute.MapValue(mapValue(v)...)
	}
	return attribute.Value{} // nil: a sysctl this kernel does not have
}
