package events

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is RFC 3339 with all nine digits of the nanoseconds kept.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendJSON appends ev as one JSON object (no newline) to dst; see
// JSONEncoder for the fast way to encode many.
func AppendJSON(dst []byte, ev Event) []byte {
	var enc JSONEncoder
	return enc.Append(dst, ev)
}

// JSONEncoder writes events as JSON objects. It is written by hand rather
// than through encoding/json because it runs once per event on the live
// path; docs/json.md documents every field. Not safe for concurrent use.
type JSONEncoder struct {
	// The formatted time up to the seconds, and the zone, of the last
	// second seen: events come many to a second.
	sec          int64
	secs, zone   []byte
	zoneOffset   int
	haveSecsZone bool
	// headers holds the encoded header fields of recent sockets, by
	// cookie: a socket's events come several to its life, all with the
	// same addresses and owner.
	headers [64]encodedHeader
}

// encodedHeader is a header's fields after the time ("cookie" to
// "cgroup_id", and the cgroup's), as JSON.
type encodedHeader struct {
	h    Header // but for Time
	json []byte
}

// appendHeader appends h's fields after the time.
func (enc *JSONEncoder) appendHeader(dst []byte, h *Header) []byte {
	cached := &enc.headers[h.Cookie%uint64(len(enc.headers))]
	if cached.json != nil && cached.h.Cookie == h.Cookie && cached.h.Family == h.Family && cached.h.Local == h.Local &&
		cached.h.Remote == h.Remote && cached.h.Netns == h.Netns && cached.h.Owner == h.Owner {
		return append(dst, cached.json...)
	}
	start := len(dst)
	dst = append(dst, `,"cookie":`...)
	dst = strconv.AppendUint(dst, h.Cookie, 10)
	dst = append(dst, `,"family":`...)
	dst = strconv.AppendUint(dst, uint64(h.Family), 10)
	dst = appendAddrPort(dst, "saddr", "sport", h.Local)
	dst = appendAddrPort(dst, "daddr", "dport", h.Remote)
	dst = append(dst, `,"netns":`...)
	dst = strconv.AppendUint(dst, uint64(h.Netns), 10)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendUint(dst, uint64(h.Owner.PID), 10)
	dst = append(dst, `,"comm":`...)
	dst = AppendJSONString(dst, h.Owner.Comm)
	dst = append(dst, `,"cgroup_id":`...)
	dst = strconv.AppendUint(dst, h.Owner.CgroupID, 10)
	if cg := h.Owner.Cgroup; cg != nil {
		dst = appendStringField(dst, "cgroup", cg.Path)
		for _, f := range [...]struct{ name, value string }{{"container_id", cg.ContainerID}, {"container_runtime", cg.Runtime},
			{"pod_uid", cg.PodUID}, {"pod", cg.Pod}, {"pod_namespace", cg.PodNamespace}} {
			if f.value != "" {
				dst = appendStringField(dst, f.name, f.value)
			}
		}
	}
	cached.h = *h
	cached.json = append(cached.json[:0], dst[start:]...)
	return dst
}

// AppendFields appends ev's own fields as one JSON object: those after the
// header (type, time, addresses and owner), which a reader holding the
// socket's header already has once.
func (enc *JSONEncoder) AppendFields(dst []byte, ev Event) []byte {
	full := enc.Append(nil, ev)
	if _, ok := ev.(*FindingSummary); ok {
		return append(dst, full...)
	}
	header := enc.appendHeader(nil, ev.Head())
	own := full[bytes.Index(full, header)+len(header):] // ",..." or "}"
	dst = append(dst, '{')
	if own[0] == ',' {
		own = own[1:]
	}
	return append(dst, own...)
}

