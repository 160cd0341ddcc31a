package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// one returns the only event of a type, failing the test otherwise.
func one(t *testing.T, evs []event, typ string) event {
	t.Helper()
	got := ofType(evs, typ)
	if len(got) != 1 {
		dumpEvents(t, evs)
		t.Fatalf("%d %s events, want 1", len(got), typ)
	}
	return got[0]
}

func near(got *float64, want, tolerance float64) bool {
	return got != nil && math.Abs(*got-want) <= tolerance
}

// freePort picks a port outside the ephemeral range for a client to bind.
func freePort() int { return 20000 + rand.IntN(10000) }

// closeClientFirst runs a connection where the client sends FIN first and
// keeps its socket open until the server's FIN came, so that the client's
// socket goes to TIME_WAIT proper (not the orphaned FIN_WAIT2 substate).
func closeClientFirst(cli, srv *actor) {
	cli.do("write 100", "shutdown-write")
	srv.do("read-eof", "close")
	cli.do("read-eof", "close")
}

// TestTimewaitActiveClose: the side that closes first gets a TIME_WAIT
// socket for 60 s, with the cookie of its socket, shown by ss too.
func TestTimewaitActiveClose(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			ns := newNetns(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv := ns.listener(t, fam.loopback)
			cli := ns.startActor(t)
			// With --pid the kernel side must know the TIME_WAIT socket's owner.
			byPID := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--pid", strconv.Itoa(cli.pid))
			cli.port, _ = strconv.Atoi(cli.do1("connect " + addr(fam.loopback, srv.port)))
			srv.do("accept")
			closeClientFirst(cli, srv)
			settle()
			tws := ns.timewaitSockets(t)
			evs := tr.stop()
			if e := one(t, byPID.stop(), "timewait_enter"); e.PID != cli.pid || e.Sport != cli.port {
				t.Errorf("--pid %d: timewait_enter %+v", cli.pid, e)
			}

			client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.PID == cli.pid })
			enter := one(t, client, "timewait_enter")
			if enter.Substate != "TIME_WAIT" || !near(enter.TimeoutMs, 60000, 1000) || enter.PID != cli.pid {
				t.Errorf("timewait_enter %+v, want substate TIME_WAIT, timeout 60000 ms, pid %d", enter, cli.pid)
			}
			if got, want := transitions(client), "CLOSE->SYN_SENT->ESTABLISHED->FIN_WAIT1->FIN_WAIT2->CLOSE"; got != want {
				t.Errorf("client: %s, want %s", got, want)
			}
			if len(ofType(client, "timewait_end")) != 0 {
				t.Error("TIME_WAIT ended within the test; it lasts 60 s")
			}
			// Still open at exit: its summary says so, TIME_WAIT included.
			sum := one(t, client, "summary")
			if sum.End != "open" || sum.ClosedBy != "local" || len(sum.History) == 0 ||
				sum.History[len(sum.History)-1].State != "TIME_WAIT" || !sum.History[len(sum.History)-1].TimewaitSocket {
				t.Errorf("summary %+v, want open, closed by local, ending in TIME_WAIT", sum)
			}
			if len(tws) != 1 {
				t.Errorf("ss shows TIME_WAIT sockets %v, want one", tws)
			}
		})
	}
}

// TestTimewaitOrphanExpires: an orphaned FIN_WAIT2 (TCP_LINGER2 = 2) is a
// TIME_WAIT socket in substate FIN_WAIT2 that expires after 2 s.
func TestTimewaitOrphanExpires(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	_, cli := ns.connected(t, "127.0.0.1")
	before := ns.counters(t)
	cli.do("linger2 2", "close") // the server never closes
	time.Sleep(3 * time.Second)
	after := ns.counters(t)
	evs := tr.stop()

	client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.PID == cli.pid })
	enter := one(t, client, "timewait_enter")
	if enter.Substate != "FIN_WAIT2" || !near(enter.TimeoutMs, 2000, 100) {
		t.Errorf("timewait_enter %+v, want substate FIN_WAIT2, timeout 2000 ms", enter)
	}
	end := one(t, client, "timewait_end")
	if end.Cause != "expired" || end.Inferred || !near(end.AgeMs, 2000, 300) || end.PID != cli.pid {
		t.Errorf("timewait_end %+v, want expired after about 2000 ms, not inferred, pid %d", end, cli.pid)
	}
	// A TIME_WAIT socket that lived 4 s or less is counted as killed.
	wantDelta(t, before, after, "TcpExt.TWKilled", 1)
	sum := one(t, client, "summary")
	if sum.End != "timewait_expired" || sum.ClosedBy != "local" {
		t.Errorf("summary %+v, want timewait_expired, closed by local", sum)
	}
}

