package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parseTS(t *testing.T, ts string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("ts %q: %v", ts, err)
	}
	return at
}

// logLines logs the tracer's JSON lines of the given types, as it wrote them.
func logLines(t *testing.T, tr *tracer, types ...string) {
	t.Helper()
	for line := range strings.SplitSeq(tr.stdout.String(), "\n") {
		for _, typ := range types {
			if strings.Contains(line, `"type":"`+typ+`"`) {
				t.Log(line)
			}
		}
	}
}

// timewaitTimers lists the namespace's TIME_WAIT sockets' lines of ss -tano
// ("... timer:(timewait,59sec,0)").
func (ns *netns) timewaitTimers(t *testing.T) string {
	t.Helper()
	return mustRun(t, "ip", "netns", "exec", ns.name, "ss", "-Htano", "state", "time-wait", "state", "fin-wait-2")
}

// TestTimewaitSubstateMove: the client closes first, so its orphaned
// FIN_WAIT2 becomes a minisock in substate FIN_WAIT2 (tcp_fin_timeout 60 s);
// the server closes later, and the peer's FIN turns it into TIME_WAIT. A
// close soon after re-arms the timer in the same wheel bucket nearly always
// (silent: the move is seen when a connect() from the same port takes the
// TIME_WAIT over and its timer is stopped, with the time it happened
// derived from the timer, narrowed by the server's LAST_ACK); 2 s later
// usually lands in another bucket (seen as it happens), by HZ.
func TestTimewaitSubstateMove(t *testing.T) {
	for _, delay := range []time.Duration{20 * time.Millisecond, 2 * time.Second} {
		t.Run("server closes after "+delay.String(), func(t *testing.T) { substateMove(t, delay) })
	}
}

func substateMove(t *testing.T, delay time.Duration) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	cli := ns.clientFrom(t, port, srv)
	cli.do("close") // orphaned: FIN_WAIT2 minisock
	time.Sleep(10 * time.Millisecond)
	finWait2 := ns.timewaitTimers(t)
	time.Sleep(delay - 10*time.Millisecond)
	srv.do("read-eof", "close")
	settle()
	timeWait := ns.timewaitTimers(t)
	before := ns.counters(t)
	again := ns.clientFrom(t, port, srv)
	settle()
	after := ns.counters(t)
	evs := tr.stop()
	logLines(t, tr, "timewait_substate", "timewait_end")
	t.Log("ss:", finWait2, timeWait)

	if !strings.Contains(finWait2, "FIN-WAIT-2") || !strings.Contains(timeWait, "TIME-WAIT") || !strings.Contains(timeWait, "timewait,") {
		t.Errorf("ss: before the server's close %q, after %q; want FIN-WAIT-2 then TIME-WAIT with its timer", finWait2, timeWait)
	}
	wantDelta(t, before, after, "TcpExt.TWRecycled", 1)
	client := socketWith(evs, func(e event) bool { return e.Sport == port && e.Dport == srv.port && e.PID == cli.pid })
	enters := ofType(client, "timewait_enter")
	if len(enters) == 0 || enters[0].Substate != "FIN_WAIT2" {
		dumpEvents(t, evs)
		t.Fatalf("timewait_enter %+v, want the FIN_WAIT2 minisock first", enters)
	}
	var lastAck time.Time
	for _, e := range evs {
		if e.Type == "state" && e.NewState == "LAST_ACK" && e.Sport == srv.port && e.Dport == port {
			lastAck = parseTS(t, e.TS)
		}
	}
	if lastAck.IsZero() {
		t.Fatal("no LAST_ACK of the server's socket")
	}
	moves := ofType(client, "timewait_substate")
	switch {
	case len(enters) == 2 && len(moves) == 1:
		// The re-arm changed wheel bucket: seen at once, a second enter too.
		if enters[1].Substate != "TIME_WAIT" || moves[0].Inferred || moves[0].NewSubstate != "TIME_WAIT" || moves[0].TS != enters[1].TS {
			t.Errorf("second timewait_enter %+v, move %+v, want TIME_WAIT seen as it happened", enters[1], moves[0])
		}
		t.Log("the re-arm moved to another timer-wheel bucket this time: the move was seen as it happened")
	case len(enters) == 1 && len(moves) == 1:
		m := moves[0]
		at := parseTS(t, m.TS)
		if m.OldSubstate != "FIN_WAIT2" || m.NewSubstate != "TIME_WAIT" || !near(m.TimeoutMs, 60000, 1) || !m.TimeKnown ||
			!m.Inferred || m.WithinMs == nil || *m.WithinMs > 20 {
			t.Errorf("timewait_substate %+v, want FIN_WAIT2 -> TIME_WAIT, timeout 60000, its time known to 20 ms", m)
		}
		// The peer's FIN left after its LAST_ACK: the move cannot be before.
		if at.Before(lastAck) || at.Sub(lastAck) > 20*time.Millisecond {
			t.Errorf("timewait_substate at %s, the server entered LAST_ACK at %s: want within 20 ms after", at, lastAck)
		}
	default:
		dumpEvents(t, evs)
		t.Fatalf("timewait_enter %+v and timewait_substate %+v: want the move seen once", enters, moves)
	}
	end := one(t, client, "timewait_end")
	successor := socketWith(evs, func(e event) bool { return e.NewState == "SYN_SENT" && e.PID == again.pid })
	if end.Substate != "TIME_WAIT" || end.Cause != "connect_reuse" || len(successor) == 0 || end.Successor != successor[0].Cookie {
		t.Errorf("timewait_end %+v, want substate TIME_WAIT, connect_reuse by the new socket", end)
	}
	sum := ofType(client, "summary")
	if len(sum) != 1 || len(sum[0].History) < 2 || sum[0].History[len(sum[0].History)-1].State != "TIME_WAIT" ||
		sum[0].History[len(sum[0].History)-2].State != "FIN_WAIT2" {
		t.Errorf("summary %+v, want a history ending in FIN_WAIT2 then TIME_WAIT as a TIME_WAIT socket", sum)
	}
}