// appendTime appends t as RFC 3339 with nanoseconds (TimeLayout).
func (enc *JSONEncoder) appendTime(dst []byte, t time.Time) []byte {
	_, offset := t.Zone()
	if sec := t.Unix(); !enc.haveSecsZone || sec != enc.sec || offset != enc.zoneOffset {
		formatted := t.AppendFormat(nil, TimeLayout)
		dot := len("2006-01-02T15:04:05")
		enc.secs = append(enc.secs[:0], formatted[:dot+1]...)
		enc.zone = append(enc.zone[:0], formatted[dot+10:]...)
		enc.sec, enc.zoneOffset, enc.haveSecsZone = sec, offset, true
	}
	dst = append(dst, enc.secs...)
	ns := uint32(t.Nanosecond()) // unsigned: cheaper to divide
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + ns%10)
		ns /= 10
	}
	dst = append(dst, digits[:]...)
	return append(dst, enc.zone...)
}

// Append appends ev as one JSON object (no newline) to dst.
func (enc *JSONEncoder) Append(dst []byte, ev Event) []byte {
	h := ev.Head()
	dst = append(dst, `{"type":"`...)
	dst = append(dst, ev.Type()...)
	dst = append(dst, `","ts":"`...)
	dst = enc.appendTime(dst, h.Time)
	dst = append(dst, '"')
	if s, ok := ev.(*FindingSummary); ok { // a namespace's: no socket fields
		return append(appendFindingSummary(dst, s), '}')
	}
	dst = enc.appendHeader(dst, h)

	switch e := ev.(type) {
	case *StateChange:
		dst = appendStringField(dst, "old_state", string(e.Old))
		dst = appendStringField(dst, "new_state", string(e.New))
		if e.PrevStateKnown {
			dst = append(dst, `,"prev_state_ms":`...)
			dst = AppendMillis(dst, e.PrevState)
		}
		dst = appendSynInfo(dst, "syn_seq", "syn_tsval", e.Syn)
		if e.Options.LingerZero {
			dst = append(dst, `,"so_linger_zero":true`...)
		}
		if e.Options.Linger2Negative {
			dst = append(dst, `,"linger2_negative":true`...)
		}
		if e.HandshakeKnown {
			dst = appendHandshake(dst, &e.Handshake)
		}
	case *Retransmit:
		dst = appendStringField(dst, "state", string(e.State))
	case *ResetSent:
		if !e.NoSocket {
			dst = appendStringField(dst, "state", string(e.State))
		}
		if e.Reason != "" {
			dst = appendStringField(dst, "reason", e.Reason)
		}
		if e.NoSocket {
			dst = append(dst, `,"no_socket":true`...)
		}
	case *ResetReceived:
		dst = appendStringField(dst, "state", string(e.State))
	case *Destroy:
		dst = appendStringField(dst, "state", string(e.State))
		if e.CountersKnown {
			dst = appendCounters(dst, &e.Counters)
		}
	case *Snapshot:
		dst = appendStringField(dst, "state", string(e.State))
		if e.Substate != "" {
			dst = appendStringField(dst, "substate", string(e.Substate))
		}
		if e.RemainingKnown {
			dst = append(dst, `,"remaining_ms":`...)
			dst = AppendMillis(dst, e.Remaining)
		}
	case *TimewaitTimer:
		dst = appendStringField(dst, "substate", string(e.Substate))
		if e.TimeoutKnown {
			dst = append(dst, `,"timeout_ms":`...)
			dst = AppendMillis(dst, e.Timeout)
		}
		dst = appendSynInfo(dst, "rcv_nxt", "ts_recent", e.Last)
	case *TimewaitRST:
		dst = appendStringField(dst, "substate", string(e.Substate))
	case *TimewaitSegment:
		dst = appendStringField(dst, "substate", string(e.Substate))
		dst = appendStringField(dst, "verdict", e.Verdict)
		dst = appendStringField(dst, "flags", FlagNames(e.Flags))
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, uint64(e.Seq), 10)
		dst = append(dst, `,"rcv_nxt":`...)
		dst = strconv.AppendUint(dst, uint64(e.RcvNxt), 10)
		dst = append(dst, `,"seq_after_rcv_nxt":`...)
		dst = strconv.AppendBool(dst, int32(e.Seq-e.RcvNxt) > 0)
	case *Segment:
		dst = appendStringField(dst, "state", string(e.State))
		dst = appendStringField(dst, "flags", FlagNames(e.Flags))
		for _, f := range []struct {
			key   string
			value uint32
		}{{"seq", e.Seq}, {"ack", e.Ack}, {"window", uint32(e.Window)}, {"len", uint32(e.Len)}, {"rcv_nxt", e.RcvNxt}} {
			dst = append(dst, `,"`...)
			dst = append(dst, f.key...)
			dst = append(dst, `":`...)
			dst = strconv.AppendUint(dst, uint64(f.value), 10)
		}
		dst = append(dst, `,"out_of_window":`...)
		dst = strconv.AppendBool(dst, e.OutOfWindow)
		dst = append(dst, `,"data_after_fin":`...)
		dst = strconv.AppendBool(dst, e.DataAfterFIN)
	case *TimewaitEnter:
		dst = appendStringField(dst, "substate", string(e.Substate))
		if e.TimeoutKnown {
			dst = append(dst, `,"timeout_ms":`...)
			dst = AppendMillis(dst, e.Timeout)
		}
	case *TimewaitEnd:
		dst = appendStringField(dst, "substate", string(e.Substate))
		dst = appendStringField(dst, "cause", string(e.Cause))
		if e.AgeKnown {
			dst = append(dst, `,"age_ms":`...)
			dst = AppendMillis(dst, e.Age)
		}
		if e.HistoryDropped {
			dst = append(dst, `,"history_dropped":true`...)
		}
		if e.Incomplete {
			dst = append(dst, `,"incomplete":true`...)
		}
		if e.Inferred {
			dst = append(dst, `,"inferred":true`...)
			dst = appendStringField(dst, "inferred_from", e.InferredFrom)
		}
		if e.Successor != 0 {
			dst = append(dst, `,"successor":`...)
			dst = strconv.AppendUint(dst, e.Successor, 10)
		}
		if after, ok := e.SynSeqAfter(); ok {
			dst = append(dst, `,"syn_seq_after_rcv_nxt":`...)
			dst = strconv.AppendBool(dst, after)
		}
		if newer, ok := e.SynTSNewer(); ok {
			dst = append(dst, `,"syn_ts_newer":`...)
			dst = strconv.AppendBool(dst, newer)
		}
		if e.RSTAnswerReason != "" {
			dst = appendStringField(dst, "rst_reason", e.RSTAnswerReason)
		}
		if e.PeerRST {
			dst = append(dst, `,"peer_rst":true`...)
			if e.PeerRSTReason != "" {
				dst = appendStringField(dst, "peer_rst_reason", e.PeerRSTReason)
			}
		}
	case *TimewaitSubstate:
		dst = appendStringField(dst, "old_substate", string(e.Old))
		dst = appendStringField(dst, "new_substate", string(e.New))
		if e.TimeoutKnown {
			dst = append(dst, `,"timeout_ms":`...)
			dst = AppendMillis(dst, e.Timeout)
		}
		dst = append(dst, `,"time_known":`...)
		dst = strconv.AppendBool(dst, e.TimeKnown)
		if e.TimeKnown {
			dst = append(dst, `,"within_ms":`...)
			dst = AppendMillis(dst, e.Within)
		}
		if e.Inferred {
			dst = appendStringField(dst, "seen_at", e.SeenAt.Format(TimeLayout))
			dst = append(dst, `,"inferred":true`...)
			dst = appendStringField(dst, "inferred_from", e.DerivedFrom)
		}
	case *TimewaitRSTIgnored:
		dst = appendStringField(dst, "substate", string(e.Substate))
		dst = appendStringField(dst, "peer_rst_at", e.PeerRSTAt.Format(TimeLayout))
		if e.PeerRSTReason != "" {
			dst = appendStringField(dst, "peer_rst_reason", e.PeerRSTReason)
		}
		dst = append(dst, `,"peer_no_socket":`...)
		dst = strconv.AppendBool(dst, e.PeerNoSocket)
		dst = append(dst, `,"alive_after_ms":`...)
		dst = AppendMillis(dst, e.AliveFor)
		if e.Ended != "" {
			dst = appendStringField(dst, "ended", string(e.Ended))
		}
		dst = append(dst, `,"inferred":true`...)
	case *TimewaitOverflow:
		dst = appendStringField(dst, "state", string(e.State))
		dst = append(dst, `,"timewait_sockets_seen":`...)
		dst = strconv.AppendInt(dst, int64(e.TimewaitSockets), 10)
		dst = append(dst, `,"inferred":true`...)
		dst = appendStringField(dst, "inferred_from", e.InferredFrom)
	case *TCPTimer:
		dst = appendStringField(dst, "timer", string(e.Kind))
		if e.Pending != "" {
			dst = appendStringField(dst, "pending", string(e.Pending))
		}
		dst = appendStringField(dst, "state_before", string(e.StateBefore))
		dst = appendStringField(dst, "state", string(e.State))
		dst = appendInts(dst, "probes_before", e.ProbesBefore, "probes_after", e.ProbesAfter, "backoff", e.Backoff)
		if e.SegmentsSent > 0 {
			dst = appendInts(dst, "segments_sent", e.SegmentsSent)
		}
		if e.TimesKnown {
			dst = appendMillisFields(dst, "rto_ms", e.RTO, "next_ms", e.Next, "idle_ms", e.Idle)
		}
	case *ProbeSent:
		dst = appendStringField(dst, "timer", string(e.Timer))
		dst = appendStringField(dst, "state", string(e.State))
	case *WindowOpen:
		dst = appendInts(dst, "window", int(e.Window))
	case *KeepaliveProbe:
		dst = appendInts(dst, "probe", e.Probe)
		dst = appendMillisFields(dst, "idle_ms", e.Idle, "interval_ms", e.Interval)
		dst = appendKeepalive(dst, e.Settings)
	case *KeepaliveAck:
		dst = appendInts(dst, "probes", e.Probes)
		dst = append(dst, `,"inferred":true`...)
	case *ZeroWindowStart:
	case *ZeroWindowProbe:
		dst = appendInts(dst, "probe", e.Probe, "backoff", e.Backoff)
		dst = appendMillisFields(dst, "interval_ms", e.Interval)
	case *ZeroWindowEnd:
		dst = appendStringField(dst, "how", e.How)
		dst = appendInts(dst, "probes", e.Probes)
		dst = appendMillisFields(dst, "duration_ms", e.Duration)
		dst = append(dst, `,"intervals_ms":[`...)
		for i, d := range e.Intervals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendMillis(dst, d)
		}
		dst = append(dst, ']')
	case *RTO:
		dst = appendStringField(dst, "kind", string(e.Kind))
		dst = appendInts(dst, "backoff", e.Backoff)
		dst = appendMillisFields(dst, "rto_ms", e.RTO)
	case *TimeoutAbort:
		dst = appendStringField(dst, "timer", e.Timer)
		dst = appendStringField(dst, "rule", e.Rule)
		dst = appendInts(dst, "probes", e.Probes)
		dst = appendMillisFields(dst, "elapsed_ms", e.Elapsed)
		if e.Timer == "keepalive" {
			dst = appendKeepalive(dst, e.Settings)
		}
	case *Summary:
		dst = appendSummary(dst, e)
	case *Finding:
		dst = appendStringField(dst, "kind", string(e.Kind))
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, e.ID, 10)
		// A repeat names the finding told in full instead of its words.
		if e.See != 0 {
			dst = append(dst, `,"see":`...)
			dst = strconv.AppendUint(dst, e.See, 10)
			dst = append(dst, `,"count":`...)
			dst = strconv.AppendUint(dst, e.Count, 10)
		} else {
			dst = appendStringField(dst, "message", e.Message)
		}
		dst = appendObjectField(dst, "evidence", e.Evidence)
		if e.See == 0 {
			dst = appendObjectField(dst, "sysctls", e.Sysctls)
		}
	}
	return append(dst, '}')
}