// TestTimewaitConnectReuse: a client that binds its old port and connects
// again takes over its own TIME_WAIT socket (counted in TWRecycled).
func TestTimewaitConnectReuse(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	cli := ns.clientFrom(t, port, srv)
	closeClientFirst(cli, srv)
	before := ns.counters(t)
	again := ns.clientFrom(t, port, srv)
	settle()
	after := ns.counters(t)
	evs := tr.stop()

	wantDelta(t, before, after, "TcpExt.TWRecycled", 1)
	end := one(t, evs, "timewait_end")
	successor := socketWith(evs, func(e event) bool { return e.NewState == "SYN_SENT" && e.PID == again.pid })
	if end.Cause != "connect_reuse" || !end.Inferred || end.Sport != port || len(successor) == 0 ||
		end.Successor != successor[0].Cookie {
		t.Errorf("timewait_end %+v, want connect_reuse, inferred, port %d, successor the new socket", end, port)
	}
	f := one(t, evs, "finding")
	if f.Kind != "timewait_connect_reuse" || f.Evidence["port_bound_before_connect"] != true ||
		!hasSysctl(f, "net.ipv4.tcp_tw_reuse") || f.Sysctls["net.ipv4.tcp_tw_recycle"] != nil {
		t.Errorf("finding %+v, want timewait_connect_reuse with a bound port, tcp_tw_reuse, and no tcp_tw_recycle", f)
	}
}

func hasSysctl(f event, name string) bool {
	_, ok := f.Sysctls[name]
	return ok
}

// TestTimewaitSynAccepted: the server closes first, so the TIME_WAIT is the
// server's; the client comes back on the same 4-tuple and the server's
// kernel accepts the newer SYN, ending its TIME_WAIT (seed 003's story).
func TestTimewaitSynAccepted(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	cli := ns.clientFrom(t, port, srv)
	srv.do("write 100", "shutdown-write")
	cli.do("read-eof", "close")
	srv.do("read-eof", "close")
	settle()
	before := ns.counters(t)
	ns.clientFrom(t, port, srv) // back on the same 4-tuple
	settle()
	after := ns.counters(t)
	evs := tr.stop()

	// Where fexit is allowed (Debian's 6.1 and 6.12 under qemu, not the
	// 6.18 host), the kernel's verdict is seen and the cause is observed.
	precise := preciseHookAttached(t, "fexit/tcp_timewait_state_process")
	end := one(t, evs, "timewait_end")
	if end.Cause != "syn_accepted" || end.Inferred == precise || end.Sport != srv.port || end.Dport != port || end.PID != srv.pid {
		t.Errorf("timewait_end %+v, want syn_accepted, inferred unless the precise hook saw it (%v), on the server's side (pid %d)",
			end, precise, srv.pid)
	}
	child := socketWith(evs, func(e event) bool { return e.NewState == "SYN_RECV" && e.Dport == port && e.Cookie == end.Successor })
	if len(child) == 0 {
		t.Errorf("successor %d is not an accepted socket from port %d", end.Successor, port)
	}
	f := one(t, evs, "finding")
	if f.Kind != "timewait_syn_reuse" || f.Sysctls["net.ipv4.tcp_tw_recycle"] != nil || !hasSysctl(f, "net.ipv4.tcp_timestamps") {
		t.Errorf("finding %+v, want timewait_syn_reuse naming tcp_timestamps and the absent tcp_tw_recycle", f)
	}
	// The kernel's rule (RFC 6191): it accepted the SYN because its
	// sequence number was after rcv_nxt or its timestamp was newer.
	seqAfter, seqOK := f.Evidence["syn_seq_after_rcv_nxt"].(bool)
	tsNewer, tsOK := f.Evidence["syn_ts_newer"].(bool)
	if !seqOK || !tsOK || !(seqAfter || tsNewer) {
		t.Errorf("evidence %v: want the SYN's sequence and timestamp compared, one of them newer", f.Evidence)
	}
	if precise {
		var syn bool
		for _, v := range ofType(evs, "tw_segment") {
			syn = syn || v.Verdict == "SYN"
		}
		if !syn {
			t.Errorf("precise hook attached, yet no tw_segment with verdict SYN: %+v", ofType(evs, "tw_segment"))
		}
	}
	// The passive side's reuse is not a TWRecycled.
	wantDelta(t, before, after, "TcpExt.TWRecycled", 0)
}