// TestTimewaitRSTAnswer: an in-window SYN (crafted, from the server's
// address and port) reaches the client's FIN_WAIT2 minisock, which answers
// with an RST (reason TCP_TIMEWAIT_SOCKET) and is killed: the cause is
// rst_answer, in substate FIN_WAIT2, not a SYN accepted nor a purge.
func TestTimewaitRSTAnswer(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	seqs := strings.Fields(srv.do1("seqs")) // the server's snd_nxt is the minisock's rcv_nxt
	if len(seqs) != 2 {
		t.Fatalf("seqs: %v", seqs)
	}
	cli.do("close")
	settle()
	finWait2 := ns.timewaitTimers(t)
	before := ns.counters(t)
	raw := ns.startActor(t)
	raw.do(fmt.Sprintf("send-segment %s %s SYN %s 0", addr("127.0.0.1", srv.port), addr("127.0.0.1", cli.port), seqs[1]))
	settle()
	after := ns.counters(t)
	left := ns.timewaitTimers(t)
	evs := tr.stop()
	logLines(t, tr, "reset_sent", "timewait_end")

	if !strings.Contains(finWait2, "FIN-WAIT-2") || strings.Contains(left, fmt.Sprintf(":%d ", cli.port)) {
		t.Errorf("ss: before %q, after %q; want the FIN-WAIT-2 minisock gone", finWait2, left)
	}
	wantDelta(t, before, after, "Tcp.OutRsts", 1)
	client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.Dport == srv.port })
	end := one(t, client, "timewait_end")
	// Before 6.10 (no RST reasons) tcp_send_reset does not fire for a
	// minisock; the precise hook's TCP_TW_RST verdict shows the answer then.
	if !kernelHasResetReasons(t) {
		if len(ofType(client, "reset_sent")) != 0 {
			t.Errorf("reset_sent of the minisock on a kernel whose tracepoint skips minisocks: %+v", ofType(client, "reset_sent"))
		}
		want := "unknown"
		if preciseHookAttached(t, "fexit/tcp_timewait_state_process") {
			want = "rst_answer"
		}
		if end.Cause != want || end.Substate != "FIN_WAIT2" {
			t.Errorf("timewait_end %+v, want %s in FIN_WAIT2", end, want)
		}
		return
	}
	rst := one(t, client, "reset_sent")
	if rst.State != "TIME_WAIT" || rst.Reason != "TCP_TIMEWAIT_SOCKET" {
		t.Errorf("reset_sent %+v, want the minisock's, reason TCP_TIMEWAIT_SOCKET", rst)
	}
	if end.Cause != "rst_answer" || end.Substate != "FIN_WAIT2" || end.Inferred || end.TS < rst.TS {
		t.Errorf("timewait_end %+v, want rst_answer in FIN_WAIT2, observed, after the RST", end)
	}
	if end.RSTReason != "TCP_TIMEWAIT_SOCKET" {
		t.Errorf("timewait_end rst_reason %q, want TCP_TIMEWAIT_SOCKET", end.RSTReason)
	}
	if len(ofType(evs, "finding")) != 0 {
		t.Errorf("findings %+v, want none", ofType(evs, "finding"))
	}
}

