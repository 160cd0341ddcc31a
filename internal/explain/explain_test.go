package explain

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// source serves one namespace's sysctls from a table; a name not in it is
// absent from the kernel, as tcp_tw_recycle is since 4.12.
func source(values map[string]string) SysctlSource {
	return func(uint32) (sysctl.Snapshot, error) {
		var snap sysctl.Snapshot
		for _, s := range sysctl.Known {
			v, ok := values[string(s.Name)]
			snap.Values = append(snap.Values, sysctl.Value{Sysctl: s, Raw: v, Present: ok})
		}
		return snap, nil
	}
}

func header(local, remote string) events.Header {
	return events.Header{Time: time.Unix(0, 0), Cookie: 9, Family: 4, Netns: 1,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
}

func TestFindings(t *testing.T) {
	defaults := map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_tw_reuse_delay": "1000",
		"net.ipv4.tcp_timestamps": "1", "net.ipv4.tcp_rfc1337": "0", "net.ipv4.tcp_max_tw_buckets": "0"}
	tests := []struct {
		name    string
		values  map[string]string
		ev      events.Event
		kind    events.FindingKind
		says    []string
		sysctls map[string]any
	}{
		// Seed 003: seq 3145977016 is not after rcv_nxt 4008801888 (mod 2^32), the timestamp decides.
		{"SYN accepted for its timestamp", defaults,
			&events.TimewaitEnd{Header: header("10.0.0.2:80", "10.0.0.1:40000"), Cause: events.CauseSynAccepted,
				Age: 17 * time.Second, AgeKnown: true, Inferred: true, InferredFrom: "x", Successor: 10,
				Syn:  events.SynInfo{Seq: 3145977016, SeqKnown: true, TSVal: 5000, TSValKnown: true},
				Last: events.SynInfo{Seq: 4008801888, SeqKnown: true, TSVal: 800, TSValKnown: true}},
			"timewait_syn_reuse",
			[]string{"17s old", "RFC 6191", "3145977016 was NOT after rcv_nxt 4008801888", "timestamp 5000 was newer",
				"tcp_tw_recycle plays no part: it does not exist"},
			map[string]any{"net.ipv4.tcp_timestamps": int64(1), "net.ipv4.tcp_tw_recycle": nil}},
		{"SYN accepted for its sequence number, without timestamps", map[string]string{"net.ipv4.tcp_timestamps": "0", "net.ipv4.tcp_tw_recycle": "0"},
			&events.TimewaitEnd{Header: header("10.0.0.2:80", "10.0.0.1:40000"), Cause: events.CauseSynAccepted,
				Syn:  events.SynInfo{Seq: 10, SeqKnown: true},
				Last: events.SynInfo{Seq: 4294967290, SeqKnown: true}},
			"timewait_syn_reuse",
			[]string{"of unknown age", "sequence number 10 was after rcv_nxt 4294967290", "tcp_timestamps reads 0 now", "tcp_tw_recycle is 0 on this kernel"},
			map[string]any{"net.ipv4.tcp_timestamps": int64(0), "net.ipv4.tcp_tw_recycle": int64(0)}},
		{"connect() reuse on loopback", defaults,
			&events.TimewaitEnd{Header: header("127.0.0.1:40000", "127.0.0.1:80"), Cause: events.CauseConnectReuse,
				Age: 2 * time.Second, AgeKnown: true},
			"timewait_connect_reuse",
			[]string{"tcp_tw_reuse = 2: reuse for loopback connections only, and this one is on loopback", "tcp_tw_reuse_delay (1000 ms)"},
			map[string]any{"net.ipv4.tcp_tw_reuse": int64(2)}},
		{"connect() reuse, its history dropped (--max-sockets)", defaults,
			&events.TimewaitEnd{Header: header("127.0.0.1:40000", "127.0.0.1:80"), Cause: events.CauseConnectReuse,
				HistoryDropped: true},
			"timewait_connect_reuse", []string{"of unknown age (tcptrace had dropped its history"}, nil},
		{"connect() reuse of a bound port", defaults,
			&events.TimewaitEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Cause: events.CauseConnectReuse,
				SuccessorBoundPort: true},
			"timewait_connect_reuse", []string{"bound its port before connect()"}, nil},
		{"RST kill", defaults,
			&events.TimewaitEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Cause: events.CauseRST, Age: time.Second, AgeKnown: true},
			"timewait_rst_kill", []string{"net.ipv4.tcp_rfc1337 is 0", "1s old"},
			map[string]any{"net.ipv4.tcp_rfc1337": int64(0)}},
		{"keepalive abort", defaults,
			&events.TimeoutAbort{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Timer: "keepalive", Rule: "keepalive_probes",
				Probes: 3, Elapsed: 3 * time.Second, Settings: events.ResolvedKeepalive{Idle: time.Second, Interval: time.Second, Probes: 3, Source: "socket"}},
			"keepalive_timeout", []string{"3 of them in a row got no answer", "set on the socket (TCP_KEEPIDLE"}, nil},
		{"user timeout", defaults,
			&events.TimeoutAbort{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Timer: "zero_window", Rule: "user_timeout", Probes: 4},
			"user_timeout", []string{"TCP_USER_TIMEOUT", "zero_window timer"}, nil},
		{"retransmission abort", map[string]string{"net.ipv4.tcp_retries2": "3"},
			&events.TimeoutAbort{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Timer: "retransmit", Rule: "tcp_retries2", Probes: 4, Sent: 4,
				Intervals: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}},
			"retransmit_timeout", []string{"after 4 retransmission timeouts", "(200 ms, 400 ms, 800 ms apart: each wait twice the one before (exponential backoff))", "tcp_retries2 (3)"},
			map[string]any{"net.ipv4.tcp_retries2": int64(3)}},
		{"SYN retries", map[string]string{"net.ipv4.tcp_syn_retries": "1"},
			&events.TimeoutAbort{Header: header("10.0.0.1:40000", "10.0.0.2:80"), Timer: "syn", Rule: "tcp_syn_retries", Probes: 2},
			"retransmit_timeout", []string{"connect() to 10.0.0.2:80 failed", "tcp_syn_retries (1)"}, nil},
		{"zero window", defaults,
			&events.ZeroWindowEnd{Header: header("10.0.0.1:40000", "10.0.0.2:80"), How: "reopened", Probes: 3,
				Duration: 1800 * time.Millisecond, Intervals: []time.Duration{416 * time.Millisecond, 832 * time.Millisecond, 1664 * time.Millisecond}},
			"zero_window_not_keepalive", []string{"not the keepalive timer", "SND.UNA-1", "416 ms, 832 ms, 1664 ms", "played no part"}, nil},
		{"tcp_rfc1337 = 1 kept the TIME_WAIT alive", map[string]string{"net.ipv4.tcp_rfc1337": "1"},
			&events.TimewaitRSTIgnored{Header: header("127.0.0.1:40000", "127.0.0.1:80"), Substate: events.StateTimeWait,
				PeerRSTReason: "TCP_FLAGS", AliveFor: 200 * time.Millisecond},
			"timewait_rfc1337_kept", []string{"net.ipv4.tcp_rfc1337 = 1 made the kernel ignore it", "the peer's listener, reason TCP_FLAGS",
				"still alive 200 ms later"},
			map[string]any{"net.ipv4.tcp_rfc1337": int64(1)}},
		{"overflow", defaults,
			&events.TimewaitOverflow{Header: header("10.0.0.1:40000", "10.0.0.2:80"), State: events.StateFinWait2, TimewaitSockets: 0},
			"timewait_overflow", []string{"tcp_max_tw_buckets (0)", "closed from FIN_WAIT2"},
			map[string]any{"net.ipv4.tcp_max_tw_buckets": int64(0)}},
		{"overflow quotes tcp_max_tw_buckets as read at the close", defaults,
			&events.TimewaitOverflow{Header: header("10.0.0.1:40000", "10.0.0.2:80"), State: events.StateFinWait2, TimewaitSockets: 3,
				MaxTWBuckets: 3, MaxTWBucketsKnown: true},
			"timewait_overflow", []string{"tcp_max_tw_buckets (3 when it closed; it reads 0 now)", "saw 3 TIME_WAIT sockets"},
			map[string]any{"net.ipv4.tcp_max_tw_buckets": int64(3)}},
		{"overflow, tcp_max_tw_buckets unchanged since the close", defaults,
			&events.TimewaitOverflow{Header: header("10.0.0.1:40000", "10.0.0.2:80"), State: events.StateClosing,
				MaxTWBuckets: 0, MaxTWBucketsKnown: true},
			"timewait_overflow", []string{"tcp_max_tw_buckets (0) of them", "closed from CLOSING"},
			map[string]any{"net.ipv4.tcp_max_tw_buckets": int64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New(source(tt.values)).Explain(tt.ev)
			if len(got) != 1 {
				t.Fatalf("%d findings, want 1", len(got))
			}
			f := got[0].(*events.Finding)
			if f.Kind != tt.kind {
				t.Errorf("kind %s, want %s", f.Kind, tt.kind)
			}
			for _, s := range tt.says {
				if !strings.Contains(f.Message, s) {
					t.Errorf("message lacks %q:\n%s", s, f.Message)
				}
			}
			for k, v := range tt.sysctls {
				if got, ok := f.Sysctls[k]; !ok || got != v {
					t.Errorf("sysctl %s = %v (present %v), want %v", k, got, ok, v)
				}
			}
		})
	}
}

