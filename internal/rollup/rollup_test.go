package rollup

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/explain"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// At an interval boundary, so that the tests read in trace time.
var start = time.Date(2026, 11, 21, 18, 38, 20, 0, time.UTC)

const netnsA, netnsB = 4026531840, 4026532177

// reuse makes a connect() reuse finding of the socket with this cookie,
// as explain words it, with its own addresses and age.
func reuse(at time.Duration, netns uint32, cookie uint64, twReuse int64, loopback bool) *events.Finding {
	local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(cookie))
	remote := netip.MustParseAddrPort("10.0.9.9:443")
	where := "reuse for any destination"
	if loopback {
		local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(cookie))
		remote = netip.MustParseAddrPort("127.0.0.1:443")
		where = "reuse for loopback connections only, and this one is on loopback"
	}
	msg := fmt.Sprintf("An outgoing connect() took over the TIME_WAIT socket of %s (local) <-> %s when it was %s old. "+
		"connect() picked the port itself, so tcp_tw_reuse decided (tcp_tw_reuse = %d: %s).",
		local, remote, time.Duration(cookie)*time.Millisecond, twReuse, where)
	return &events.Finding{Header: events.Header{Time: start.Add(at), Cookie: cookie, Family: 4, Local: local, Remote: remote, Netns: netns},
		Kind: "timewait_connect_reuse", Message: msg, Evidence: map[string]any{"age_ms": float64(cookie)},
		Sysctls: map[string]any{"net.ipv4.tcp_tw_reuse": twReuse, "net.ipv4.tcp_tw_recycle": nil}}
}

// overflow makes a finding of another kind.
func overflow(at time.Duration, netns uint32, cookie uint64) *events.Finding {
	return &events.Finding{Header: events.Header{Time: start.Add(at), Cookie: cookie, Netns: netns}, Kind: "timewait_overflow",
		Message: fmt.Sprintf("tcptrace saw %d TIME_WAIT sockets.", cookie), Sysctls: map[string]any{"net.ipv4.tcp_max_tw_buckets": int64(0)}}
}

// step is one thing done to the roll-up: a finding written (and whether it
// comes out short: the finding it repeats and the count), or time passed
// (and the summaries due).
type step struct {
	finding   *events.Finding
	see, n    uint64
	advance   time.Duration
	finish    bool
	summaries []summary
}

type summary struct {
	kind          events.FindingKind
	netns         uint32
	since, at     time.Duration
	count, cookie uint64
}

func TestRollup(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"the first in full, the repeats short", []step{
			{finding: reuse(0, netnsA, 11, 2, true)},
			{finding: reuse(time.Second, netnsA, 1234, 2, true), see: 1, n: 2},
			{finding: reuse(2*time.Second, netnsA, 65000, 2, true), see: 1, n: 3},
		}},
		{"other words: in full once more", []step{
			{finding: reuse(0, netnsA, 11, 2, true)},
			{finding: reuse(0, netnsA, 12, 1, false)},
			{finding: reuse(0, netnsA, 13, 2, true), see: 1, n: 2},
			{finding: reuse(0, netnsA, 14, 1, false), see: 2, n: 2},
		}},
		{"sysctls changed: in full again", []step{
			{finding: reuse(0, netnsA, 11, 2, true)},
			{finding: reuse(0, netnsA, 12, 2, true), see: 1, n: 2},
			{finding: with(reuse(0, netnsA, 13, 2, true), "net.ipv4.tcp_tw_reuse_delay", int64(1000))},
			{finding: with(reuse(0, netnsA, 14, 2, true), "net.ipv4.tcp_tw_reuse_delay", int64(1000)), see: 3, n: 2},
			{finding: reuse(0, netnsA, 15, 2, true)}, // changed back
			{finding: reuse(0, netnsA, 16, 2, true), see: 5, n: 2},
		}},
		{"each namespace and kind its own", []step{
			{finding: reuse(0, netnsA, 11, 2, true)},
			{finding: reuse(0, netnsB, 12, 2, true)},
			{finding: overflow(0, netnsA, 13)},
			{finding: reuse(0, netnsB, 14, 2, true), see: 2, n: 2},
			{finding: overflow(0, netnsA, 15), see: 3, n: 2},
			{finding: reuse(0, netnsA, 16, 2, true), see: 1, n: 2},
		}},
		{"summaries per interval, and at the end", []step{
			{advance: 3 * time.Second},
			{finding: reuse(3*time.Second, netnsA, 11, 2, true)},
			{finding: overflow(4*time.Second, netnsB, 12)},
			{finding: reuse(5*time.Second, netnsA, 13, 2, true), see: 1, n: 2},
			{advance: 9 * time.Second},
			{advance: 11 * time.Second, summaries: []summary{
				{"timewait_connect_reuse", netnsA, 3 * time.Second, 10 * time.Second, 2, 11},
				{"timewait_overflow", netnsB, 3 * time.Second, 10 * time.Second, 1, 12}}},
			{advance: 25 * time.Second}, // no finding since: no summary
			{finding: reuse(25*time.Second, netnsA, 14, 2, true), see: 1, n: 3},
			{finish: true, advance: 27 * time.Second, summaries: []summary{
				{"timewait_connect_reuse", netnsA, 20 * time.Second, 27 * time.Second, 1, 14}}},
		}},
		{"the end past an interval's end", []step{
			{advance: 0},
			{finding: overflow(time.Second, netnsA, 12)},
			{finish: true, advance: 15 * time.Second, summaries: []summary{
				{"timewait_overflow", netnsA, 0, 10 * time.Second, 1, 12}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(false)
			id := uint64(0)
			for i, s := range tt.steps {
				if s.finding == nil {
					var got []*events.FindingSummary
					if s.finish {
						got = r.Finish(start.Add(s.advance))
					} else {
						got = r.Advance(start.Add(s.advance))
					}
					if want := summariesOf(s.summaries); !slices.EqualFunc(got, want, sameSummary) {
						t.Errorf("step %d: summaries %v, want %v", i, deref(got), deref(want))
					}
					continue
				}
				f := s.finding
				message, sysctls, evidence := f.Message, f.Sysctls, f.Evidence
				id++
				r.Finding(f)
				switch {
				case f.ID != id:
					t.Errorf("step %d: id %d, want %d", i, f.ID, id)
				case f.See != s.see || f.Count != s.n:
					t.Errorf("step %d: see %d count %d, want see %d count %d", i, f.See, f.Count, s.see, s.n)
				case s.see == 0 && (f.Message != message || !maps.Equal(f.Sysctls, sysctls)):
					t.Errorf("step %d: a full finding changed: %+v", i, f)
				case s.see != 0 && (f.Message != "" || f.Sysctls != nil):
					t.Errorf("step %d: a repeat keeps its words or sysctls: %+v", i, f)
				case !maps.Equal(f.Evidence, evidence):
					t.Errorf("step %d: evidence %v, want %v", i, f.Evidence, evidence)
				}
			}
		})
	}
}