// TestLinger2Abort: TCP_LINGER2 < 0 makes the kernel abort instead of
// keeping an orphaned FIN_WAIT2: the socket goes FIN_WAIT2 -> CLOSE with no
// TIME_WAIT socket and an RST follows (after the destroy, on the ACK path).
// That is no overflow (TCPTimeWaitOverflow does not move).
func TestLinger2Abort(t *testing.T) {
	for _, tc := range []struct {
		name, reason, counter string
		close                 func(cli *actor)
	}{
		{"close in ESTABLISHED", "TCP_ABORT_ON_DATA", "TcpExt.TCPAbortOnData", func(cli *actor) { cli.do("linger2 -1", "close") }},
		{"shutdown then close", "TCP_ABORT_ON_LINGER", "TcpExt.TCPAbortOnLinger", func(cli *actor) {
			cli.do("linger2 -1", "shutdown-write")
			settle()
			cli.do("close")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv, cli := ns.connected(t, "127.0.0.1")
			before := ns.counters(t)
			tc.close(cli)
			settle()
			after := ns.counters(t)
			evs := tr.stop()
			logLines(t, tr, "reset_sent", "timewait_overflow", "summary")

			wantDelta(t, before, after, "TcpExt.TCPTimeWaitOverflow", 0)
			wantDelta(t, before, after, tc.counter, 1)
			if o := ofType(evs, "timewait_overflow"); len(o) != 0 {
				dumpEvents(t, evs)
				t.Fatalf("timewait_overflow %+v: the close was an abort", o)
			}
			for _, f := range ofType(evs, "finding") {
				if f.Kind == "timewait_overflow" {
					t.Errorf("finding %+v", f)
				}
			}
			client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.Dport == srv.port })
			if got := transitions(client); !strings.HasSuffix(got, "FIN_WAIT2->CLOSE") {
				t.Errorf("client: %s, want it to close from FIN_WAIT2", got)
			}
			rst := one(t, client, "reset_sent")
			if kernelHasResetReasons(t) && rst.Reason != tc.reason {
				t.Errorf("reset_sent %+v, want reason %s", rst, tc.reason)
			}
			sum := one(t, client, "summary")
			if sum.End != "reset" {
				dumpEvents(t, client)
				t.Errorf("summary %+v, want end reset", sum)
			}
		})
	}
}

// TestTimewaitOverflowTime: a real overflow is still concluded, after its
// evidence: its ts is not before the transition it comes from.
func TestTimewaitOverflowTime(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_max_tw_buckets", "0")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	before := ns.counters(t)
	cli.do("close") // orphaned: the FIN_WAIT2 minisock cannot be made either
	settle()
	after := ns.counters(t)
	evs := tr.stop()
	logLines(t, tr, "timewait_overflow")

	wantDelta(t, before, after, "TcpExt.TCPTimeWaitOverflow", 1)
	o := one(t, evs, "timewait_overflow")
	var closed string
	for _, e := range evs {
		if e.Type == "state" && e.Sport == cli.port && e.Dport == srv.port && e.NewState == "CLOSE" {
			closed = e.TS
		}
	}
	if o.State != "FIN_WAIT2" || closed == "" || parseTS(t, o.TS).Before(parseTS(t, closed)) {
		t.Errorf("timewait_overflow %+v, want FIN_WAIT2, not before the close at %s", o, closed)
	}
}

