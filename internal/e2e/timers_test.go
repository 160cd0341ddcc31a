package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// timerEvent is the part of the timer events' JSON the tests look at.
type timerEvent struct {
	Type       string    `json:"type"`
	Sport      int       `json:"sport"`
	PID        int       `json:"pid"`
	Probe      int       `json:"probe"`
	Probes     int       `json:"probes"`
	Backoff    int       `json:"backoff"`
	IntervalMs float64   `json:"interval_ms"`
	Intervals  []float64 `json:"intervals_ms"`
	Timer      string    `json:"timer"`
	Rule       string    `json:"rule"`
	Kind       string    `json:"kind"`
	How        string    `json:"how"`
	Reason     string    `json:"reason"`
	Settings   struct {
		IdleS         float64 `json:"idle_s"`
		IntervalS     float64 `json:"interval_s"`
		Probes        int     `json:"probes"`
		UserTimeoutMs float64 `json:"user_timeout_ms"`
		Source        string  `json:"source"`
	} `json:"settings"`
	Evidence map[string]any `json:"evidence"`
	Message  string         `json:"message"`
}

// timerEvents parses the tracer's output again with the timer fields.
func (tr *tracer) timerEvents(t *testing.T, port int) map[string][]timerEvent {
	t.Helper()
	byType := map[string][]timerEvent{}
	for line := range strings.SplitSeq(strings.TrimSpace(tr.stdout.String()), "\n") {
		var e timerEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Sport == port {
			byType[e.Type] = append(byType[e.Type], e)
		}
	}
	return byType
}

// checkProbesSent: where the precise hook on tcp_write_wakeup attaches,
// every probe the timers were seen to send is seen leaving, with its MIB.
func checkProbesSent(t *testing.T, evs map[string][]timerEvent, timer string, want int) {
	t.Helper()
	if !preciseHookAttached(t, "fentry/tcp_write_wakeup") {
		return
	}
	n := 0
	for _, e := range evs["probe_sent"] {
		if e.Timer == timer {
			n++
		}
	}
	if n != want {
		t.Errorf("%d probe_sent by the %s timer, want %d", n, timer, want)
	}
}

// silence drops, on input, every segment to a port: the peer's answers
// never arrive.
func (ns *netns) silence(t *testing.T, port int) {
	ns.nft(t, fmt.Sprintf(`table inet tcptrace_e2e {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport %d drop
	}
}`, port))
}

// TestKeepalive: keepalive probes named as such, answered while the peer
// is there, then unanswered until the kernel gives up, explained with the
// socket's own settings.
func TestKeepalive(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	_, cli := ns.connected(t, "127.0.0.1")
	before := ns.counters(t)
	cli.do("keepalive 1 1 3")
	time.Sleep(3500 * time.Millisecond)
	ns.silence(t, cli.port)
	// Three unanswered probes a second apart, then the abort.
	if line := cli.try("read-eof"); !strings.Contains(line, "timed out") {
		t.Errorf("read after the abort: %s, want connection timed out", line)
	}
	after := ns.counters(t)
	tr.stop()
	evs := tr.timerEvents(t, cli.port)

	probes := evs["keepalive_probe"]
	wantDelta(t, before, after, "TcpExt.TCPKeepAlive", int64(len(probes)))
	if len(probes) < 5 {
		t.Errorf("%d keepalive probes, want at least 5", len(probes))
	}
	checkProbesSent(t, evs, "keepalive", len(probes))
	for _, p := range probes {
		if p.Settings.Source != "socket" || p.Settings.IdleS != 1 || p.Settings.IntervalS != 1 || p.Settings.Probes != 3 || p.PID != cli.pid {
			t.Errorf("probe %+v, want settings 1 s / 1 s / 3 from the socket, pid %d", p, cli.pid)
		}
	}
	// The answered ones come back to probe #1; the last three count up.
	if n := len(probes); n < 5 || probes[n-1].Probe != 3 || probes[n-2].Probe != 2 || probes[n-3].Probe != 1 {
		t.Errorf("probe numbers %+v, want ... 1 2 3 at the end", probes)
	}
	if acks := len(evs["keepalive_ack"]); acks != len(probes)-3 {
		t.Errorf("%d keepalive_ack events, want %d (every probe before the silence)", acks, len(probes)-3)
	}
	abort := evs["timeout_abort"]
	if len(abort) != 1 || abort[0].Timer != "keepalive" || abort[0].Rule != "keepalive_probes" || abort[0].Probes != 3 {
		t.Errorf("timeout_abort %+v, want keepalive after 3 probes", abort)
	}
	if rst := evs["reset_sent"]; len(rst) != 1 || rst[0].Reason != "TCP_KEEPALIVE_TIMEOUT" && kernelHasResetReasons(t) {
		t.Errorf("reset_sent %+v, want one with reason TCP_KEEPALIVE_TIMEOUT", rst)
	}
	if f := evs["finding"]; len(f) != 1 || f[0].Kind != "keepalive_timeout" ||
		!strings.Contains(f[0].Message, "set on the socket (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT)") {
		t.Errorf("finding %+v, want keepalive_timeout naming the socket options", f)
	}
	wantDelta(t, before, after, "TcpExt.TCPAbortOnTimeout", 1)
}

