package events

import (
	"encoding/json"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The encoder's cached time formatting must match time.Format, across
// seconds, zones and nanosecond values.
func TestJSONTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	base := time.Date(2026, 11, 21, 18, 38, 21, 0, time.UTC)
	times := []time.Time{
		base, base.Add(1), base.Add(999999999), base.Add(time.Second), base.Add(time.Second + 42),
		base.In(paris), base.Add(5).In(paris), base.Add(-time.Hour * 24 * 400),
	}
	var enc JSONEncoder
	for _, tm := range times {
		got := string(enc.appendTime(nil, tm))
		if want := tm.Format(TimeLayout); got != want {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func TestJSONValid(t *testing.T) {
	h := Header{Time: time.Unix(1, 2), Cookie: 1, Family: 6,
		Local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), Remote: netip.MustParseAddrPort("[2001:db8::1]:9"),
		Owner: Owner{PID: 1, Comm: "weird\"\x00name\xff"}}
	for _, ev := range []Event{
		&StateChange{Header: h, Old: StateClose, New: StateSynSent, Syn: SynInfo{Seq: 1, SeqKnown: true}},
		&TimewaitEnd{Header: h, Cause: CauseSynAccepted, Inferred: true, InferredFrom: "a \"quoted\" reason",
			Syn: SynInfo{Seq: 5, SeqKnown: true, TSVal: 2, TSValKnown: true}, Last: SynInfo{Seq: 4, SeqKnown: true, TSVal: 1, TSValKnown: true}},
		&Summary{Header: h, History: []Phase{{State: StateEstablished, Duration: time.Millisecond, DurationKnown: true}, {State: StateTimeWait, Timewait: true}}, End: "open"},
		&Finding{Header: h, Kind: "k", Message: "m", Evidence: map[string]any{"x": 1}, Sysctls: map[string]any{"y": nil}},
		&Snapshot{Header: h, State: StateTimeWait, Substate: StateFinWait2, Remaining: time.Second, RemainingKnown: true},
		&TimewaitSubstate{Header: h, Old: StateFinWait2, New: StateTimeWait, Timeout: time.Minute, TimeoutKnown: true,
			TimeKnown: true, Within: 8 * time.Millisecond, DerivedFrom: "the \"timer\"", Inferred: true, SeenAt: time.Unix(2, 0)},
		&TimewaitSubstate{Header: h, Old: StateFinWait2, New: StateTimeWait, TimeKnown: true},
		&TimewaitRSTIgnored{Header: h, Substate: StateTimeWait, PeerRSTAt: time.Unix(1, 0), PeerRSTReason: "TCP_FLAGS",
			AliveFor: time.Second, Ended: CauseExpired},
		&TimewaitEnd{Header: h, Cause: CauseRSTAnswer, Substate: StateFinWait2, RSTAnswerReason: "TCP_TIMEWAIT_SOCKET"},
		&TimewaitOverflow{Header: h, State: StateFinWait2, InferredFrom: "x"},
	} {
		b := AppendJSON(nil, ev)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%T: invalid JSON %s: %v", ev, b, err)
		} else if m["type"] != string(ev.Type()) || m["saddr"] != "::ffff:10.0.0.1" {
			t.Errorf("%T: %s", ev, b)
		}
	}
}

// A summary's close object has the fields its shape has, and no others.
func TestJSONClose(t *testing.T) {
	for _, tt := range []struct {
		close Close
		want  string
	}{
		{Close{Shape: ShapeFourSegment, FirstFIN: "local", HalfClose: 1998 * time.Millisecond, HalfCloseKnown: true, HalfCloseWithin: 8 * time.Millisecond},
			`{"shape":"four_segment","first_fin":"local","half_close_ms":1998,"half_close_within_ms":8}`},
		{Close{Shape: ShapeThreeSegment, FirstFIN: "local", HalfCloseKnown: true, Inferred: true, InferredFrom: "a \"gap\""},
			`{"shape":"three_segment","first_fin":"local","half_close_ms":0,"inferred":true,"inferred_from":"a \"gap\""}`},
		{Close{Shape: ShapeAbort, State: StateEstablished, Rule: RuleUnreadData, ResetReason: "TCP_ABORT_ON_CLOSE", Counter: "TcpExt.TCPAbortOnClose"},
			`{"shape":"abort","state":"ESTABLISHED","rule":"unread_data","reset_reason":"TCP_ABORT_ON_CLOSE","counter":"TcpExt.TCPAbortOnClose"}`},
	} {
		b := AppendJSON(nil, &Summary{Header: Header{Time: time.Unix(1, 0)}, End: "closed", Close: tt.close})
		var m struct{ Close json.RawMessage }
		if err := json.Unmarshal(b, &m); err != nil || string(m.Close) != tt.want {
			t.Errorf("%s (%v): close %s, want %s", b, err, m.Close, tt.want)
		}
	}
	if b := AppendJSON(nil, &Summary{End: "open"}); json.Valid(b) && strings.Contains(string(b), "close") {
		t.Errorf("a summary without a close shape: %s", b)
	}
}

func TestAppendMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 1500 * time.Millisecond: "1500", 335 * time.Microsecond: "0.335", 42500 * time.Microsecond: "42.5",
		time.Nanosecond: "0", 60 * time.Second: "60000", 1001 * time.Microsecond: "1.001", -2500 * time.Microsecond: "-2.5",
	} {
		if got := string(AppendMillis(nil, d)); got != want {
			t.Errorf("AppendMillis(%v) = %s, want %s", d, got, want)
		}
	}
}