// TestTimewaitRST: a late SYN from the closed server's side makes the
// client's TIME_WAIT socket answer with an ACK; the server's kernel has no
// socket and answers with an RST, in window. With tcp_rfc1337 = 0 that RST
// kills the TIME_WAIT; with 1 it survives.
func TestTimewaitRST(t *testing.T) {
	for _, rfc1337 := range []string{"0", "1"} {
		t.Run("tcp_rfc1337="+rfc1337, func(t *testing.T) {
			ns := newNetns(t)
			ns.sysctl(t, "net.ipv4.tcp_rfc1337", rfc1337)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv, cli := ns.connected(t, "127.0.0.1")
			closeClientFirst(cli, srv)
			settle()
			before := ns.counters(t)
			raw := ns.startActor(t)
			raw.do(fmt.Sprintf("send-segment %s %s SYN 1 0", addr("127.0.0.1", srv.port), addr("127.0.0.1", cli.port)))
			settle()
			after := ns.counters(t)
			tws := ns.timewaitSockets(t)
			evs := tr.stop()

			noSocket := 0
			for _, e := range ofType(evs, "reset_sent") {
				if e.NoSocket && e.Sport == srv.port {
					noSocket++
				}
			}
			wantDelta(t, before, after, "Tcp.OutRsts", 1)
			ends := ofType(evs, "timewait_end")
			if rfc1337 == "1" {
				if len(ends) != 0 || len(tws) != 1 {
					t.Errorf("with tcp_rfc1337 = 1: timewait_end %+v, ss %v; want none, and the TIME_WAIT socket alive", ends, tws)
				}
				// The peer's RST was seen leaving it for the TIME_WAIT
				// socket's 4-tuple, and the TIME_WAIT socket lived on:
				// tcp_rfc1337 = 1 protected it.
				logLines(t, tr, "reset_sent", "timewait_rst_ignored", "finding")
				ig := one(t, evs, "timewait_rst_ignored")
				if ig.Sport != cli.port || ig.Dport != srv.port || !ig.Inferred {
					t.Errorf("timewait_rst_ignored %+v, want the client's TIME_WAIT socket (port %d), inferred", ig, cli.port)
				}
				f := one(t, evs, "finding")
				if f.Kind != "timewait_rfc1337_kept" || f.Sysctls["net.ipv4.tcp_rfc1337"] != float64(1) || f.Sport != cli.port {
					t.Errorf("finding %+v, want timewait_rfc1337_kept with tcp_rfc1337 1", f)
				}
				return
			}
			if len(ofType(evs, "timewait_rst_ignored")) != 0 {
				t.Errorf("timewait_rst_ignored %+v although the RST killed the TIME_WAIT socket", ofType(evs, "timewait_rst_ignored"))
			}
			if len(ends) != 1 || ends[0].Cause != "rst" || ends[0].Inferred || ends[0].Sport != cli.port || len(tws) != 0 {
				dumpEvents(t, evs)
				t.Fatalf("timewait_end %+v, ss %v; want one, cause rst, observed, for port %d, and no TIME_WAIT left", ends, tws, cli.port)
			}
			// Both ends are traced here: the RST was seen leaving the peer
			// (its listener, still open, answers the ACK), so the
			// late-segment story is told too (seed 000).
			findings := ofType(evs, "finding")
			if len(findings) != 2 || findings[0].Kind != "timewait_rst_kill" || findings[0].Sysctls["net.ipv4.tcp_rfc1337"] != float64(0) ||
				findings[1].Kind != "late_segment_in_timewait" {
				dumpEvents(t, evs)
				t.Errorf("findings %+v, want timewait_rst_kill with tcp_rfc1337 0, then late_segment_in_timewait", findings)
			}
			if want := map[bool]string{true: "TCP_FLAGS"}[kernelHasResetReasons(t)]; len(findings) == 2 && findings[1].Evidence["peer_rst_reason"] != want {
				t.Errorf("late segment evidence %v, want the peer's RST reason %q", findings[1].Evidence, want)
			}
			// With the precise hook the late SYN itself is in the evidence.
			if preciseHookAttached(t, "fexit/tcp_timewait_state_process") && len(findings) == 2 {
				late, _ := findings[1].Evidence["late_segment"].(map[string]any)
				if late["flags"] != "SYN" || late["seq"] != float64(1) {
					t.Errorf("late segment %v, want the SYN with sequence 1 that the test sent", late)
				}
			}
		})
	}
}

