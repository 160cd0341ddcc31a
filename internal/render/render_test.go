package render

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

var at = time.Date(2026, 11, 21, 18, 38, 21, 343312123, time.UTC)

func header(local, remote string, pid uint32, comm string) events.Header {
	h := events.Header{Time: at, Cookie: 8193, Family: 4, Netns: 4026531840,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		Owner: events.Owner{PID: pid, Comm: comm, CgroupID: 7}}
	if h.Local.Addr().Is6() {
		h.Family = 6
	}
	return h
}

func TestJSON(t *testing.T) {
	tests := []struct {
		ev   events.Event
		want string
	}{
		{&events.StateChange{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"),
			Old: events.StateSynSent, New: events.StateEstablished, PrevState: 335123 * time.Nanosecond, PrevStateKnown: true},
			`{"type":"state","ts":"2026-11-21T18:38:21.343312123Z","cookie":8193,"family":4,"saddr":"127.0.0.1","sport":35900,"daddr":"127.0.0.1","dport":9000,"netns":4026531840,"pid":5922,"comm":"curl","cgroup_id":7,"old_state":"SYN_SENT","new_state":"ESTABLISHED","prev_state_ms":0.335}`},
		{&events.StateChange{Header: header("127.0.0.1:0", "127.0.0.1:9000", 5922, "curl"),
			Old: events.StateClose, New: events.StateSynSent},
			`{"type":"state","ts":"2026-11-21T18:38:21.343312123Z","cookie":8193,"family":4,"saddr":"127.0.0.1","sport":0,"daddr":"127.0.0.1","dport":9000,"netns":4026531840,"pid":5922,"comm":"curl","cgroup_id":7,"old_state":"CLOSE","new_state":"SYN_SENT"}`},
		{&events.ResetSent{Header: header("[::1]:9000", "[::1]:4242", 0, ""), NoSocket: true, Reason: "NO_SOCKET"},
			`{"type":"reset_sent","ts":"2026-11-21T18:38:21.343312123Z","cookie":8193,"family":6,"saddr":"::1","sport":9000,"daddr":"::1","dport":4242,"netns":4026531840,"pid":0,"comm":"","cgroup_id":7,"reason":"NO_SOCKET","no_socket":true}`},
		{&events.Retransmit{Header: header("10.1.1.1:1", "10.1.1.2:2", 1, "a\"b\x01"), State: events.StateEstablished},
			`{"type":"retransmit","ts":"2026-11-21T18:38:21.343312123Z","cookie":8193,"family":4,"saddr":"10.1.1.1","sport":1,"daddr":"10.1.1.2","dport":2,"netns":4026531840,"pid":1,"comm":"a\"b\u0001","cgroup_id":7,"state":"ESTABLISHED"}`},
		{&events.Segment{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"), State: events.StateFinWait2,
			Flags: 0x11, Seq: 4294967295, Ack: 7, Window: 65535, RcvNxt: 4294967295},
			`{"type":"segment","ts":"2026-11-21T18:38:21.343312123Z","cookie":8193,"family":4,"saddr":"127.0.0.1","sport":35900,"daddr":"127.0.0.1","dport":9000,"netns":4026531840,"pid":5922,"comm":"curl","cgroup_id":7,"state":"FIN_WAIT2","flags":"FIN,ACK","seq":4294967295,"ack":7,"window":65535,"len":0,"rcv_nxt":4294967295,"out_of_window":false,"data_after_fin":false}`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		r, err := New("json", &out, &out)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Event(tt.ev); err != nil {
			t.Fatal(err)
		}
		r.Flush()
		got := strings.TrimSuffix(out.String(), "\n")
		if got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("invalid JSON: %s", got)
		}
	}
}

