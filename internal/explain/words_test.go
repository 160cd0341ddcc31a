package explain

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// The tests here change a finding's evidence, or the sysctls it quotes,
// and check that its words follow: what they must say, and what would
// contradict the evidence.

// unreadable is a namespace whose sysctls cannot be read (it is gone).
func unreadable(uint32) (sysctl.Snapshot, error) {
	return sysctl.Snapshot{}, errors.New("no such namespace")
}

// findingOf is the finding of kind that ev calls for, nil if none.
func findingOf(t *testing.T, src SysctlSource, ev events.Event, kind events.FindingKind) *events.Finding {
	t.Helper()
	for _, f := range New(src).Explain(ev) {
		if f := f.(*events.Finding); f.Kind == kind {
			return f
		}
	}
	return nil
}

func checkWords(t *testing.T, msg string, says, not []string) {
	t.Helper()
	for _, w := range says {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q:\n%s", w, msg)
		}
	}
	for _, w := range not {
		if strings.Contains(msg, w) {
			t.Errorf("message says %q against its evidence:\n%s", w, msg)
		}
	}
}

func ms(v ...int) []time.Duration {
	var out []time.Duration
	for _, n := range v {
		out = append(out, time.Duration(n)*time.Millisecond)
	}
	return out
}

// The words of a timeout abort follow its evidence: counts, waits, and
// the backoff they show.
func TestTimeoutAbortWords(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ev        events.TimeoutAbort
		says, not []string
		backoff   string
	}{
		{"SYN, two retransmissions, one wait", events.TimeoutAbort{Timer: "syn", Rule: "tcp_syn_retries", Probes: 2, Sent: 2, Intervals: ms(1020)},
			[]string{"retransmitted 2 times", "(1020 ms apart)", "tcp_syn_retries (absent on this kernel)"},
			[]string{"exponential", "3 times", "<nil>"}, ""},
		{"SYN, linear", events.TimeoutAbort{Timer: "syn", Rule: "tcp_syn_retries", Probes: 3, Sent: 3, Intervals: ms(1000, 1000)},
			[]string{"retransmitted 3 times", "a fixed interval (linear"}, []string{"exponential backoff"}, "linear"},
		{"SYN, linear then exponential", events.TimeoutAbort{Timer: "syn", Rule: "tcp_syn_retries", Probes: 6, Sent: 6, Intervals: ms(1000, 1000, 1000, 2000, 4000)},
			[]string{"first at a fixed interval, then doubling (tcp_syn_linear_timeouts)"}, []string{"thin-stream"}, "linear_then_exponential"},
		{"retransmissions, linear then exponential: a thin stream", events.TimeoutAbort{Timer: "retransmit", Rule: "tcp_retries2", Probes: 8, Sent: 8,
			Intervals: ms(200, 200, 200, 200, 200, 200, 400, 800)},
			[]string{"first at a fixed interval, then doubling (thin-stream linear timeouts"}, []string{"tcp_syn_linear_timeouts"}, "linear_then_exponential"},
		{"SYN, once", events.TimeoutAbort{Timer: "syn", Rule: "tcp_syn_retries", Probes: 1, Sent: 1},
			[]string{"retransmitted once"}, []string{"apart"}, ""},
		{"one retransmission", events.TimeoutAbort{Timer: "retransmit", Rule: "tcp_retries2", Probes: 1, Sent: 1},
			[]string{"after 1 retransmission timeout over", "tcp_retries2 (absent on this kernel)"}, []string{"timeouts", "<nil>"}, ""},
		{"RTO clamped", events.TimeoutAbort{Timer: "retransmit", Rule: "tcp_retries2", Probes: 5, Sent: 5, Intervals: ms(30000, 60000, 120000, 120000)},
			[]string{"after 5 retransmission timeouts", "doubling, then clamped"}, []string{"twice the one before"}, "clamped"},
		{"keepalive, one probe allowed", events.TimeoutAbort{Timer: "keepalive", Rule: "keepalive_probes", Probes: 1, Sent: 1,
			Settings: events.ResolvedKeepalive{Idle: time.Second, Interval: time.Second, Probes: 1, Source: "sysctl"}},
			[]string{"when one of them got no answer", "all from the sysctls"}, []string{"1 of them in a row"}, ""},
		{"keepalive, three probes", events.TimeoutAbort{Timer: "keepalive", Rule: "keepalive_probes", Probes: 3, Sent: 3,
			Settings: events.ResolvedKeepalive{Idle: time.Second, Interval: time.Second, Probes: 3, Source: "mixed"}},
			[]string{"when 3 of them in a row got no answer", "partly set on the socket"}, []string{"one of them"}, ""},
		{"zero window under TCP_USER_TIMEOUT, probes ACKed", events.TimeoutAbort{Timer: "zero_window", Rule: "user_timeout", Probes: 1, Sent: 4,
			Intervals: ms(200, 400, 800, 1000)},
			[]string{"sent 4 zero-window probes", "ACKed 3 of them with its window still 0", "(1 at the end)", "doubling, then clamped"},
			[]string{"0 probes", "doubles"}, "clamped"},
		{"zero window, none answered", events.TimeoutAbort{Timer: "zero_window", Rule: "tcp_retries2", Probes: 3, Sent: 3, Intervals: ms(200, 400, 800)},
			[]string{"sent 3 zero-window probes", "none answered", "exponential backoff"}, []string{"ACKed"}, "exponential"},
		{"zero window, the last wait cut by TCP_USER_TIMEOUT", events.TimeoutAbort{Timer: "zero_window", Rule: "user_timeout", Probes: 0, Sent: 4,
			Intervals: ms(416, 832, 1664, 8)},
			[]string{"416 ms, 832 ms, 1664 ms, 8 ms apart: doubling, then clamped", "ACKed 4 of them"}, []string{"twice the one before"}, "clamped"},
		{"irregular", events.TimeoutAbort{Timer: "retransmit", Rule: "tcp_retries2", Probes: 3, Sent: 3, Intervals: ms(200, 900, 300)},
			[]string{"neither fixed nor doubling"}, nil, "irregular"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ev
			e.Header = header("10.0.0.1:40000", "10.0.0.2:80")
			got := New(source(nil)).Explain(&e)
			if len(got) != 1 {
				t.Fatalf("%d findings", len(got))
			}
			f := got[0].(*events.Finding)
			checkWords(t, f.Message, tc.says, tc.not)
			if backoff, _ := f.Evidence["backoff"].(string); backoff != tc.backoff || f.Evidence["sent"] != e.Sent {
				t.Errorf("evidence backoff %v sent %v, want %q %d", f.Evidence["backoff"], f.Evidence["sent"], tc.backoff, e.Sent)
			}
		})
	}
}