func appendFindingSummary(dst []byte, s *FindingSummary) []byte {
	dst = append(dst, `,"netns":`...)
	dst = strconv.AppendUint(dst, uint64(s.Netns), 10)
	dst = appendStringField(dst, "kind", string(s.Kind))
	dst = appendStringField(dst, "since", s.Since.Format(TimeLayout))
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendUint(dst, s.Count, 10)
	dst = append(dst, `,"example_cookie":`...)
	return strconv.AppendUint(dst, s.ExampleCookie, 10)
}

// HumanDuration writes a duration for people: milliseconds below 10 s
// (0.335 ms, 1500 ms), seconds with one decimal above (60.0 s).
func HumanDuration(d time.Duration) string {
	return string(AppendHumanDuration(nil, d))
}

// AppendHumanDuration appends d as HumanDuration writes it.
func AppendHumanDuration(dst []byte, d time.Duration) []byte {
	if d < 10*time.Second {
		return append(AppendMillis(dst, d), " ms"...)
	}
	return append(strconv.AppendFloat(dst, d.Seconds(), 'f', 1, 64), " s"...)
}

// AppendMillis appends d in milliseconds with microsecond precision, as
// the shortest decimal (1500, 0.335, 42.5), with integer arithmetic.
func AppendMillis(dst []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		dst = append(dst, '-')
		us = -us
	}
	dst = strconv.AppendInt(dst, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return dst
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, digits[:n]...)
}