func with(f *events.Finding, name string, value any) *events.Finding {
	f.Sysctls = maps.Clone(f.Sysctls)
	f.Sysctls[name] = value
	return f
}

func summariesOf(ss []summary) []*events.FindingSummary {
	var out []*events.FindingSummary
	for _, s := range ss {
		out = append(out, &events.FindingSummary{Header: events.Header{Time: start.Add(s.at), Netns: s.netns},
			Kind: s.kind, Since: start.Add(s.since), Count: s.count, ExampleCookie: s.cookie})
	}
	return out
}

func sameSummary(a, b *events.FindingSummary) bool {
	return a.Header == b.Header && a.Kind == b.Kind && a.Since.Equal(b.Since) && a.Count == b.Count && a.ExampleCookie == b.ExampleCookie
}

func deref(ss []*events.FindingSummary) []events.FindingSummary {
	var out []events.FindingSummary
	for _, s := range ss {
		out = append(out, *s)
	}
	return out
}

// --full-findings: every finding numbered and whole, no summaries.
func TestRollupFull(t *testing.T) {
	r := New(true)
	for i, f := range []*events.Finding{reuse(0, netnsA, 11, 2, true), reuse(time.Second, netnsA, 12, 2, true)} {
		message := f.Message
		r.Finding(f)
		if f.ID != uint64(i+1) || f.See != 0 || f.Message != message || f.Sysctls == nil {
			t.Errorf("finding %d: %+v", i, f)
		}
	}
	if r.Due(start.Add(time.Hour)) || len(r.Finish(start.Add(time.Hour))) != 0 {
		t.Error("summaries with --full-findings")
	}
}

// Past maxRepeatable findings told in full, all are forgotten: the next
// of each is told in full again, and counts go on.
func TestRollupForgets(t *testing.T) {
	defer func(n int) { maxRepeatable = n }(maxRepeatable)
	maxRepeatable = 2
	r := New(false)
	for i, s := range []step{
		{finding: reuse(0, netnsA, 11, 2, true)},
		{finding: reuse(0, netnsB, 12, 2, true)},
		{finding: reuse(0, netnsA, 13, 2, true), see: 1, n: 2},
		{finding: overflow(0, netnsA, 14)}, // a third: the first two forgotten
		{finding: reuse(0, netnsA, 15, 2, true)},
		{finding: reuse(0, netnsB, 16, 2, true)}, // a third again
	} {
		r.Finding(s.finding)
		if s.finding.See != s.see || s.finding.Count != s.n {
			t.Errorf("finding %d: see %d count %d, want %d, %d", i, s.finding.See, s.finding.Count, s.see, s.n)
		}
	}
	sums := r.Finish(start)
	counts := map[namespaceKind]uint64{}
	for _, s := range sums {
		counts[namespaceKind{s.Netns, s.Kind}] += s.Count
	}
	want := map[namespaceKind]uint64{{netnsA, "timewait_connect_reuse"}: 3, {netnsB, "timewait_connect_reuse"}: 2,
		{netnsA, "timewait_overflow"}: 1}
	if !maps.Equal(counts, want) || len(sums) != len(want) {
		t.Errorf("summaries %v, want one per namespace and kind, counting %v", deref(sums), want)
	}
}