// A SYN accepted in TIME_WAIT: which RFC 6191 test let it through, as far
// as the sequence numbers and timestamps seen tell; seen or inferred; the
// new connection established or not; the sysctls as read.
func TestSynReuseWords(t *testing.T) {
	on := source(map[string]string{"net.ipv4.tcp_timestamps": "1"})
	seq := func(syn, last uint32) (events.SynInfo, events.SynInfo) {
		return events.SynInfo{Seq: syn, SeqKnown: true}, events.SynInfo{Seq: last, SeqKnown: true}
	}
	withTS := func(syn, last events.SynInfo, synTS, lastTS uint32) (events.SynInfo, events.SynInfo) {
		syn.TSVal, syn.TSValKnown, last.TSVal, last.TSValKnown = synTS, true, lastTS, true
		return syn, last
	}
	for _, tc := range []struct {
		name      string
		src       SysctlSource
		edit      func(e *events.TimewaitEnd)
		says, not []string
	}{
		{"seen, the sequence number after rcv_nxt", on, func(e *events.TimewaitEnd) {
			e.Syn, e.Last = withTS(events.SynInfo{Seq: 2000, SeqKnown: true}, events.SynInfo{Seq: 1000, SeqKnown: true}, 5000, 800)
		}, []string{"210ms old", "accepted the new connection", "sequence number 2000 was after rcv_nxt 1000, which is enough"},
			[]string{"infers", "not seen established", "NOT after", "reads 0 now"}},
		{"inferred, the timestamp newer", on, func(e *events.TimewaitEnd) {
			e.Inferred, e.InferredFrom = true, "TIME_WAIT timer stopped early, then a connection on the same 4-tuple was accepted (cookie 10)"
			e.Syn, e.Last = withTS(events.SynInfo{Seq: 10, SeqKnown: true}, events.SynInfo{Seq: 1000, SeqKnown: true}, 5000, 800)
		}, []string{"tcptrace infers this from what it saw: TIME_WAIT timer stopped early", "10 was NOT after rcv_nxt 1000",
			"timestamp 5000 was newer than the old connection's 800, and that decided it"},
			[]string{"which is enough"}},
		{"neither held as seen", on, func(e *events.TimewaitEnd) {
			e.Syn, e.Last = withTS(events.SynInfo{Seq: 10, SeqKnown: true}, events.SynInfo{Seq: 1000, SeqKnown: true}, 700, 800)
		}, []string{"neither held as seen", "timestamp 700 was not newer than the old connection's 800", "what let it through is unknown"},
			[]string{"decided it", "which is enough"}},
		{"sequence number not after, timestamps unseen", on, func(e *events.TimewaitEnd) {
			e.Syn, e.Last = seq(10, 1000)
		}, []string{"10 was not after rcv_nxt 1000", "its timestamp presumably decided it"}, []string{"was newer", "which is enough"}},
		{"timestamp newer, sequence numbers unseen", on, func(e *events.TimewaitEnd) {
			e.Syn, e.Last = withTS(events.SynInfo{}, events.SynInfo{}, 5000, 800)
		}, []string{"timestamp 5000 was newer than the old connection's 800, which is enough", "sequence numbers were not seen"},
			[]string{"Which of the two held was not seen", "rcv_nxt 0"}},
		{"timestamp not newer, sequence numbers unseen", on, func(e *events.TimewaitEnd) {
			e.Syn, e.Last = withTS(events.SynInfo{}, events.SynInfo{}, 700, 800)
		}, []string{"timestamp 700 was not newer", "sequence number (not seen) was presumably after rcv_nxt"}, []string{"which is enough"}},
		{"nothing compared, never established, history dropped", on, func(e *events.TimewaitEnd) {
			e.Successor, e.AgeKnown, e.HistoryDropped = 0, false, true
		}, []string{"Which of the two held was not seen", "the new connection was not seen established",
			"tcptrace had dropped its history"}, []string{"accepted the new connection", "210ms"}},
		{"timestamps off now, tcp_tw_recycle present", source(map[string]string{"net.ipv4.tcp_timestamps": "0", "net.ipv4.tcp_tw_recycle": "0"}),
			func(e *events.TimewaitEnd) { e.Syn, e.Last = seq(2000, 1000) },
			[]string{"net.ipv4.tcp_timestamps reads 0 now", "net.ipv4.tcp_tw_recycle is 0 on this kernel"}, []string{"plays no part"}},
		{"sysctls unreadable", unreadable, func(e *events.TimewaitEnd) { e.Syn, e.Last = seq(2000, 1000) },
			[]string{"net.ipv4.tcp_tw_recycle plays no part: Linux removed it in 4.12."},
			[]string{"does not exist on this kernel", "tcp_timestamps reads"}},
		{"records lost", on, func(e *events.TimewaitEnd) { e.Incomplete = true },
			[]string{"Records were lost while this socket was traced"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &events.TimewaitEnd{Header: header("10.0.0.2:80", "10.0.0.1:40000"), Cause: events.CauseSynAccepted,
				Substate: events.StateTimeWait, Age: 210 * time.Millisecond, AgeKnown: true, Successor: 10}
			tc.edit(e)
			f := findingOf(t, tc.src, e, "timewait_syn_reuse")
			if f == nil {
				t.Fatal("no timewait_syn_reuse finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
		})
	}
}

// connect() taking a TIME_WAIT socket over: which rule let it (a bound
// port, or tcp_tw_reuse and its delay against the socket's age), on
// loopback or not, inferred, with the sysctls as read.
func TestConnectReuseWords(t *testing.T) {
	reuse := func(v string) SysctlSource {
		return source(map[string]string{"net.ipv4.tcp_tw_reuse": v, "net.ipv4.tcp_tw_reuse_delay": "1000", "net.ipv4.tcp_timestamps": "1"})
	}
	for _, tc := range []struct {
		name          string
		src           SysctlSource
		local, remote string
		edit          func(e *events.TimewaitEnd)
		says, not     []string
		loopback      bool
	}{
		{"bound port", reuse("2"), "127.0.0.1:40000", "127.0.0.1:80", func(e *events.TimewaitEnd) { e.SuccessorBoundPort = true },
			[]string{"bound its port before connect()", "whatever tcp_tw_reuse says",
				"tcptrace infers this from what it saw: TIME_WAIT timer stopped early, then connect()"},
			[]string{"tcp_tw_reuse_delay", "tcp_tw_reuse decided"}, true},
		{"loopback, older than the delay", reuse("2"), "127.0.0.1:40000", "127.0.0.1:80", func(e *events.TimewaitEnd) { e.Age = 2 * time.Second },
			[]string{"tcp_tw_reuse = 2: reuse for loopback connections only, and this one is on loopback",
				"older than tcp_tw_reuse_delay (1000 ms), and it was."}, []string{"yet it was only", "bound its port"}, true},
		{"younger than the delay", reuse("2"), "127.0.0.1:40000", "127.0.0.1:80", nil,
			[]string{"yet it was only 13ms old", "what allowed the reuse is unknown"}, []string{"and it was."}, true},
		{"age unknown", reuse("2"), "127.0.0.1:40000", "127.0.0.1:80", func(e *events.TimewaitEnd) { e.AgeKnown = false },
			[]string{"of unknown age (it existed before tracing started)", "older than tcp_tw_reuse_delay (1000 ms)."},
			[]string{"and it was.", "yet it was only"}, true},
		{"a kernel without tcp_tw_reuse_delay", source(map[string]string{"net.ipv4.tcp_tw_reuse": "1"}), "10.0.0.1:40000", "10.0.0.2:80", nil,
			[]string{"tcp_tw_reuse = 1: reuse for any destination", "this kernel has no tcp_tw_reuse_delay"},
			[]string{"tcp_tw_reuse_delay (", "yet it was only"}, false},
		{"tcp_tw_reuse = 2 off loopback", reuse("2"), "10.0.0.1:40000", "10.0.0.2:80", func(e *events.TimewaitEnd) { e.Age = 2 * time.Second },
			[]string{"neither address is a loopback one", "bound to the lo device"}, []string{"this one is on loopback"}, false},
		{"one loopback address is enough for the kernel", reuse("2"), "127.0.0.1:40000", "10.0.0.2:80", func(e *events.TimewaitEnd) { e.Age = 2 * time.Second },
			[]string{"this one is on loopback"}, []string{"neither address"}, true},
		{"tcp_tw_reuse = 0", reuse("0"), "10.0.0.1:40000", "10.0.0.2:80", func(e *events.TimewaitEnd) { e.Age = 2 * time.Second },
			[]string{"tcp_tw_reuse = 0, which should have forbidden reuse"}, []string{"reuse for any destination"}, false},
		{"timestamps off now", source(map[string]string{"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_timestamps": "0"}), "10.0.0.1:40000", "10.0.0.2:80", nil,
			[]string{"net.ipv4.tcp_timestamps reads 0 now"}, nil, false},
		{"sysctls unreadable", unreadable, "10.0.0.1:40000", "10.0.0.2:80", nil,
			[]string{"tcp_tw_reuse: could not be read", "Linux removed it in 4.12."},
			[]string{"does not exist on this kernel", "absent"}, false},
		{"records lost", reuse("1"), "10.0.0.1:40000", "10.0.0.2:80", func(e *events.TimewaitEnd) { e.Incomplete = true },
			[]string{"Records were lost"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &events.TimewaitEnd{Header: header(tc.local, tc.remote), Cause: events.CauseConnectReuse,
				Substate: events.StateTimeWait, Age: 13 * time.Millisecond, AgeKnown: true, Successor: 11, Inferred: true,
				InferredFrom: "TIME_WAIT timer stopped early, then connect() on the same 4-tuple (cookie 11)"}
			if tc.edit != nil {
				tc.edit(e)
			}
			f := findingOf(t, tc.src, e, "timewait_connect_reuse")
			if f == nil {
				t.Fatal("no timewait_connect_reuse finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
			if f.Evidence["loopback"] != tc.loopback {
				t.Errorf("evidence loopback %v, want %v", f.Evidence["loopback"], tc.loopback)
			}
		})
	}
}

// An RST that ended a TIME_WAIT socket: from the peer or not seen leaving
// it, in substate TIME_WAIT (tcp_rfc1337 as read decides the words) or
// FIN_WAIT2 (it does not matter).
func TestRSTKillWords(t *testing.T) {
	rfc1337 := func(v string) SysctlSource { return source(map[string]string{"net.ipv4.tcp_rfc1337": v}) }
	for _, tc := range []struct {
		name      string
		src       SysctlSource
		edit      func(e *events.TimewaitEnd)
		says, not []string
	}{
		{"the peer's RST, tcp_rfc1337 = 0", rfc1337("0"), func(e *events.TimewaitEnd) { e.PeerRST, e.PeerRSTReason = true, "TCP_FLAGS" },
			[]string{"An RST from the peer (seen leaving it, reason TCP_FLAGS)", "instead of the 60 s",
				"because net.ipv4.tcp_rfc1337 is 0", "RFC 1337", "1s old"},
			[]string{"received on its 4-tuple", "reads", "FIN_WAIT2"}},
		{"an RST not seen leaving the peer, tcp_rfc1337 reads 1 now", rfc1337("1"), nil,
			[]string{"An RST received on its 4-tuple", "so net.ipv4.tcp_rfc1337 was 0 then: it reads 1 now"},
			[]string{"from the peer", "tcp_rfc1337 is 0"}},
		{"tcp_rfc1337 unreadable", unreadable, nil,
			[]string{"which the kernel does only while net.ipv4.tcp_rfc1337 is 0 (here: could not be read)"},
			[]string{"because net.ipv4.tcp_rfc1337 is 0", "reads"}},
		{"substate FIN_WAIT2", rfc1337("1"), func(e *events.TimewaitEnd) { e.Substate = events.StateFinWait2 },
			[]string{"still in FIN_WAIT2", "net.ipv4.tcp_fin_timeout", "whatever net.ipv4.tcp_rfc1337 says"},
			[]string{"60 s", "reads 1 now", "RFC 1337", "tcp_rfc1337 is 0"}},
		{"age unknown, records lost", rfc1337("0"), func(e *events.TimewaitEnd) { e.AgeKnown, e.Incomplete = false, true },
			[]string{"of unknown age", "Records were lost"}, []string{"1s old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &events.TimewaitEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Cause: events.CauseRST,
				Substate: events.StateTimeWait, Age: time.Second, AgeKnown: true}
			if tc.edit != nil {
				tc.edit(e)
			}
			f := findingOf(t, tc.src, e, "timewait_rst_kill")
			if f == nil {
				t.Fatal("no timewait_rst_kill finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
		})
	}
}

// The late segment's story: inferred from the peer's RST, or told from the
// segment and the kernel's verdict on it (which says whether an ACK went
// back at all); the RST seen leaving the peer or not; the substate and
// tcp_rfc1337 as read.
func TestLateSegmentWords(t *testing.T) {
	rfc1337 := func(v string) SysctlSource { return source(map[string]string{"net.ipv4.tcp_rfc1337": v}) }
	segment := func(flags uint8, verdict string) *events.TimewaitSegment {
		return &events.TimewaitSegment{Flags: flags, Seq: 1, RcvNxt: 1000, Verdict: verdict}
	}
	const fin, syn, ack = 0x01, 0x02, 0x10
	for _, tc := range []struct {
		name      string
		src       SysctlSource
		edit      func(e *events.TimewaitEnd)
		says, not []string
	}{
		{"inferred from the peer's RST", rfc1337("0"), func(e *events.TimewaitEnd) { e.PeerRST, e.PeerRSTReason = true, "TCP_FLAGS" },
			[]string{"A late segment of the old connection", "tcptrace infers from the peer's RST", "answered it with an ACK",
				"answered that ACK with an RST (seen leaving the peer, reason TCP_FLAGS)", "ended it because net.ipv4.tcp_rfc1337 is 0"},
			[]string{"verdict", "not seen leaving"}},
		{"a SYN no listener took", rfc1337("0"), func(e *events.TimewaitEnd) { e.PeerRST, e.LateSegment = true, segment(syn, "SYN") },
			[]string{"SYN, sequence 1 (its rcv_nxt was 1000), kernel verdict TCP_TW_SYN", "No listener took the SYN",
				"answered that ACK with an RST (seen leaving the peer)"},
			[]string{"infers", "reason"}},
		{"an ACKed segment, the RST not seen leaving the peer", rfc1337("0"), func(e *events.TimewaitEnd) { e.LateSegment = segment(fin|ack, "ACK") },
			[]string{"FIN,ACK, sequence 1", "The TIME_WAIT socket answered it with an ACK", "not seen leaving the peer: presumably its answer"},
			[]string{"whose side of the connection was already gone", "No listener"}},
		{"nothing sent back", rfc1337("0"), func(e *events.TimewaitEnd) { e.PeerRST, e.LateSegment = true, segment(ack, "SUCCESS") },
			[]string{"verdict TCP_TW_SUCCESS", "sent no ACK for it", "what the peer answered is unknown", "because net.ipv4.tcp_rfc1337 is 0"},
			[]string{"answered it with an ACK", "answered that ACK"}},
		{"substate FIN_WAIT2, an out-of-window ACK", rfc1337("0"), func(e *events.TimewaitEnd) {
			e.Substate, e.LateSegment = events.StateFinWait2, segment(ack, "ACK_OOW")
		}, []string{"verdict TCP_TW_ACK_OOW", "answered it with an ACK", "whatever net.ipv4.tcp_rfc1337 says"},
			[]string{"because net.ipv4.tcp_rfc1337 is 0"}},
		{"tcp_rfc1337 reads 1 now, a segment without flags", rfc1337("1"), func(e *events.TimewaitEnd) { e.LateSegment = segment(0, "ACK") },
			[]string{"no flags, sequence 1", "so net.ipv4.tcp_rfc1337 was 0 then: it reads 1 now"}, []string{": , sequence", "is 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &events.TimewaitEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Cause: events.CauseRST,
				Substate: events.StateTimeWait, Age: time.Second, AgeKnown: true}
			tc.edit(e)
			f := findingOf(t, tc.src, e, "late_segment_in_timewait")
			if f == nil {
				t.Fatal("no late_segment_in_timewait finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
		})
	}
	// Neither the peer's RST nor a segment seen: no story to tell.
	e := &events.TimewaitEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Cause: events.CauseRST, Substate: events.StateTimeWait}
	if f := findingOf(t, rfc1337("0"), e, "late_segment_in_timewait"); f != nil {
		t.Errorf("late segment finding without evidence of one: %s", f.Message)
	}
}

// The peer's RST that a TIME_WAIT socket outlived: who sent it, how long it
// lived on, and the tcp_rfc1337 value that explains it; no finding where
// tcp_rfc1337 does not.
func TestRFC1337KeptWords(t *testing.T) {
	rfc1337 := func(v string) SysctlSource { return source(map[string]string{"net.ipv4.tcp_rfc1337": v}) }
	for _, tc := range []struct {
		name      string
		src       SysctlSource
		ev        events.TimewaitRSTIgnored
		says, not []string
	}{
		{"the peer's listener, still alive", rfc1337("1"),
			events.TimewaitRSTIgnored{Substate: events.StateTimeWait, PeerRSTReason: "TCP_FLAGS", AliveFor: 200 * time.Millisecond},
			[]string{"sent by the peer's listener, reason TCP_FLAGS", "still alive 200 ms later",
				"net.ipv4.tcp_rfc1337 = 1 made the kernel ignore it", "is inferred"},
			[]string{"for no socket", "expired"}},
		{"for no socket, until it expired, tcp_rfc1337 = 2", rfc1337("2"),
			events.TimewaitRSTIgnored{Substate: events.StateTimeWait, PeerNoSocket: true, AliveFor: 59800 * time.Millisecond, Ended: events.CauseExpired},
			[]string{"sent by the peer's kernel, for no socket)", "until its timer expired, 59.8 s later",
				"net.ipv4.tcp_rfc1337 = 2 made the kernel ignore it"},
			[]string{"listener", "reason", "still alive", "= 1"}},
		{"tcp_rfc1337 = 0: not delivered or not in window", rfc1337("0"),
			events.TimewaitRSTIgnored{Substate: events.StateTimeWait}, nil, nil},
		{"tcp_rfc1337 unreadable", unreadable, events.TimewaitRSTIgnored{Substate: events.StateTimeWait}, nil, nil},
		{"FIN_WAIT2: an RST in window kills whatever tcp_rfc1337 says", rfc1337("1"),
			events.TimewaitRSTIgnored{Substate: events.StateFinWait2}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ev
			e.Header = header("127.0.0.1:40000", "127.0.0.1:80")
			f := findingOf(t, tc.src, &e, "timewait_rfc1337_kept")
			if tc.says == nil {
				if f != nil {
					t.Errorf("finding where tcp_rfc1337 explains nothing: %s", f.Message)
				}
				return
			}
			if f == nil {
				t.Fatal("no timewait_rfc1337_kept finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
		})
	}
}

// A close without a TIME_WAIT socket: tcp_max_tw_buckets as read at the
// close or now, and the TIME_WAIT sockets tcptrace saw against it.
func TestOverflowWords(t *testing.T) {
	buckets := func(v string) SysctlSource { return source(map[string]string{"net.ipv4.tcp_max_tw_buckets": v}) }
	for _, tc := range []struct {
		name      string
		src       SysctlSource
		ev        events.TimewaitOverflow
		says, not []string
		quoted    any
	}{
		{"a limit of 0", buckets("0"), events.TimewaitOverflow{State: events.StateFinWait2},
			[]string{"closed from FIN_WAIT2", "tcp_max_tw_buckets (0)", "With the limit at 0 no TIME_WAIT socket can be made at all",
				"tcptrace infers this from what it saw: FIN_WAIT2 -> CLOSE"},
			[]string{"tcptrace saw", "when it closed"}, int64(0)},
		{"the limit reached, changed since the close", buckets("0"),
			events.TimewaitOverflow{State: events.StateFinWait2, TimewaitSockets: 3, MaxTWBuckets: 3, MaxTWBucketsKnown: true},
			[]string{"tcp_max_tw_buckets (3 when it closed; it reads 0 now)", "saw 3 TIME_WAIT sockets alive in this namespace then: the limit was reached"},
			[]string{"fewer", "limit at 0"}, int64(3)},
		{"fewer seen than the limit", buckets("5"),
			events.TimewaitOverflow{State: events.StateClosing, TimewaitSockets: 1, MaxTWBuckets: 5, MaxTWBucketsKnown: true},
			[]string{"closed from CLOSING", "tcp_max_tw_buckets (5)", "saw 1 TIME_WAIT socket alive", "fewer than the limit"},
			[]string{"1 TIME_WAIT sockets", "limit was reached", "when it closed"}, int64(5)},
		{"the limit as read now", buckets("2"), events.TimewaitOverflow{State: events.StateFinWait2, TimewaitSockets: 2},
			[]string{"tcp_max_tw_buckets (2)", "saw 2 TIME_WAIT sockets alive in this namespace then: the limit was reached"},
			[]string{"when it closed", "fewer"}, int64(2)},
		{"the limit unknown", unreadable, events.TimewaitOverflow{State: events.StateFinWait2, TimewaitSockets: 2},
			[]string{"tcp_max_tw_buckets (could not be read)", "saw 2 TIME_WAIT sockets alive in this namespace then."},
			[]string{"limit was reached", "fewer", "<nil>", "does not exist on this kernel"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ev
			e.Header = header("10.0.0.1:40000", "10.0.0.2:80")
			e.InferredFrom = string(e.State) + " -> CLOSE at 00:00:00 with no TIME_WAIT socket armed"
			f := findingOf(t, tc.src, &e, "timewait_overflow")
			if f == nil {
				t.Fatal("no timewait_overflow finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
			if got := f.Sysctls["net.ipv4.tcp_max_tw_buckets"]; got != tc.quoted {
				t.Errorf("quotes tcp_max_tw_buckets %v, want %v", got, tc.quoted)
			}
		})
	}
}

// Zero-window probes told from their count, how the episode ended, and the
// waits the persist timer set (the backoff they show).
func TestZeroWindowWords(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ev        events.ZeroWindowEnd
		says, not []string
		backoff   string
	}{
		{"doubling, reopened", events.ZeroWindowEnd{How: "reopened", Probes: 3, Duration: 1800 * time.Millisecond, Intervals: ms(416, 832, 1664)},
			[]string{"sent 3 zero-window probes", "(for 1800 ms, until the peer opened it again)",
				"were 416 ms, 832 ms, 1664 ms: each wait twice the one before (exponential backoff)"},
			[]string{"1 zero-window probe ", "clamped"}, "exponential"},
		{"one probe, aborted", events.ZeroWindowEnd{How: "aborted", Probes: 1, Duration: 500 * time.Millisecond, Intervals: ms(416)},
			[]string{"sent 1 zero-window probe on", "until the connection was aborted", "The wait it set after the probe was 416 ms."},
			[]string{"probes on", "backoff", "waits"}, ""},
		{"clamped, still going when tracing stopped", events.ZeroWindowEnd{How: "tracing_stopped", Probes: 4, Duration: 3 * time.Second,
			Intervals: ms(416, 832, 1664, 8)},
			[]string{"still 0 when tracing stopped", "doubling, then clamped"}, []string{"twice the one before", "until"}, "clamped"},
		{"no waits known, closed", events.ZeroWindowEnd{How: "closed", Probes: 2, Duration: time.Second},
			[]string{"sent 2 zero-window probes", "until the socket closed"}, []string{"wait"}, ""},
		{"fixed, then doubling", events.ZeroWindowEnd{How: "reopened", Probes: 3, Duration: 5 * time.Second, Intervals: ms(1000, 1000, 2000)},
			[]string{"first at a fixed interval, then doubling."}, []string{"tcp_syn_linear_timeouts", "thin-stream"}, "linear_then_exponential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ev
			e.Header = header("10.0.0.1:40000", "10.0.0.2:80")
			f := findingOf(t, source(nil), &e, "zero_window_not_keepalive")
			if f == nil {
				t.Fatal("no zero_window_not_keepalive finding")
			}
			checkWords(t, f.Message, tc.says, tc.not)
			if backoff, _ := f.Evidence["backoff"].(string); backoff != tc.backoff {
				t.Errorf("evidence backoff %v, want %q", f.Evidence["backoff"], tc.backoff)
			}
		})
	}
	// No probe sent: nothing to take for a keepalive.
	if f := findingOf(t, source(nil), &events.ZeroWindowEnd{How: "reopened", Duration: time.Second}, "zero_window_not_keepalive"); f != nil {
		t.Errorf("finding without probes: %s", f.Message)
	}
}

// An abortive close is told by its rule, and says how it is known: the
// kernel's RST reason, or what it is inferred from.
func TestAbortiveCloseWords(t *testing.T) {
	x := New(source(map[string]string{"net.ipv4.tcp_fin_timeout": "60"}))
	h := header("10.0.0.1:40000", "10.0.0.2:80")
	for _, tt := range []struct {
		close   events.Close
		says    []string
		sysctls map[string]any
	}{
		{events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleUnreadData,
			ResetReason: "TCP_ABORT_ON_CLOSE", Counter: "TcpExt.TCPAbortOnClose", SeenFrom: "RST reason TCP_ABORT_ON_CLOSE"},
			[]string{"abortive close in ESTABLISHED", "unread data", "tcptrace saw it: RST reason TCP_ABORT_ON_CLOSE.", "counts it in TcpExt.TCPAbortOnClose"},
			map[string]any{}},
		{events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleLingerZero,
			ResetReason: "TCP_STATE", Counter: "TcpExt.TCPAbortOnData", Inferred: true, InferredFrom: "the destroy with it"},
			[]string{"SO_LINGER with l_onoff 1 and l_linger 0", "tcptrace infers this from what it saw: the destroy with it."},
			map[string]any{}},
		{events.Close{Shape: events.ShapeAbort, State: events.StateFinWait2, Rule: events.RuleLinger2,
			ResetReason: "TCP_ABORT_ON_LINGER", Counter: "TcpExt.TCPAbortOnLinger"},
			[]string{"TCP_LINGER2 was set below 0", "in FIN_WAIT2"},
			map[string]any{"net.ipv4.tcp_fin_timeout": int64(60)}},
		{events.Close{Shape: events.ShapeAbort, State: events.StateEstablished, Rule: events.RuleDisconnect,
			ResetReason: "TCP_STATE", Inferred: true, InferredFrom: "no destroy"},
			[]string{"connect(AF_UNSPEC)", "tcptrace infers this"},
			map[string]any{}},
	} {
		fs := x.Explain(&events.Summary{Header: h, End: "reset", Close: tt.close})
		if len(fs) != 1 {
			t.Fatalf("%s: %d findings, want 1", tt.close.Rule, len(fs))
		}
		f := fs[0].(*events.Finding)
		for _, s := range tt.says {
			if f.Kind != "abortive_close" || !strings.Contains(f.Message, s) {
				t.Errorf("%s: %s %q lacks %q", tt.close.Rule, f.Kind, f.Message, s)
			}
		}
		if f.Evidence["rule"] != tt.close.Rule || !reflect.DeepEqual(f.Sysctls, tt.sysctls) {
			t.Errorf("%s: evidence %v, sysctls %v", tt.close.Rule, f.Evidence, f.Sysctls)
		}
	}
	// No rule, no finding: the evidence names no cause.
	if fs := x.Explain(&events.Summary{Header: h, Close: events.Close{Shape: events.ShapeAbort, ResetReason: "TCP_FLAGS"}}); len(fs) != 0 {
		t.Errorf("findings %v for an abort with no rule", fs)
	}
}