func appendAddrPort(dst []byte, addrKey, portKey string, ap netip.AddrPort) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, addrKey...)
	dst = append(dst, `":"`...)
	dst = ap.Addr().AppendTo(dst)
	dst = append(dst, `","`...)
	dst = append(dst, portKey...)
	dst = append(dst, `":`...)
	return strconv.AppendUint(dst, uint64(ap.Port()), 10)
}

func appendStringField(dst []byte, key, value string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return AppendJSONString(dst, value)
}

// AppendJSONString appends s as a JSON string. Plain printable ASCII, the
// usual case for process names and kernel enum names, is copied directly.
func AppendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendSummary(dst []byte, e *Summary) []byte {
	dst = append(dst, `,"history":[`...)
	for i, p := range e.History {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"state":`...)
		dst = AppendJSONString(dst, string(p.State))
		if p.DurationKnown {
			dst = append(dst, `,"ms":`...)
			dst = AppendMillis(dst, p.Duration)
		}
		if p.Timewait {
			dst = append(dst, `,"timewait_socket":true`...)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if e.ClosedBy != "" {
		dst = appendStringField(dst, "closed_by", string(e.ClosedBy))
	}
	dst = appendStringField(dst, "end", string(e.End))
	if e.Close.Shape != "" {
		dst = appendClose(dst, &e.Close)
	}
	for _, f := range []struct {
		key string
		n   int
	}{{"retransmits", e.Retransmits}, {"resets_sent", e.ResetsSent}, {"resets_received", e.ResetsReceived}} {
		dst = append(dst, `,"`...)
		dst = append(dst, f.key...)
		dst = append(dst, `":`...)
		dst = strconv.AppendInt(dst, int64(f.n), 10)
	}
	if e.BeforeTrace {
		dst = append(dst, `,"started_before_trace":true`...)
	}
	if e.HistoryDropped {
		dst = append(dst, `,"history_dropped":true`...)
	}
	if e.Incomplete {
		dst = append(dst, `,"incomplete":true`...)
	}
	if e.LifetimeKnown {
		dst = append(dst, `,"lifetime_ms":`...)
		dst = AppendMillis(dst, e.Lifetime)
	}
	if e.HandshakeKnown {
		dst = appendHandshake(dst, &e.Handshake)
	}
	if e.CountersKnown {
		dst = appendCounters(dst, &e.Counters)
	}
	return dst
}