// Findings' maps must come out exactly as encoding/json writes them, on the
// fast path and off it.
func TestJSONObject(t *testing.T) {
	for _, m := range []map[string]any{
		nil,
		{},
		{"net.ipv4.tcp_tw_reuse": int64(2), "net.ipv4.tcp_tw_recycle": nil, "net.ipv4.tcp_timestamps": "1 2"},
		{"age_ms": 1196.629, "zero": 0.0, "neg": -0.5, "big": 1e20, "whole": 3.0, "n": 7, "u32": uint32(4294967295),
			"u64": uint64(18446744073709551615), "yes": true, "no": false, "i64": int64(-9)},
		{"intervals_ms": []float64{200, 400.5, 0.001}, "none": []float64(nil), "empty": []float64{}},
		{"settings": map[string]any{"idle_s": 7200.0, "source": "sysctl", "inner": map[string]any{"b": 1, "a": 2}}, "nilmap": map[string]any(nil)},
		// Left to encoding/json: exponents, escapes, HTML, other types.
		{"tiny": 1e-7, "ok": 1},
		{"huge": 1e21},
		{"s": "a \"quoted\" <b> & \\ é\n"},
		{"late_segment": map[string]any{"flags": "ACK", "seq": uint32(5), "note": "<x>"}},
		{"k<": 1},
		{"f32": float32(0.1), "i8": int8(3)},
		{"list": []string{"a"}},
		{"nan": math.NaN()},
	} {
		want, err := json.Marshal(m)
		if m == nil || err != nil {
			want = []byte("{}")
		}
		if got := string(appendObjectField([]byte("x"), "key", m)); got != `x,"key":`+string(want) {
			t.Errorf("%v:\ngot  %s\nwant x,\"key\":%s", m, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		335 * time.Microsecond: "0.335 ms", 1500 * time.Millisecond: "1500 ms", 9999999 * time.Microsecond: "9999.999 ms",
		10 * time.Second: "10.0 s", 60 * time.Second: "60.0 s", 90250 * time.Millisecond: "90.2 s",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %s, want %s", d, got, want)
		}
		if got := string(AppendHumanDuration([]byte("x "), d)); got != "x "+want {
			t.Errorf("AppendHumanDuration(%v) = %s", d, got)
		}
	}
}

// history_dropped and incomplete appear exactly where a history was
// dropped, or records lost.
func TestJSONHistoryDroppedIncomplete(t *testing.T) {
	h := Header{Time: time.Unix(1, 2), Cookie: 1, Family: 4,
		Local: netip.MustParseAddrPort("10.0.0.1:1"), Remote: netip.MustParseAddrPort("10.0.0.2:2")}
	for _, tc := range []struct {
		ev    Event
		field string
		set   bool
	}{
		{&Summary{Header: h, End: "closed", HistoryDropped: true}, "history_dropped", true},
		{&Summary{Header: h, End: "closed"}, "history_dropped", false},
		{&TimewaitEnd{Header: h, Cause: CauseExpired, HistoryDropped: true}, "history_dropped", true},
		{&TimewaitEnd{Header: h, Cause: CauseExpired}, "history_dropped", false},
		{&Summary{Header: h, End: "closed", Incomplete: true}, "incomplete", true},
		{&Summary{Header: h, End: "closed"}, "incomplete", false},
		{&TimewaitEnd{Header: h, Cause: CauseExpired, Incomplete: true}, "incomplete", true},
		{&TimewaitEnd{Header: h, Cause: CauseExpired}, "incomplete", false},
	} {
		var m map[string]any
		if err := json.Unmarshal(AppendJSON(nil, tc.ev), &m); err != nil {
			t.Fatal(err)
		}
		if got, ok := m[tc.field]; ok != tc.set || (ok && got != true) {
			t.Errorf("%T (%s %v): %v (present %v)", tc.ev, tc.field, tc.set, got, ok)
		}
	}
}

// A finding carries its id; a repeat names the full one and its count
// instead of the words and sysctls; a roll-up carries no socket's fields.
func TestJSONFindingRollup(t *testing.T) {
	h := Header{Time: time.Unix(20, 5).UTC(), Cookie: 7, Family: 4, Netns: 4026531840,
		Local: netip.MustParseAddrPort("10.0.0.1:1"), Remote: netip.MustParseAddrPort("10.0.0.2:2")}
	evidence := map[string]any{"age_ms": 12.5}
	type decoded struct {
		Type          string          `json:"type"`
		TS            string          `json:"ts"`
		Cookie        *uint64         `json:"cookie"`
		Netns         uint32          `json:"netns"`
		Kind          string          `json:"kind"`
		ID            uint64          `json:"id"`
		See           uint64          `json:"see"`
		Count         uint64          `json:"count"`
		Message       *string         `json:"message"`
		Evidence      map[string]any  `json:"evidence"`
		Sysctls       *map[string]any `json:"sysctls"`
		Since         string          `json:"since"`
		ExampleCookie uint64          `json:"example_cookie"`
	}
	for _, tc := range []struct {
		ev    Event
		check func(d decoded) bool
	}{
		{&Finding{Header: h, Kind: "k", ID: 3, Message: "m", Evidence: evidence, Sysctls: map[string]any{"s": int64(1)}},
			func(d decoded) bool {
				return d.ID == 3 && d.See == 0 && d.Count == 0 && d.Message != nil && *d.Message == "m" &&
					d.Evidence["age_ms"] == 12.5 && d.Sysctls != nil && (*d.Sysctls)["s"] == 1.0
			}},
		{&Finding{Header: h, Kind: "k", ID: 9, See: 3, Count: 4, Evidence: evidence},
			func(d decoded) bool {
				return d.ID == 9 && d.See == 3 && d.Count == 4 && d.Message == nil && d.Sysctls == nil &&
					d.Evidence["age_ms"] == 12.5 && d.Cookie != nil && *d.Cookie == h.Cookie
			}},
		{&FindingSummary{Header: Header{Time: h.Time, Netns: h.Netns}, Kind: "k", Since: time.Unix(10, 0).UTC(), Count: 5, ExampleCookie: 7},
			func(d decoded) bool {
				return d.Netns == h.Netns && d.Kind == "k" && d.Count == 5 && d.ExampleCookie == 7 && d.Cookie == nil &&
					d.Since == time.Unix(10, 0).UTC().Format(TimeLayout) && d.TS == h.Time.Format(TimeLayout)
			}},
	} {
		b := AppendJSON(nil, tc.ev)
		var d decoded
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%T: invalid JSON %s: %v", tc.ev, b, err)
			continue
		}
		if d.Type != string(tc.ev.Type()) || !tc.check(d) {
			t.Errorf("%T: %s", tc.ev, b)
		}
	}
}