// TestKeepaliveSysctls: SO_KEEPALIVE alone takes the namespace's sysctls.
func TestKeepaliveSysctls(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_keepalive_time", "1")
	ns.sysctl(t, "net.ipv4.tcp_keepalive_intvl", "1")
	ns.sysctl(t, "net.ipv4.tcp_keepalive_probes", "2")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	_, cli := ns.connected(t, "127.0.0.1")
	cli.do("keepalive 0 0 0")
	time.Sleep(2500 * time.Millisecond)
	tr.stop()
	probes := tr.timerEvents(t, cli.port)["keepalive_probe"]
	if len(probes) == 0 {
		t.Fatal("no keepalive_probe")
	}
	for _, p := range probes {
		if p.Settings.Source != "sysctl" || p.Settings.IdleS != 1 || p.Settings.IntervalS != 1 || p.Settings.Probes != 2 {
			t.Errorf("probe settings %+v, want 1 s / 1 s / 2 from the sysctls", p.Settings)
		}
	}
}

// TestZeroWindow: a receiver that never reads, a sender that fills its
// window: the persist timer's probes, with their backoff, never called
// keepalives; with TCP_USER_TIMEOUT the connection is aborted.
func TestZeroWindow(t *testing.T) {
	for _, userTimeout := range []int{0, 3000} {
		t.Run(fmt.Sprintf("TCP_USER_TIMEOUT=%d", userTimeout), func(t *testing.T) {
			ns := newNetns(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv := ns.listener(t, "127.0.0.1")
			srv.do("rcvbuf 4096")
			cli := ns.client(t, "127.0.0.1", srv.port)
			srv.do("accept")
			if userTimeout > 0 {
				cli.do(fmt.Sprintf("user-timeout %d", userTimeout))
			}
			before := ns.counters(t)
			cli.do("fill")
			time.Sleep(4500 * time.Millisecond)
			after := ns.counters(t)
			tr.stop()
			evs := tr.timerEvents(t, cli.port)

			probes := evs["zero_window_probe"]
			wantDelta(t, before, after, "TcpExt.TCPWinProbe", int64(len(probes)))
			if len(probes) < 3 {
				t.Errorf("%d zero-window probes, want at least 3", len(probes))
			}
			if len(evs["keepalive_probe"]) != 0 {
				t.Errorf("zero-window probes reported as keepalives: %+v", evs["keepalive_probe"])
			}
			checkProbesSent(t, evs, "write", len(probes))
			// The persist timer backs off: each wait about twice the last
			// (unless clamped to what is left of a user timeout).
			for i := 1; i < len(probes) && i < 4 && userTimeout == 0; i++ {
				if r := probes[i].IntervalMs / probes[i-1].IntervalMs; r < 1.5 || r > 2.5 {
					t.Errorf("intervals %v then %v ms: want about double", probes[i-1].IntervalMs, probes[i].IntervalMs)
				}
			}
			if len(evs["zero_window_start"]) != 1 {
				t.Errorf("%d zero_window_start events, want 1", len(evs["zero_window_start"]))
			}
			var kinds []string
			for _, f := range evs["finding"] {
				kinds = append(kinds, f.Kind)
			}
			if !strings.Contains(strings.Join(kinds, " "), "zero_window_not_keepalive") {
				t.Errorf("findings %v, want zero_window_not_keepalive", kinds)
			}
			if userTimeout == 0 {
				if len(evs["timeout_abort"]) != 0 {
					t.Errorf("aborted without a user timeout: %+v", evs["timeout_abort"])
				}
				return
			}
			abort := evs["timeout_abort"]
			if len(abort) != 1 || abort[0].Timer != "zero_window" || abort[0].Rule != "user_timeout" {
				t.Errorf("timeout_abort %+v, want the zero-window timer stopped by the user timeout", abort)
			}
			if !strings.Contains(strings.Join(kinds, " "), "user_timeout") {
				t.Errorf("findings %v, want user_timeout", kinds)
			}
		})
	}
}

// TestRetransmitTimeout: a silenced peer, tcp_retries2 lowered: RTOs with
// growing backoff, then the abort, explained.
func TestRetransmitTimeout(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_retries2", "3")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	before := ns.counters(t)
	ns.silence(t, srv.port)
	cli.do("write 1000")
	if line := cli.try("read-eof"); !strings.Contains(line, "timed out") {
		t.Errorf("read after the abort: %s, want connection timed out", line)
	}
	after := ns.counters(t)
	evs := tr.stop()
	byType := tr.timerEvents(t, cli.port)

	rtx := 0
	for _, e := range evs {
		if e.Type == "retransmit" && e.Sport == cli.port {
			rtx++
		}
	}
	wantDelta(t, before, after, "Tcp.RetransSegs", int64(rtx))
	var backoffs []int
	for _, r := range byType["rto"] {
		if r.Kind == "rto" {
			backoffs = append(backoffs, r.Backoff)
		}
	}
	if len(backoffs) < 3 || backoffs[1] <= backoffs[0] || backoffs[2] <= backoffs[1] {
		t.Errorf("RTO backoffs %v, want at least 3, growing", backoffs)
	}
	abort := byType["timeout_abort"]
	if len(abort) != 1 || abort[0].Timer != "retransmit" || abort[0].Rule != "tcp_retries2" {
		t.Errorf("timeout_abort %+v, want retransmit / tcp_retries2", abort)
	}
	if f := byType["finding"]; len(f) != 1 || f[0].Kind != "retransmit_timeout" || !strings.Contains(f[0].Message, "tcp_retries2 (3)") {
		t.Errorf("finding %+v, want retransmit_timeout naming tcp_retries2 (3)", f)
	}
}

// TestSynRetries: a connect() to a port whose SYNs are dropped is retried,
// then fails after tcp_syn_retries.
func TestSynRetries(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_syn_retries", "1")
	const port = 9
	ns.silence(t, port)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	cli := ns.startActor(t)
	if line := cli.try("connect " + addr("127.0.0.1", port)); !strings.Contains(line, "timed out") {
		t.Errorf("connect: %s, want timed out", line)
	}
	evs := tr.stop()
	var cport int // known once connect() picked it: on the way out
	for _, e := range evs {
		if e.OldState == "SYN_SENT" && e.NewState == "CLOSE" && e.PID == cli.pid {
			cport = e.Sport
		}
	}
	byType := tr.timerEvents(t, cport)
	syn := 0
	for _, r := range byType["rto"] {
		if r.Kind == "syn" {
			syn++
		}
	}
	abort := byType["timeout_abort"]
	if syn < 1 || len(abort) != 1 || abort[0].Timer != "syn" || abort[0].Rule != "tcp_syn_retries" {
		t.Errorf("syn RTOs %d, timeout_abort %+v; want SYN retries then an abort by tcp_syn_retries", syn, abort)
	}
}

// TestSynAckRetries: SYN-ACKs that never arrive are retransmitted by the
// listener (tcp_synack_retries), while the client retransmits its SYN.
func TestSynAckRetries(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_syn_retries", "1")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv := ns.listener(t, "127.0.0.1")
	ns.nft(t, fmt.Sprintf(`table inet tcptrace_e2e {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp sport %d tcp flags & (syn | ack) == syn | ack drop
	}
}`, srv.port))
	before := ns.counters(t)
	cli := ns.startActor(t)
	if line := cli.try("connect " + addr("127.0.0.1", srv.port)); !strings.Contains(line, "timed out") {
		t.Errorf("connect: %s, want timed out", line)
	}
	after := ns.counters(t)
	tr.stop()
	var synack, syn, synackRTO int
	for line := range strings.SplitSeq(strings.TrimSpace(tr.stdout.String()), "\n") {
		var e struct {
			timerEvent
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Type == "retransmit" && e.State == "NEW_SYN_RECV":
			synack++
			if e.PID != srv.pid || e.Sport != srv.port {
				t.Errorf("SYN-ACK retransmission %+v, want the listener's port %d and owner %d", e, srv.port, srv.pid)
			}
		case e.Type == "retransmit" && e.State == "SYN_SENT":
			syn++
		case e.Type == "rto" && e.Kind == "synack":
			synackRTO++
		}
	}
	if d := after["TcpExt.TCPSynRetrans"] - before["TcpExt.TCPSynRetrans"]; synack == 0 || syn == 0 || d != int64(synack+syn) {
		t.Errorf("TCPSynRetrans delta %d; SYN-ACK retransmissions %d, SYN ones %d: want both, adding up", d, synack, syn)
	}
	if synackRTO != synack {
		t.Errorf("%d synack rto events for %d SYN-ACK retransmissions", synackRTO, synack)
	}
}