func appendClose(dst []byte, c *Close) []byte {
	dst = append(dst, `,"close":{"shape":`...)
	dst = AppendJSONString(dst, string(c.Shape))
	for _, f := range []struct{ key, value string }{{"first_fin", string(c.FirstFIN)}, {"state", string(c.State)},
		{"rule", c.Rule}, {"reset_reason", c.ResetReason}, {"counter", c.Counter}} {
		if f.value != "" {
			dst = appendStringField(dst, f.key, f.value)
		}
	}
	if c.HalfCloseKnown {
		dst = append(dst, `,"half_close_ms":`...)
		dst = AppendMillis(dst, c.HalfClose)
		if c.HalfCloseWithin > 0 {
			dst = append(dst, `,"half_close_within_ms":`...)
			dst = AppendMillis(dst, c.HalfCloseWithin)
		}
	}
	if c.Inferred {
		dst = append(dst, `,"inferred":true`...)
		dst = appendStringField(dst, "inferred_from", c.InferredFrom)
	}
	if c.SeenFrom != "" {
		dst = appendStringField(dst, "seen_from", c.SeenFrom)
	}
	return append(dst, '}')
}

// appendObjectField writes a finding's map as encoding/json does (keys
// sorted, HTML characters escaped). Findings come with every TIME_WAIT
// socket taken over, thousands a second under connection churn, so the
// values findings hold are written here; anything else goes through
// encoding/json.
func appendObjectField(dst []byte, key string, m map[string]any) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	if m == nil {
		return append(dst, "{}"...)
	}
	if out, ok := appendObject(dst, m); ok {
		return out
	}
	b, err := json.Marshal(m)
	if err != nil {
		return append(dst, "{}"...)
	}
	return append(dst, b...)
}