// An owner's cgroup fields: those known, and none without a cgroup.
func TestJSONCgroup(t *testing.T) {
	cg := &Cgroup{Path: "/kubepods/pod1/abc", ContainerID: "abc", Runtime: "cri", PodUID: "1", Pod: "web", PodNamespace: "shop"}
	for _, tc := range []struct {
		cgroup *Cgroup
		want   map[string]any
	}{
		{cg, map[string]any{"cgroup": cg.Path, "container_id": "abc", "container_runtime": "cri", "pod_uid": "1", "pod": "web", "pod_namespace": "shop"}},
		{&Cgroup{Path: "/user.slice"}, map[string]any{"cgroup": "/user.slice"}},
		{nil, map[string]any{}},
	} {
		ev := &StateChange{Header: Header{Time: time.Unix(1, 0), Cookie: 7, Family: 4, Owner: Owner{PID: 9, CgroupID: 5, Cgroup: tc.cgroup}}}
		var m map[string]any
		if err := json.Unmarshal(AppendJSON(nil, ev), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"cgroup", "container_id", "container_runtime", "pod_uid", "pod", "pod_namespace"} {
			if want, ok := tc.want[k]; m[k] != want || (!ok && m[k] != nil) {
				t.Errorf("%+v: %s = %v, want %v", tc.cgroup, k, m[k], want)
			}
		}
	}
}

// AppendFields keeps an event's own fields and drops the header's, for a
// cgroup's fields too, and an event with no fields of its own is {}.
func TestJSONFields(t *testing.T) {
	h := Header{Time: time.Unix(1, 2), Cookie: 1, Family: 4,
		Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.2:9"),
		Owner: Owner{PID: 1, Comm: "app", Cgroup: &Cgroup{Path: "/x", ContainerID: "abc"}}}
	var enc JSONEncoder
	tests := []struct {
		ev   Event
		want string
	}{
		{&StateChange{Header: h, Old: StateSynSent, New: StateEstablished}, `{"old_state":"SYN_SENT","new_state":"ESTABLISHED"}`},
		{&TimewaitEnd{Header: h, Cause: CauseExpired, Substate: StateTimeWait}, `{"substate":"TIME_WAIT","cause":"expired"}`},
		{&ZeroWindowStart{Header: h}, `{}`},
	}
	for _, tt := range tests {
		if got := string(enc.AppendFields(nil, tt.ev)); got != tt.want {
			t.Errorf("%T: %s, want %s", tt.ev, got, tt.want)
		}
	}
}