// TestTimewaitOverflow: with tcp_max_tw_buckets = 0 no TIME_WAIT socket can
// be made: the closing socket goes straight to CLOSE.
func TestTimewaitOverflow(t *testing.T) {
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_max_tw_buckets", "0")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	before := ns.counters(t)
	closeClientFirst(cli, srv)
	settle()
	after := ns.counters(t)
	evs := tr.stop()

	wantDelta(t, before, after, "TcpExt.TCPTimeWaitOverflow", 1)
	o := one(t, evs, "timewait_overflow")
	if o.Sport != cli.port || o.PID != cli.pid || o.State != "FIN_WAIT2" {
		t.Errorf("timewait_overflow %+v, want the client's socket (port %d) closing from FIN_WAIT2", o, cli.port)
	}
	if len(ofType(evs, "timewait_enter")) != 0 {
		t.Error("a TIME_WAIT socket was reported although none could be made")
	}
	f := one(t, evs, "finding")
	if f.Kind != "timewait_overflow" || f.Sysctls["net.ipv4.tcp_max_tw_buckets"] != float64(0) {
		t.Errorf("finding %+v, want timewait_overflow with tcp_max_tw_buckets 0", f)
	}
	sum := socketWith(evs, func(e event) bool { return e.Type == "summary" && e.Sport == cli.port })
	if len(sum) == 0 || !slices.ContainsFunc(sum, func(e event) bool { return e.End == "timewait_overflow" }) {
		t.Errorf("client summary %+v, want end timewait_overflow", sum)
	}
}

// TestTimewaitOverflowSysctlChanged: tcp_max_tw_buckets changed between
// overflows (0, then 1 with one TIME_WAIT socket alive, then 2 with two):
// each finding quotes the value in force when the kernel decided.
func TestTimewaitOverflowSysctlChanged(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	var ports []int
	for buckets := range 3 {
		ns.sysctl(t, "net.ipv4.tcp_max_tw_buckets", strconv.Itoa(buckets))
		if buckets > 0 { // room for one more TIME_WAIT socket: fill it
			srv, cli := ns.connected(t, "127.0.0.1")
			closeClientFirst(cli, srv)
		}
		time.Sleep(1100 * time.Millisecond) // longer than a reading of the sysctls answers for
		before := ns.counters(t)
		// The table holds `buckets` TIME_WAIT sockets: the next overflows.
		srv, cli := ns.connected(t, "127.0.0.1")
		closeClientFirst(cli, srv)
		settle()
		wantDelta(t, before, ns.counters(t), "TcpExt.TCPTimeWaitOverflow", 1)
		ports = append(ports, cli.port)
	}
	evs := tr.stop()
	for buckets, port := range ports {
		f := socketWith(ofType(evs, "finding"), func(e event) bool { return e.Kind == "timewait_overflow" && e.Sport == port })
		if len(f) != 1 || f[0].Sysctls["net.ipv4.tcp_max_tw_buckets"] != float64(buckets) {
			dumpEvents(t, evs)
			t.Errorf("overflow of port %d with tcp_max_tw_buckets %d: findings %+v", port, buckets, f)
		}
	}
}