// appendObject appends m as encoding/json would, or reports that m holds a
// value it leaves to encoding/json (dst is then unchanged).
func appendObject(dst []byte, m map[string]any) ([]byte, bool) {
	var space [16]string
	keys := space[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	start := len(dst)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if dst, ok = appendMarshalString(dst, k); !ok {
			return dst[:start], false
		}
		dst = append(dst, ':')
		if dst, ok = appendValue(dst, m[k]); !ok {
			return dst[:start], false
		}
	}
	return append(dst, '}'), true
}

func appendValue(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendMarshalString(dst, v)
	case bool:
		return strconv.AppendBool(dst, v), true
	case int:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int64:
		return strconv.AppendInt(dst, v, 10), true
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case uint64:
		return strconv.AppendUint(dst, v, 10), true
	case float64:
		return appendMarshalFloat(dst, v)
	case []float64:
		if v == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, f := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendMarshalFloat(dst, f); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), true
		}
		return appendObject(dst, v)
	}
	return dst, false
}

// appendMarshalFloat writes f as encoding/json does in the range where it
// uses plain decimals; exponents, NaN and infinities are left to it.
func appendMarshalFloat(dst []byte, f float64) ([]byte, bool) {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) || math.IsNaN(f) {
		return dst, false
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), true
}

// appendMarshalString writes s as encoding/json does when s needs no
// escape, HTML characters included; other strings are left to it.
func appendMarshalString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

func appendSynInfo(dst []byte, seqKey, tsKey string, si SynInfo) []byte {
	for _, f := range []struct {
		key   string
		value uint32
		known bool
	}{{seqKey, si.Seq, si.SeqKnown}, {tsKey, si.TSVal, si.TSValKnown}} {
		if f.known {
			dst = append(dst, `,"`...)
			dst = append(dst, f.key...)
			dst = append(dst, `":`...)
			dst = strconv.AppendUint(dst, uint64(f.value), 10)
		}
	}
	return dst
}

