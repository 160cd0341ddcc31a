package e2e

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

var families = []struct {
	name     string
	loopback string
	family   int
}{
	{"ipv4", "127.0.0.1", 4},
	{"ipv6", "::1", 6},
}

func addr(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// settle gives loopback's last ACKs time to be processed before the tracer
// is stopped.
func settle() { time.Sleep(200 * time.Millisecond) }

// TestClientClosesFirst: the full life of both ends of one connection, each
// attributed to its own process, the accepted socket to the server.
func TestClientClosesFirst(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			ns := newNetns(t)
			before := ns.counters(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv, cli := ns.connected(t, fam.loopback)
			cli.do("write 1000", "close")
			srv.do("read-eof", "close")
			cli.exit()
			srv.exit()
			settle()
			evs := tr.stop()
			after := ns.counters(t)

			client := socketWith(evs, func(e event) bool { return e.NewState == "SYN_SENT" && e.PID == cli.pid })
			if got, want := transitions(client), "CLOSE->SYN_SENT->ESTABLISHED->FIN_WAIT1->FIN_WAIT2->CLOSE"; got != want {
				t.Errorf("client socket: %s, want %s", got, want)
			}
			// The kernel clones the child from its listener, so the first
			// transition it reports for an accepted socket is LISTEN -> SYN_RECV.
			child := socketWith(evs, func(e event) bool { return e.NewState == "SYN_RECV" })
			if got, want := transitions(child), "LISTEN->SYN_RECV->ESTABLISHED->CLOSE_WAIT->LAST_ACK->CLOSE"; got != want {
				t.Errorf("accepted socket: %s, want %s", got, want)
			}
			if t.Failed() {
				dumpEvents(t, evs)
			}
			checkSocket(t, "client", client, cli.pid, fam.family, cli.port, srv.port)
			checkSocket(t, "accepted", child, srv.pid, fam.family, srv.port, cli.port)
			// The accepted socket's story ends with its destroy.
			if sum := ofType(child, "summary"); len(sum) != 1 || sum[0].End != "closed" || sum[0].ClosedBy != "peer" ||
				len(sum[0].History) != 4 || sum[0].History[0].State != "SYN_RECV" || sum[0].History[3].State != "LAST_ACK" {
				t.Errorf("accepted socket summary %+v, want SYN_RECV..LAST_ACK, closed by peer, end closed", sum)
			}
			for _, c := range []string{"Tcp.ActiveOpens", "Tcp.PassiveOpens"} {
				wantDelta(t, before, after, c, 1)
			}
		})
	}
}

// kernelEvents keeps the events the kernel reported, without the tracker's.
func kernelEvents(evs []event) []event {
	var out []event
	for _, e := range evs {
		switch e.Type {
		case "state", "retransmit", "reset_sent", "reset_received", "destroy":
			out = append(out, e)
		}
	}
	return out
}

// checkSocket checks owner, family, ports and state clocks of one socket's
// events, and that it ends with its destroy.
func checkSocket(t *testing.T, what string, evs []event, pid, family, local, remote int) {
	t.Helper()
	evs = kernelEvents(evs)
	if len(evs) == 0 {
		t.Errorf("%s: no events", what)
		return
	}
	for i, e := range evs {
		if e.PID != pid {
			t.Errorf("%s event %d (%s %s): pid %d (%s), want %d", what, i, e.Type, e.NewState, e.PID, e.Comm, pid)
		}
		if e.Family != family {
			t.Errorf("%s event %d: family %d, want %d", what, i, e.Family, family)
		}
		// A connecting socket has no local port yet when it enters SYN_SENT.
		if (e.Sport != local && !(e.NewState == "SYN_SENT" && e.Sport == 0)) || e.Dport != remote {
			t.Errorf("%s event %d (%s): ports %d -> %d, want %d -> %d", what, i, e.Type, e.Sport, e.Dport, local, remote)
		}
		if e.Type == "state" && i > 0 && (e.PrevStateMs == nil || *e.PrevStateMs < 0) {
			t.Errorf("%s event %d (%s->%s): no prev_state_ms", what, i, e.OldState, e.NewState)
		}
	}
	if last := evs[len(evs)-1]; last.Type != "destroy" || last.State != "CLOSE" {
		t.Errorf("%s: last event %s in %s, want destroy in CLOSE", what, last.Type, last.State)
	}
}