// TestSnapshot: sockets that exist before tracing starts are reported at
// start with their owners (learnt from the processes' open files), the
// TIME_WAIT socket with the time it has left, and --pid finds them.
func TestSnapshot(t *testing.T) {
	ns := newNetns(t)
	srv := ns.listener(t, "127.0.0.1")
	old := ns.client(t, "127.0.0.1", srv.port)
	srv.do("accept")
	closeClientFirst(old, srv) // old's TIME_WAIT socket
	closed := time.Now()
	open := ns.client(t, "127.0.0.1", srv.port)
	srv.do("accept")
	time.Sleep(time.Second)

	starting := time.Now()
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	ready := time.Now()
	byPID := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--pid", strconv.Itoa(open.pid))
	// A connection the listener from before accepts, and its close: their
	// owner is known from the snapshot alone.
	late := ns.client(t, "127.0.0.1", srv.port)
	srv.do("accept", "close-listener")
	settle()
	evs := tr.stop()
	mine := byPID.stop()

	child := kernelEvents(socketWith(evs, func(e event) bool { return e.NewState == "SYN_RECV" && e.Dport == late.port }))
	var listenerClosed bool
	for _, e := range evs {
		if e.Type == "state" && e.OldState == "LISTEN" && e.NewState == "CLOSE" && e.Sport == srv.port {
			listenerClosed = true
			child = append(child, e)
		}
	}
	if len(child) < 3 || !listenerClosed {
		dumpEvents(t, evs)
		t.Fatalf("want the accepted socket's SYN_RECV and ESTABLISHED, and the listener's close: %+v", child)
	}
	for _, e := range child {
		if e.PID != srv.pid {
			t.Errorf("%s %s->%s of port %d->%d: pid %d, want the listener's %d", e.Type, e.OldState, e.NewState,
				e.Sport, e.Dport, e.PID, srv.pid)
		}
	}

	snaps := ofType(evs, "snapshot")
	var tw, est *event
	for i, e := range snaps {
		switch {
		case e.State == "TIME_WAIT" && e.Sport == old.port:
			tw = &snaps[i]
		case e.State == "ESTABLISHED" && e.Sport == open.port:
			est = &snaps[i]
		}
	}
	if tw == nil || tw.Substate != "TIME_WAIT" || tw.Cookie == 0 {
		dumpEvents(t, evs)
		t.Fatalf("no snapshot of the TIME_WAIT socket of port %d with its substate and cookie", old.port)
	}
	var remaining map[string]any
	for _, line := range strings.Split(tr.stdout.String(), "\n") {
		if strings.Contains(line, `"snapshot"`) && strings.Contains(line, `"TIME_WAIT"`) {
			json.Unmarshal([]byte(line), &remaining)
		}
	}
	// The snapshot is taken between the tracer's start and its being ready;
	// the TIME_WAIT began a little before the actor said the close was done
	// (when the peer's FIN came), and its timer counts in jiffies.
	least, most := 60000-ms(ready.Sub(closed))-500, 60000-ms(starting.Sub(closed))+50
	if ms, _ := remaining["remaining_ms"].(float64); ms < least || ms > most {
		t.Errorf("TIME_WAIT remaining_ms %v, want %.0f-%.0f (closed %v before the tracer started, ready %v after)",
			remaining["remaining_ms"], least, most, starting.Sub(closed), ready.Sub(starting))
	}
	// Go (1.24+) listens with MPTCP where it can: the owner is found through
	// the MPTCP socket for its TCP subflow, the listener the kernel reports.
	for _, e := range snaps {
		if e.State == "LISTEN" && e.Sport == srv.port && e.PID != srv.pid {
			t.Errorf("snapshot of the listener %+v, want owner pid %d", e, srv.pid)
		}
	}
	if est == nil || est.PID != open.pid {
		t.Errorf("snapshot of the open connection %+v, want owner pid %d", est, open.pid)
	}
	var sum *event
	for _, e := range ofType(evs, "summary") {
		if e.Cookie == tw.Cookie {
			sum = &e
		}
	}
	if sum == nil {
		dumpEvents(t, evs)
	}
	if sum == nil || sum.End != "open" || len(sum.History) != 1 || sum.History[0].State != "TIME_WAIT" ||
		!sum.History[0].TimewaitSocket || !strings.Contains(tr.stdout.String(), `"started_before_trace":true`) {
		t.Errorf("summary of the old TIME_WAIT %+v, want open, one TIME_WAIT phase, begun before tracing", sum)
	}
	if len(mine) == 0 {
		t.Fatal("--pid tracer saw nothing of the process's existing socket")
	}
	for _, e := range mine {
		if e.PID != open.pid {
			t.Errorf("--pid %d shows %+v", open.pid, e)
		}
	}
}