// appendInts appends key, value pairs of integers.
func appendInts(dst []byte, kv ...any) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		dst = append(dst, `,"`...)
		dst = append(dst, kv[i].(string)...)
		dst = append(dst, `":`...)
		dst = strconv.AppendInt(dst, int64(kv[i+1].(int)), 10)
	}
	return dst
}

// appendMillisFields appends key, duration pairs in milliseconds.
func appendMillisFields(dst []byte, kv ...any) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		dst = append(dst, `,"`...)
		dst = append(dst, kv[i].(string)...)
		dst = append(dst, `":`...)
		dst = AppendMillis(dst, kv[i+1].(time.Duration))
	}
	return dst
}

func appendKeepalive(dst []byte, k ResolvedKeepalive) []byte {
	dst = append(dst, `,"settings":{"idle_s":`...)
	dst = strconv.AppendFloat(dst, k.Idle.Seconds(), 'f', -1, 64)
	dst = append(dst, `,"interval_s":`...)
	dst = strconv.AppendFloat(dst, k.Interval.Seconds(), 'f', -1, 64)
	dst = append(dst, `,"probes":`...)
	dst = strconv.AppendInt(dst, int64(k.Probes), 10)
	dst = append(dst, `,"user_timeout_ms":`...)
	dst = AppendMillis(dst, k.UserTimeout)
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, k.Source)
	return append(dst, '}')
}

func appendUintField(dst []byte, key string, n uint64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return strconv.AppendUint(dst, n, 10)
}

func appendBoolField(dst []byte, key string, v bool) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return strconv.AppendBool(dst, v)
}

func appendHandshake(dst []byte, h *Handshake) []byte {
	dst = append(dst, `,"handshake":{"mss":`...)
	dst = strconv.AppendUint(dst, uint64(h.MSSInUse), 10)
	dst = appendUintField(dst, "mss_advertised", uint64(h.MSSAdvertised))
	dst = appendUintField(dst, "mss_received", uint64(h.MSSReceived))
	dst = appendBoolField(dst, "window_scaling", h.WindowScaling)
	if h.WindowScaling {
		dst = appendUintField(dst, "send_wscale", uint64(h.SendScale))
		dst = appendUintField(dst, "receive_wscale", uint64(h.ReceiveScale))
	}
	dst = appendBoolField(dst, "sack", h.SACK)
	dst = appendBoolField(dst, "timestamps", h.Timestamps)
	dst = appendBoolField(dst, "ecn", h.ECN)
	dst = appendBoolField(dst, "fastopen", h.FastOpen)
	dst = append(dst, `,"rtt_ms":`...)
	dst = AppendMillis(dst, h.RTT)
	dst = appendUintField(dst, "retransmits", uint64(h.Retransmits))
	return append(dst, '}')
}

func appendCounters(dst []byte, c *Counters) []byte {
	dst = append(dst, `,"counters":{"bytes_acked":`...)
	dst = strconv.AppendUint(dst, c.BytesAcked, 10)
	dst = appendUintField(dst, "bytes_received", c.BytesReceived)
	dst = appendUintField(dst, "segs_out", uint64(c.SegsOut))
	dst = appendUintField(dst, "segs_in", uint64(c.SegsIn))
	dst = appendUintField(dst, "retransmits", uint64(c.Retransmits))
	dst = append(dst, `,"rtt_ms":`...)
	dst = AppendMillis(dst, c.RTT)
	dst = append(dst, `,"min_rtt_ms":`...)
	dst = AppendMillis(dst, c.MinRTT)
	if c.DeliveryRate > 0 {
		dst = appendUintField(dst, "delivery_rate_bps", c.DeliveryRate*8)
	}
	return append(dst, '}')
}