// TestPIDFilter: --pid shows the server's listener and accepted sockets and
// nothing of other processes, while an unfiltered tracer sees them all.
func TestPIDFilter(t *testing.T) {
	ns := newNetns(t)
	all := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	// The filter needs the server's pid before the server listens.
	srvA := ns.startActor(t)
	only := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--pid", strconv.Itoa(srvA.pid))
	srvA.port, _ = strconv.Atoi(srvA.do1("listen 127.0.0.1:0"))
	srvC := ns.listener(t, "127.0.0.1")
	cliB := ns.client(t, "127.0.0.1", srvA.port)
	cliD := ns.client(t, "127.0.0.1", srvC.port)
	srvA.do("accept")
	srvC.do("accept")
	cliB.do("write 10", "close")
	cliD.do("write 10", "close")
	srvA.do("read-eof", "close")
	srvC.do("read-eof", "close")
	for _, a := range []*actor{cliB, cliD, srvA, srvC} {
		a.exit()
	}
	settle()
	seen := only.stop()
	everything := all.stop()

	pids := map[int]int{}
	for _, e := range everything {
		pids[e.PID]++
	}
	for _, a := range []*actor{srvA, cliB, srvC, cliD} {
		if pids[a.pid] == 0 {
			t.Errorf("unfiltered tracer saw nothing of pid %d", a.pid)
		}
	}
	if len(seen) == 0 {
		t.Fatal("--pid tracer saw nothing")
	}
	for _, e := range seen {
		if e.PID != srvA.pid {
			t.Errorf("--pid %d shows an event of pid %d: %+v", srvA.pid, e.PID, e)
		}
	}
	child := socketWith(seen, func(e event) bool { return e.NewState == "SYN_RECV" })
	if got, want := transitions(child), "LISTEN->SYN_RECV->ESTABLISHED->CLOSE_WAIT->LAST_ACK->CLOSE"; got != want {
		t.Errorf("accepted socket under --pid: %s, want %s", got, want)
	}
	listenerClosed := false
	for _, e := range seen {
		listenerClosed = listenerClosed || (e.OldState == "LISTEN" && e.NewState == "CLOSE" && e.Sport == srvA.port)
	}
	if !listenerClosed {
		t.Error("--pid tracer did not see the listener close")
	}
}

// TestPortFilters: one connection from port 40000 to port 8080, traced
// with --lport 40000 (the client's socket only), --rport 40000 (the
// server's accepted socket only) and --port 40000 (both), in the kernel.
func TestPortFilters(t *testing.T) {
	const serverPort, clientPort = 8080, 40000 // the namespace is new: both free
	ns := newNetns(t)
	netnsArgs := []string{"--netns", fmt.Sprint(ns.inode)}
	local := startTracer(t, append(netnsArgs, "--lport", fmt.Sprint(clientPort))...)
	remote := startTracer(t, append(netnsArgs, "--rport", fmt.Sprint(clientPort))...)
	either := startTracer(t, append(netnsArgs, "--port", fmt.Sprint(clientPort))...)
	srv := ns.startActor(t)
	srv.port, _ = strconv.Atoi(srv.do1(fmt.Sprintf("listen 127.0.0.1:%d", serverPort)))
	cli := ns.clientFrom(t, clientPort, srv)
	cli.do("write 10", "close")
	srv.do("read-eof", "close")
	cli.exit()
	srv.exit()
	settle()

	// The sockets a tracer saw, by their ports as "local->remote".
	sockets := func(tr *tracer) map[string]bool {
		seen := map[string]bool{}
		for _, e := range tr.stop() {
			if e.Cookie != 0 { // not a namespace's finding_summary
				seen[fmt.Sprintf("%d->%d", e.Sport, e.Dport)] = true
			}
		}
		return seen
	}
	client, accepted := fmt.Sprintf("%d->%d", clientPort, serverPort), fmt.Sprintf("%d->%d", serverPort, clientPort)
	for _, tt := range []struct {
		flag string
		tr   *tracer
		want []string
	}{
		{"--lport", local, []string{client}},
		{"--rport", remote, []string{accepted}},
		{"--port", either, []string{client, accepted}}, // sorted
	} {
		got := slices.Sorted(maps.Keys(sockets(tt.tr)))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %d: sockets %v, want %v", tt.flag, clientPort, got, tt.want)
		}
	}
}