func TestJSONStats(t *testing.T) {
	byKind := events.Loss{Total: 3, ByKind: map[string]uint64{"tw_start": 1, "state": 2}, ByCPU: []uint64{0, 3}}
	for _, tc := range []struct {
		queuePeak int64
		lost      events.Loss
		programs  []events.ProgramCost
		otlp      *OTLPStats
		want      string
	}{
		{0, events.Loss{Total: 3}, nil, nil, `{"type":"stats","events":12,"lost":3,"undecodable":0,"evicted_histories":0,"duration_ms":1500,"by_type":{"destroy":2,"state":10}}`},
		{4096, events.Loss{Total: 3}, nil, nil, `{"type":"stats","events":12,"lost":3,"undecodable":0,"evicted_histories":0,"queue_peak_bytes":4096,"duration_ms":1500,"by_type":{"destroy":2,"state":10}}`},
		{0, byKind, nil, nil, `{"type":"stats","events":12,"lost":3,"lost_by_kind":{"state":2,"tw_start":1},"lost_by_cpu":[0,3],"undecodable":0,"evicted_histories":0,"duration_ms":1500,"by_type":{"destroy":2,"state":10}}`},
		{0, events.Loss{Total: 3}, []events.ProgramCost{{Program: "handle_set_state", Runs: 10, Time: 4410 * time.Nanosecond}}, nil,
			`{"type":"stats","events":12,"lost":3,"undecodable":0,"evicted_histories":0,"bpf_programs":[{"program":"handle_set_state","runs":10,"run_time_ns":4410}],"duration_ms":1500,"by_type":{"destroy":2,"state":10}}`},
		{0, events.Loss{Total: 3}, nil, &OTLPStats{LogRecords: 7, LogRecordsDropped: 2, MetricExports: 3, MetricExportsFailed: 1},
			`{"type":"stats","events":12,"lost":3,"undecodable":0,"evicted_histories":0,"otlp":{"log_records":7,"log_records_dropped":2,"metric_exports":3,"metric_exports_failed":1},"duration_ms":1500,"by_type":{"destroy":2,"state":10}}`},
	} {
		var out bytes.Buffer
		r, _ := New("json", &out, &out)
		err := r.Stats(Stats{Events: 12, Lost: tc.lost, Programs: tc.programs, Duration: 1500 * time.Millisecond, QueuePeak: tc.queuePeak, OTLP: tc.otlp,
			ByType: map[events.Type]uint64{events.TypeState: 10, events.TypeDestroy: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want+"\n" {
			t.Errorf("got  %s\nwant %s", out.String(), tc.want)
		}
	}
}

// TestNone: -o none writes no event, and the closing stats to stderr as
// text does.
func TestNone(t *testing.T) {
	var out, errOut bytes.Buffer
	r, err := New("none", &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []events.Event{
		&events.StateChange{Header: header("127.0.0.1:80", "127.0.0.1:4000", 1, "a"), Old: events.StateSynSent, New: events.StateEstablished},
		&events.Destroy{Header: header("127.0.0.1:80", "127.0.0.1:4000", 1, "a")},
	} {
		if err := r.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stats(Stats{Events: 2, Lost: events.Loss{Total: 1}, Duration: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || errOut.String() != "2 events in 1.5s, 1 lost\n" {
		t.Errorf("stdout %q, stderr %q; want nothing, and the stats line", out.String(), errOut.String())
	}
}

func TestText(t *testing.T) {
	var out, errOut bytes.Buffer
	r, _ := New("text", &out, &errOut)
	tr := r.(*Text)
	tr.loc = time.UTC
	evs := []events.Event{
		&events.StateChange{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"),
			Old: events.StateFinWait1, New: events.StateFinWait2, PrevState: 42500 * time.Microsecond, PrevStateKnown: true},
		&events.ResetSent{Header: header("127.0.0.1:9000", "127.0.0.1:35900", 0, ""), State: events.StateEstablished, Reason: "TCP_ABORT_ON_CLOSE"},
		&events.StateChange{Header: header("127.0.0.1:9000", "127.0.0.1:35900", 77, "server"),
			Old: events.StateEstablished, New: events.StateCloseWait, PrevState: 12 * time.Second, PrevStateKnown: true},
		&events.Segment{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"), State: events.StateFinWait2,
			Flags: 0x18, Seq: 10, Ack: 20, Window: 512, Len: 5, RcvNxt: 10, DataAfterFIN: true},
	}
	for _, ev := range evs {
		if err := r.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	r.Stats(Stats{Events: 4, Duration: time.Second})
	want := `TIME             EVENT              PID      COMM             LOCAL                  REMOTE                 DETAIL
18:38:21.343312  state              5922     curl             127.0.0.1:35900        127.0.0.1:9000         FIN_WAIT1 -> FIN_WAIT2 (after 42.5 ms in FIN_WAIT1)
18:38:21.343312  reset_sent         -        ?                127.0.0.1:9000         127.0.0.1:35900        in ESTABLISHED, reason TCP_ABORT_ON_CLOSE
18:38:21.343312  state              77       server           127.0.0.1:9000         127.0.0.1:35900        ESTABLISHED -> CLOSE_WAIT (after 12.0 s in ESTABLISHED)
18:38:21.343312  segment            5922     curl             127.0.0.1:35900        127.0.0.1:9000         got PSH,ACK seq 10 ack 20 win 512 len 5 in FIN_WAIT2 (rcv_nxt 10) - data after FIN
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if got := errOut.String(); got != "4 events in 1s, 0 lost\n" {
		t.Errorf("summary %q", got)
	}
}

func BenchmarkJSON(b *testing.B) {
	r, _ := New("json", io.Discard, nil)
	ev := &events.StateChange{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"),
		Old: events.StateSynSent, New: events.StateEstablished, PrevStateKnown: true}
	b.ReportAllocs()
	for b.Loop() {
		r.Event(ev)
	}
	r.Flush()
}

func BenchmarkText(b *testing.B) {
	r, _ := New("text", io.Discard, io.Discard)
	ev := &events.StateChange{Header: header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"),
		Old: events.StateSynSent, New: events.StateEstablished, PrevState: time.Millisecond, PrevStateKnown: true}
	b.ReportAllocs()
	for b.Loop() {
		r.Event(ev)
	}
	r.Flush()
}

func TestTextTimewait(t *testing.T) {
	var out bytes.Buffer
	r, _ := New("text", &out, io.Discard)
	r.(*Text).loc = time.UTC
	h := header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl")
	for _, ev := range []events.Event{
		&events.TimewaitSubstate{Header: h, Old: events.StateFinWait2, New: events.StateTimeWait, Timeout: time.Minute,
			TimeoutKnown: true, TimeKnown: true, Within: 64 * time.Microsecond, Inferred: true, DerivedFrom: "the timer"},
		&events.TimewaitSubstate{Header: h, Old: events.StateFinWait2, New: events.StateTimeWait, Inferred: true, DerivedFrom: "x"},
		&events.TimewaitEnd{Header: h, Substate: events.StateFinWait2, Cause: events.CauseRSTAnswer, RSTAnswerReason: "TCP_TIMEWAIT_SOCKET"},
		&events.TimewaitRSTIgnored{Header: h, Substate: events.StateTimeWait, AliveFor: time.Second, PeerRSTReason: "TCP_FLAGS"},
	} {
		if err := r.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	r.Flush()
	for _, want := range []string{
		"TIME_WAIT socket moved FIN_WAIT2 -> TIME_WAIT, timer 60.0 s (inferred: within 0.064 ms after this time, from the timer)",
		"TIME_WAIT socket moved FIN_WAIT2 -> TIME_WAIT (inferred: time unknown; x)",
		"TIME_WAIT socket ended: rst_answer, substate FIN_WAIT2 (it sent an RST, reason TCP_TIMEWAIT_SOCKET)",
		"TIME_WAIT socket lived on after the peer's RST for its 4-tuple (",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}

// A finding told in full shows its id; a repeat is one line naming it; a
// roll-up counts a namespace's findings of a kind.
func TestTextFindings(t *testing.T) {
	var out bytes.Buffer
	r, _ := New("text", &out, io.Discard)
	r.(*Text).loc = time.UTC
	h := header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl")
	for _, ev := range []events.Event{
		&events.Finding{Header: h, Kind: "timewait_connect_reuse", ID: 12, Message: "An outgoing connect() took over."},
		&events.Finding{Header: h, Kind: "timewait_connect_reuse", ID: 4000, See: 12, Count: 1234567},
		&events.FindingSummary{Header: events.Header{Time: at, Netns: 4026531840}, Kind: "timewait_connect_reuse",
			Since: at.Add(-10 * time.Second), Count: 1234, ExampleCookie: 8193},
		&events.FindingSummary{Header: events.Header{Time: at, Netns: 4026531840}, Kind: "timewait_overflow",
			Since: at.Add(-time.Second), Count: 1, ExampleCookie: 8194},
	} {
		if err := r.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	r.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for i, want := range []string{
		"127.0.0.1:9000         timewait_connect_reuse #12",
		"    An outgoing connect() took over.",
		"127.0.0.1:9000         timewait_connect_reuse (same as finding #12, 1,234,567 so far)",
		"-                      timewait_connect_reuse: 1,234 findings in 10.0 s in netns 4026531840 (e.g. cookie 8193)",
		"-                      timewait_overflow: 1 finding in 1000 ms in netns 4026531840 (e.g. cookie 8194)",
	} {
		if i+1 >= len(lines) || !strings.HasSuffix(lines[i+1], want) {
			t.Errorf("line %d does not end %q:\n%s", i+2, want, out.String())
		}
	}
}

// A summary tells how its connection closed, in words.
func TestTextClose(t *testing.T) {
	var out bytes.Buffer
	r, _ := New("text", &out, io.Discard)
	r.(*Text).loc = time.UTC
	h := header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl")
	history := []events.Phase{{State: events.StateEstablished, Duration: time.Second, DurationKnown: true}}
	for _, ev := range []events.Event{
		&events.Summary{Header: h, History: history, End: "timewait_expired", ClosedBy: "local",
			Close: events.Close{Shape: events.ShapeFourSegment, FirstFIN: "local", HalfClose: 2 * time.Millisecond, HalfCloseKnown: true,
				HalfCloseWithin: time.Millisecond}},
		&events.Summary{Header: h, History: history, End: "reset", ResetsSent: 1,
			Close: events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleLingerZero,
				ResetReason: "TCP_STATE", Counter: "TcpExt.TCPAbortOnData", Inferred: true, InferredFrom: "the destroy"}},
	} {
		if err := r.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	r.Flush()
	for _, want := range []string{
		"ESTABLISHED 1000 ms [timewait_expired; closed by local; this side sent the first FIN; the peer ACKed it and sent " +
			"its own FIN 2 ms to 3 ms later (four-segment close)]",
		"ESTABLISHED 1000 ms [reset; abortive close in ESTABLISHED: close() with SO_LINGER {1, 0} resets the connection " +
			"instead of sending a FIN, RST reason TCP_STATE, counted in TcpExt.TCPAbortOnData (inferred from the destroy); 1 RSTs sent]",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}

// The container column appears, under a header written again, with the
// first event whose owner runs in a container, and stays.
func TestTextContainerColumn(t *testing.T) {
	var out bytes.Buffer
	r, _ := New("text", &out, io.Discard)
	r.(*Text).loc = time.UTC
	inContainer := header("10.0.0.2:41000", "10.0.0.9:80", 31, "app")
	inContainer.Owner.Cgroup = &events.Cgroup{Path: "/docker/3f4e5d6c7b8a9988", ContainerID: "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899", Runtime: "docker"}
	for _, h := range []events.Header{header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl"), inContainer, header("127.0.0.1:35900", "127.0.0.1:9000", 5922, "curl")} {
		if err := r.Event(&events.StateChange{Header: h, Old: events.StateSynSent, New: events.StateEstablished}); err != nil {
			t.Fatal(err)
		}
	}
	r.Flush()
	want := `TIME             EVENT              PID      COMM             LOCAL                  REMOTE                 DETAIL
18:38:21.343312  state              5922     curl             127.0.0.1:35900        127.0.0.1:9000         SYN_SENT -> ESTABLISHED
TIME             EVENT              PID      COMM             CONTAINER     LOCAL                  REMOTE                 DETAIL
18:38:21.343312  state              31       app              3f4e5d6c7b8a  10.0.0.2:41000         10.0.0.9:80            SYN_SENT -> ESTABLISHED
18:38:21.343312  state              5922     curl             -             127.0.0.1:35900        127.0.0.1:9000         SYN_SENT -> ESTABLISHED
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