// TestTimewaitLateSegmentRFC1337: a late FIN of the old connection reaches
// the client's TIME_WAIT socket with tcp_rfc1337 = 1: it answers with an ACK
// and restarts its timer; the server's listener has no connection for that
// ACK and answers with an RST, in window, which the kernel ignores: the
// TIME_WAIT socket lives on, and tcptrace says that tcp_rfc1337 kept it.
func TestTimewaitLateSegmentRFC1337(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_rfc1337", "1")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	rcvNxt, sndNxt := timewaitWithSeqs(t, cli, srv)
	// Out of the timer-wheel bucket of the first arming, so that the
	// restart shows.
	time.Sleep(6 * time.Second)
	before := ns.counters(t)
	raw := ns.startActor(t)
	raw.do(fmt.Sprintf("send-segment %s %s FIN,ACK %d %d", addr("127.0.0.1", srv.port), addr("127.0.0.1", cli.port), rcvNxt-1, sndNxt))
	settle()
	after := ns.counters(t)
	timers := ns.timewaitTimers(t)
	evs := tr.stop()
	logLines(t, tr, "timewait_restart", "reset_sent", "timewait_rst_ignored", "finding")
	t.Log("ss:", timers)

	wantDelta(t, before, after, "Tcp.OutRsts", 1)
	if !strings.Contains(timers, fmt.Sprintf(":%d ", cli.port)) || !strings.Contains(timers, "timewait,59sec") &&
		!strings.Contains(timers, "timewait,1min") {
		t.Errorf("ss %q: want the TIME_WAIT socket alive, its timer started over", timers)
	}
	client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.Dport == srv.port && e.PID == cli.pid })
	if r := ofType(client, "timewait_restart"); len(r) != 1 {
		t.Errorf("timewait_restart %+v, want one", r)
	}
	if ends := ofType(client, "timewait_end"); len(ends) != 0 {
		t.Errorf("timewait_end %+v, want none: it survived", ends)
	}
	var peerRST bool
	for _, e := range ofType(evs, "reset_sent") {
		peerRST = peerRST || e.Sport == srv.port && e.Dport == cli.port
	}
	if !peerRST {
		dumpEvents(t, evs)
		t.Fatal("no RST seen leaving the server's side for the client's 4-tuple")
	}
	ig := one(t, client, "timewait_rst_ignored")
	if ig.Substate != "TIME_WAIT" || !ig.Inferred {
		t.Errorf("timewait_rst_ignored %+v", ig)
	}
	f := one(t, evs, "finding")
	if f.Kind != "timewait_rfc1337_kept" || f.Sysctls["net.ipv4.tcp_rfc1337"] != float64(1) {
		t.Errorf("finding %+v, want timewait_rfc1337_kept", f)
	}
}

// TestTimewaitSynNotCompleted: a SYN newer than the TIME_WAIT socket's
// rcv_nxt is accepted (the TIME_WAIT socket ends), but its handshake never
// completes: the SYN came from nobody, and the client host answers the
// SYN-ACK with an RST. Under tcp_rfc1337 = 1 that later RST is no cause of
// the end: the SYN is (seen where fexit attaches) or the cause is unknown,
// never rst, and no RST-kill story is told.
func TestTimewaitSynNotCompleted(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_rfc1337", "1")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	cli := ns.clientFrom(t, port, srv)
	seqs := strings.Fields(cli.do1("seqs")) // rcv_nxt, snd_nxt: the client's snd_nxt is the server's rcv_nxt, less its FIN
	if len(seqs) != 2 {
		t.Fatalf("seqs: %v", seqs)
	}
	srv.do("write 100", "shutdown-write")
	cli.do("read-eof", "close")
	srv.do("read-eof", "close") // the server's TIME_WAIT socket
	settle()
	sndNxt, err := strconv.ParseUint(seqs[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	raw := ns.startActor(t)
	raw.do(fmt.Sprintf("send-segment %s %s SYN %d 0", addr("127.0.0.1", port), addr("127.0.0.1", srv.port), uint32(sndNxt+100000)))
	settle()
	left := ns.timewaitTimers(t)
	evs := tr.stop()
	logLines(t, tr, "timewait_end", "finding")

	if strings.Contains(left, fmt.Sprintf(":%d ", srv.port)) {
		t.Errorf("ss still shows the TIME_WAIT socket: %q", left)
	}
	server := socketWith(evs, func(e event) bool { return e.Sport == srv.port && e.Dport == port })
	end := one(t, server, "timewait_end")
	want := "unknown"
	if preciseHookAttached(t, "fexit/tcp_timewait_state_process") {
		want = "syn_accepted"
	}
	if end.Cause != want {
		t.Errorf("timewait_end %+v, want %s (the RST that came later could not have ended it)", end, want)
	}
	for _, f := range ofType(evs, "finding") {
		if f.Kind == "timewait_rst_kill" || f.Kind == "late_segment_in_timewait" {
			t.Errorf("finding %s %q: no RST ended the TIME_WAIT socket", f.Kind, f.Message)
		}
	}
}