// TestOwnerHandOver: a connection open when tracing starts (its owner from
// the snapshot) is passed to another process, which closes it: from that
// close on, its events are the new owner's.
func TestOwnerHandOver(t *testing.T) {
	ns := newNetns(t)
	srv, cli := ns.connected(t, "127.0.0.1")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	heir := ns.startActor(t)
	path := filepath.Join(t.TempDir(), "fd")
	heir.do("fd-listen " + path)
	cli.do("send-fd " + path)
	heir.do("fd-accept", "close")
	srv.do("read-eof", "close")
	settle()
	evs := tr.stop()

	client := socketWith(evs, func(e event) bool { return e.NewState == "FIN_WAIT1" && e.Sport == cli.port })
	if got, want := transitions(client), "ESTABLISHED->FIN_WAIT1->FIN_WAIT2->CLOSE"; got != want {
		dumpEvents(t, evs)
		t.Fatalf("passed socket: %s, want %s", got, want)
	}
	for _, e := range client {
		if e.Type != "snapshot" && e.PID != heir.pid {
			t.Errorf("%s %s->%s: pid %d, want the heir's %d (first owner %d)", e.Type, e.OldState, e.NewState,
				e.PID, heir.pid, cli.pid)
		}
	}
}

// TestStalledOutput: the output stops being read for 2 s while thousands
// of connections come and go (more records than the ring holds): the
// reader goes on reading, nothing is lost, and every connection is told
// once the output moves again.
func TestStalledOutput(t *testing.T) {
	const conns = 5000
	ns := newNetns(t)
	open := make(chan struct{})
	tr := startTracerStalled(t, open, "--netns", fmt.Sprint(ns.inode))
	a := ns.startActor(t)
	start := time.Now()
	a.do(fmt.Sprintf("timewaits %d", conns))
	time.Sleep(2*time.Second - time.Since(start))
	close(open)
	evs := tr.stop()
	if tr.stats.Lost != 0 {
		t.Fatalf("%d records lost while the output stalled", tr.stats.Lost)
	}
	if n := len(ofType(evs, "timewait_enter")); n != conns {
		t.Errorf("%d TIME_WAIT sockets told, want %d", n, conns)
	}
}

// TestLostRecordsMarkIncomplete: a ring of one page cannot hold a burst of
// connections: records are lost, and the stories of the sockets tracked
// when that was noticed say they are incomplete; with nothing lost
// (TestStalledOutput), none does.
func TestLostRecordsMarkIncomplete(t *testing.T) {
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--ring-size", "4K", "--wakeup-bytes", "2048", "--poll-interval", "1s")
	tr.lossExpected = true
	a := ns.startActor(t)
	a.do("timewaits 3000")
	evs := tr.stop()
	if tr.stats.Lost == 0 {
		t.Fatal("nothing lost through a 4K ring")
	}
	// The loss told by kind and by CPU adds up; this load's records are
	// mostly state changes.
	byKind, byCPU := 0, 0
	for _, n := range tr.stats.LostByKind {
		byKind += n
	}
	for _, n := range tr.stats.LostByCPU {
		byCPU += n
	}
	if byKind != tr.stats.Lost || byCPU != tr.stats.Lost || len(tr.stats.LostByCPU) == 0 || tr.stats.LostByKind["state"] == 0 {
		t.Errorf("lost %d, by kind %v, by CPU %v: want both to add up, state among them",
			tr.stats.Lost, tr.stats.LostByKind, tr.stats.LostByCPU)
	}
	incomplete := 0
	for _, e := range ofType(evs, "summary") {
		if e.Incomplete {
			incomplete++
		}
	}
	if incomplete == 0 {
		t.Errorf("%d records lost, no summary says incomplete", tr.stats.Lost)
	}
}