func TestNoFinding(t *testing.T) {
	x := New(source(map[string]string{"net.ipv4.tcp_rfc1337": "0"}))
	for _, ev := range []events.Event{
		&events.TimewaitEnd{Header: header("10.0.0.1:1", "10.0.0.2:2"), Cause: events.CauseExpired},
		&events.StateChange{Header: header("10.0.0.1:1", "10.0.0.2:2")},
		// Only tcp_rfc1337 = 1 explains an RST that did not kill: with 0
		// (or unreadable) it was not delivered or not in window.
		&events.TimewaitRSTIgnored{Header: header("10.0.0.1:1", "10.0.0.2:2")},
		&events.TimewaitEnd{Header: header("10.0.0.1:1", "10.0.0.2:2"), Cause: events.CauseRSTAnswer},
	} {
		if got := x.Explain(ev); len(got) != 0 {
			t.Errorf("%T gave findings %+v", ev, got)
		}
	}
}

// One explainer says for each connect() reuse what a fresh one would, its
// reasons made once per namespace and kind of connection; not before the
// namespace's sysctls could be read.
func TestConnectReuseReasons(t *testing.T) {
	values := map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_timestamps": "1"}
	readable := false
	flaky := func(netns uint32) (sysctl.Snapshot, error) {
		if !readable {
			return sysctl.Snapshot{}, errors.New("no such namespace yet")
		}
		return source(values)(netns)
	}
	reuse := func(local, remote string, bound bool) *events.TimewaitEnd {
		return &events.TimewaitEnd{Header: header(local, remote), Cause: events.CauseConnectReuse, SuccessorBoundPort: bound}
	}
	x := New(flaky)
	if msg := x.Explain(reuse("127.0.0.1:1", "127.0.0.1:2", false))[0].(*events.Finding).Message; !strings.Contains(msg, "could not be read") {
		t.Errorf("sysctls unreadable, yet: %s", msg)
	}
	readable = true
	for _, ev := range []*events.TimewaitEnd{
		reuse("127.0.0.1:1", "127.0.0.1:2", false), reuse("10.0.0.1:1", "10.0.0.2:2", false),
		reuse("127.0.0.1:3", "127.0.0.1:2", true), reuse("127.0.0.1:4", "127.0.0.1:2", false),
		reuse("10.0.0.1:5", "10.0.0.2:2", false),
	} {
		got := x.Explain(ev)[0].(*events.Finding).Message
		if want := New(source(values)).Explain(ev)[0].(*events.Finding).Message; got != want {
			t.Errorf("%v:\n got %s\nwant %s", ev.Local, got, want)
		}
	}
}

// In FIN_WAIT2 an RST kills the minisock whatever tcp_rfc1337 says: one
// that lived on was not reached, and tcp_rfc1337 = 1 explains nothing.
func TestRFC1337NotForFinWait2(t *testing.T) {
	x := New(source(map[string]string{"net.ipv4.tcp_rfc1337": "1"}))
	ev := &events.TimewaitRSTIgnored{Header: header("10.0.0.1:1", "10.0.0.2:2"), Substate: events.StateFinWait2}
	if got := x.Explain(ev); len(got) != 0 {
		t.Errorf("findings %+v, want none", got)
	}
}