// TestSnapshotOwnersRefused: where the owner walks of the snapshot cannot
// run (here left out, as a kernel that refuses them would), the start-up
// says so in one line and the old sockets are snapshotted without owners,
// not with wrong ones; with them, nothing is said.
func TestSnapshotOwnersRefused(t *testing.T) {
	ns := newNetns(t)
	srv := ns.listener(t, "127.0.0.1")
	open := ns.client(t, "127.0.0.1", srv.port)
	srv.do("accept")

	for _, skipped := range []bool{false, true} {
		args := []string{"--netns", fmt.Sprint(ns.inode)}
		if skipped {
			args = append(args, "--skip-hook", "learn_owners")
		}
		tr := startTracer(t, args...)
		evs := tr.stop()
		var warnings []string
		for _, line := range strings.Split(tr.stderr.String(), "\n") {
			if strings.Contains(line, "tcptrace: warning:") { // after a timestamp: stderr is no terminal
				warnings = append(warnings, line)
			}
		}
		var est *event
		for i, e := range ofType(evs, "snapshot") {
			if e.State == "ESTABLISHED" && e.Sport == open.port {
				est = &ofType(evs, "snapshot")[i]
			}
		}
		if est == nil {
			dumpEvents(t, evs)
			t.Fatalf("skipped %v: no snapshot of the open connection", skipped)
		}
		if !skipped {
			if len(warnings) != 0 || est.PID != open.pid {
				t.Errorf("with every hook: warnings %q, owner %d (want none, %d)", warnings, est.PID, open.pid)
			}
			continue
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "learn_owners") ||
			!strings.Contains(warnings[0], "owners of the sockets open before tracing will be unknown") {
			t.Errorf("learn_owners left out: warnings %q, want one line naming it and what is lost", warnings)
		}
		if est.PID != 0 {
			t.Errorf("learn_owners left out: the open connection's snapshot names owner %d, want none", est.PID)
		}
	}
}

// TestTimewaitPurge: a namespace holding thousands of TIME_WAIT sockets
// goes away (its last process exits, its name is deleted), as a container
// stops. Every one of them ends `purged`, and SIGTERM then stops tcptrace
// within 2 s, its summaries written.
func TestTimewaitPurge(t *testing.T) {
	const sockets = 3000
	ns := newNetns(t)
	// connect() would take over some TIME_WAIT sockets on a slow machine
	// (tcp_tw_reuse = 2 on loopback, after 1 s): each must stay.
	ns.sysctl(t, "net.ipv4.tcp_tw_reuse", "0")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	a := ns.startActor(t)
	a.do(fmt.Sprintf("timewaits %d", sockets))
	out, err := exec.Command("ip", "netns", "exec", ns.name, "ss", "-Htan", "state", "time-wait").Output()
	if err != nil {
		t.Fatal(err)
	}
	// ss is the kernel's count (under emulation a last socket may still
	// be on its way): tcptrace must match it.
	inTimewait := strings.Count(string(out), "\n")
	if inTimewait < sockets*9/10 {
		t.Fatalf("ss shows %d TIME_WAIT sockets, want about %d", inTimewait, sockets)
	}
	a.exit()
	mustRun(t, "ip", "netns", "del", ns.name)
	time.Sleep(3 * time.Second) // the kernel tears the namespace down in a worker
	// New namespaces, one of which likely takes the dead one's inode: its
	// sockets are still purged, not taken for the new namespace's.
	reused := false
	for range 3 {
		reused = reused || newNetns(t).inode == ns.inode
	}
	t.Logf("the namespace's inode taken by a new one: %v", reused)
	start := time.Now()
	evs := tr.stopWith(syscall.SIGTERM)
	// Under qemu's software emulation (the kernel matrix) everything runs
	// 10-30 times slower: the bound is for a real machine.
	bound := 2 * time.Second
	if os.Getenv("TCPTRACE_GUEST_KERNEL") != "" {
		bound = 30 * time.Second
	}
	if took := time.Since(start); took > bound {
		t.Errorf("tcptrace took %v to exit after SIGTERM, want < %v", took, bound)
	}
	causes := map[string]int{}
	for _, e := range ofType(evs, "timewait_end") {
		causes[e.Cause]++
		if e.Inferred {
			t.Errorf("TIME_WAIT end %+v inferred: the kernel's teardown shows in the timer's stop", e)
			break
		}
	}
	if causes["purged"] != inTimewait {
		t.Errorf("TIME_WAIT ends by cause %v, want all %d purged (ss's count)", causes, inTimewait)
	}
	summaries := 0
	for _, e := range ofType(evs, "summary") {
		if e.End == "timewait_purged" {
			summaries++
		}
	}
	if summaries != inTimewait {
		t.Errorf("%d summaries end timewait_purged, want %d", summaries, inTimewait)
	}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