// TestBPFStats: --bpf-stats reports each program's runs and time; the
// inet_sock_set_state program runs at least once for each of the ten state
// changes of every connection made (more for other namespaces' sockets,
// which it filters out), and each run takes time. Without the flag, nothing.
func TestBPFStats(t *testing.T) {
	requireTracing(t)
	const conns = 200
	ns := newNetns(t)
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--bpf-stats")
	ns.startActor(t).do(fmt.Sprintf("timewaits %d", conns))
	tr.stop()
	var setState *programCost
	for i, c := range tr.stats.BPFPrograms {
		if c.Program == "handle_set_state" {
			setState = &tr.stats.BPFPrograms[i]
		}
		if c.Runs == 0 || c.RunTimeNs == 0 {
			t.Errorf("program %+v: want runs and their time", c)
		}
	}
	if setState == nil || setState.Runs < 10*conns {
		t.Errorf("bpf_programs %+v: want handle_set_state with at least %d runs", tr.stats.BPFPrograms, 10*conns)
	}

	plain := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	ns.startActor(t).do("timewaits 10")
	plain.stop()
	if len(plain.stats.BPFPrograms) != 0 {
		t.Errorf("bpf_programs %+v without --bpf-stats", plain.stats.BPFPrograms)
	}
}

// TestChildBirthUnderRemotePort: before 6.15 a child is announced with its
// listener's identity, its remote port not given yet, so its birth is held
// in the kernel until its next event shows whether --rport (or --port)
// wants it; later kernels announce it whole, and the filter judges it at
// once (the held path is the matrix's 6.1 and 6.12). The child whose remote
// port is traced is told from its birth (not as a socket from before the
// trace); the hundreds that turn out unwanted leave nothing held, which
// would fill the table on a busy server, and nothing of them is told.
func TestChildBirthUnderRemotePort(t *testing.T) {
	const unwanted = 300
	ns := newNetns(t)
	srv := ns.listener(t, "127.0.0.1")
	port := freePort()
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--rport", fmt.Sprint(port))
	ns.startActor(t).do(fmt.Sprintf("timewaits %d", unwanted))
	cli := ns.clientFrom(t, port, srv)
	closeClientFirst(cli, srv)
	settle()
	held := mapEntries(t, tr.cmd.Process.Pid, "births")
	evs := tr.stop()
	if held != 0 {
		t.Errorf("%d births held in the kernel after %d unwanted children came and went, want 0", held, unwanted)
	}
	for _, e := range evs {
		if e.Type != "stats" && (e.Sport != srv.port || e.Dport != port) {
			t.Errorf("an event of a socket --rport %d leaves out: %+v", port, e)
		}
	}
	if got := transitions(socketWith(ofType(evs, "state"), func(e event) bool { return e.Dport == port })); !strings.HasPrefix(got, "LISTEN->SYN_RECV->") {
		t.Errorf("the child's transitions %q, want them from its birth", got)
	}
	if strings.Contains(tr.stdout.String(), `"started_before_trace":true`) {
		t.Errorf("a socket said to be from before the trace:\n%s", tr.stdout.String())
	}
}

// mapEntries counts the entries of the BPF map named name that process
// pid holds.
func mapEntries(t *testing.T, pid int, name string) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		var id uint32
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "map_id:"); ok {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
				id = uint32(n)
			}
		}
		if id == 0 {
			continue
		}
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			t.Fatalf("open map %d: %v", id, err)
		}
		defer m.Close()
		if mi, err := m.Info(); err != nil || mi.Name != name {
			continue
		}
		var key, value []byte
		n := 0
		for it := m.Iterate(); it.Next(&key, &value); {
			n++
		}
		return n
	}
	t.Fatalf("process %d holds no map %s", pid, name)
	return 0
}