// The words are the same but for the socket's own addresses and numbers.
func TestWords(t *testing.T) {
	v4a, v4b := []byte("127.0.0.1"), []byte("10.1.2.3")
	v6a, v6b := []byte("fe80::abcd"), []byte("2001:db8::ef")
	for _, tc := range []struct {
		a, b           string
		aLocal, bLocal []byte
		same           bool
	}{
		{"of 127.0.0.1:5000 (local) when it was 13ms old.", "of 10.1.2.3:61000 (local) when it was 1.234s old.", v4a, v4b, true},
		{"of [fe80::abcd]:80 (local) <-> x", "of [2001:db8::ef]:8080 (local) <-> x", v6a, v6b, true},
		{"after 1000 ms idle, 3 probes (3.072s over them)", "after 75.0 s idle, 9 probes (1m0.5s over them)", nil, nil, true},
		{"sequence number 848698417 was after rcv_nxt 845409349.", "sequence number 1 was after rcv_nxt 0.", nil, nil, true},
		{"Linux 4.12). Done", "Linux 4.12). Done", nil, nil, true},
		{"this one is on loopback", "this one is not on loopback", nil, nil, false},
		{"sent by the peer's listener", "sent by the peer's kernel, for no socket", nil, nil, false},
		{"3 seconds", "3 minutes", nil, nil, false},
		{"13ms old", "13 days old", nil, nil, false},
	} {
		a := string(appendWords(nil, tc.a, tc.aLocal, nil))
		b := string(appendWords(nil, tc.b, tc.bLocal, nil))
		if (a == b) != tc.same {
			t.Errorf("%q -> %q\n%q -> %q: same %v, want %v", tc.a, a, tc.b, b, a == b, tc.same)
		}
	}
}

// The findings explain writes for TIME_WAIT sockets taken over, of sockets
// of all ages and addresses, are one told in full and its repeats; but for
// one younger than tcp_tw_reuse_delay, whose story differs (what allowed
// the reuse is unknown): told in full, once.
func TestRollupExplained(t *testing.T) {
	snap := sysctl.Snapshot{Gen: 1}
	for _, s := range sysctl.Known {
		v, ok := map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_tw_reuse_delay": "1000", "net.ipv4.tcp_timestamps": "1"}[string(s.Name)]
		snap.Values = append(snap.Values, sysctl.Value{Sysctl: s, Raw: v, Present: ok})
	}
	x := explain.New(func(uint32) (sysctl.Snapshot, error) { return snap, nil })
	r := New(false)
	made := 0
	ages := []time.Duration{1100 * time.Millisecond, 59999 * time.Millisecond, 61 * time.Second, 13 * time.Millisecond, 12 * time.Millisecond}
	wantSee := []uint64{0, 1, 1, 0, 4}
	wantCount := []uint64{0, 2, 3, 0, 2}
	for i, age := range ages {
		h := events.Header{Time: start, Cookie: uint64(100 + i), Family: 6, Netns: netnsA,
			Local: netip.AddrPortFrom(netip.MustParseAddr("::1"), uint16(40000+i)), Remote: netip.MustParseAddrPort("[::1]:443")}
		for _, ev := range x.Explain(&events.TimewaitEnd{Header: h, Substate: events.StateTimeWait, Cause: events.CauseConnectReuse,
			Age: age, AgeKnown: true, Inferred: true, InferredFrom: "a connect()", Successor: uint64(200 + i)}) {
			f := ev.(*events.Finding)
			made++
			r.Finding(f)
			if f.See != wantSee[i] || f.Count != wantCount[i] {
				t.Errorf("age %v: see %d count %d, want see %d count %d", age, f.See, f.Count, wantSee[i], wantCount[i])
			}
		}
	}
	if made != len(ages) {
		t.Errorf("%d findings of %d TIME_WAIT sockets taken over", made, len(ages))
	}
}

// BenchmarkRepeat is what a repeat costs: its words masked and looked up.
func BenchmarkRepeat(b *testing.B) {
	r := New(false)
	f := reuse(0, netnsA, 11, 2, true)
	message, sysctls := f.Message, f.Sysctls
	b.ReportAllocs()
	for b.Loop() {
		f.Message, f.Sysctls, f.See = message, sysctls, 0
		r.Finding(f)
	}
}
