package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// summaryOf is the summary of the socket on a local port.
func summaryOf(t *testing.T, evs []event, port int) event {
	t.Helper()
	for _, e := range ofType(evs, "summary") {
		if e.Sport == port && e.Dport != 0 {
			return e
		}
	}
	dumpEvents(t, evs)
	t.Fatalf("no summary of the socket on port %d", port)
	return event{}
}

// wantClose checks a summary's close shape and how it is known.
func wantClose(t *testing.T, what string, sum event, shape, firstFIN string, inferred bool) {
	t.Helper()
	c := sum.Close
	t.Logf("%s: %+v", what, c)
	if c == nil || c.Shape != shape || c.FirstFIN != firstFIN || c.Inferred != inferred || inferred != (c.InferredFrom != "") ||
		inferred && c.SeenFrom != "" {
		t.Errorf("%s: close %+v, want shape %s, first FIN %q, inferred %v", what, c, shape, firstFIN, inferred)
	}
}

// pureACKs drops, on input, the segments a port sends that carry nothing
// but an ACK: the peer sees its FIN come with the ACK.
func pureACKs(port int) string {
	return fmt.Sprintf(`table inet tcptrace_close {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp sport %d tcp flags & (fin|syn|rst|psh|ack|urg) == ack drop
	}
}`, port)
}

// TestCloseShapes: each graceful close shape made on purpose, told in the
// summary of the side it is about, with the segments counted by the
// namespace (both sides' received segments: Tcp InSegs) matching it.
func TestCloseShapes(t *testing.T) {
	const peerWait = 300 * time.Millisecond // longer than a delayed ACK waits
	tests := []struct {
		name string
		// sysctl, if set, is set in the namespace first.
		sysctl [2]string
		// close closes the connection; it returns the actor whose socket
		// the shape is about.
		close    func(ns *netns, srv, cli *actor) *actor
		shape    string
		firstFIN string
		inferred bool
		// inSegs is how many segments TCP received in the namespace.
		inSegs int64
		// counter is a counter the shape moves, by count (1 if 0).
		counter string
		count   int64
		// halfClose is the least the half-close lasted.
		halfClose time.Duration
	}{
		{name: "three segments",
			close: func(ns *netns, srv, cli *actor) *actor {
				ns.nft(t, pureACKs(srv.port))
				cli.do("close")
				srv.do("read-eof", "close")
				return cli
			},
			// Our FIN, the peer's FIN+ACK, our ACK (the peer's pure ACKs dropped).
			shape: "three_segment", firstFIN: "local", inferred: true, inSegs: 3, counter: "TcpExt.TW"},
		{name: "four segments",
			close: func(ns *netns, srv, cli *actor) *actor {
				cli.do("shutdown-write")
				srv.do("read-eof")
				time.Sleep(peerWait)
				srv.do("close")
				cli.do("read-eof", "close")
				return cli
			},
			shape: "four_segment", firstFIN: "local", inferred: true, inSegs: 4, counter: "TcpExt.TW", halfClose: peerWait},
		{name: "four segments seen",
			// A FIN_WAIT2 timer of 2 s is re-armed for TIME_WAIT's 60 s in
			// another timer-wheel bucket: the move is seen as it happens.
			sysctl: [2]string{"net.ipv4.tcp_fin_timeout", "2"},
			close: func(ns *netns, srv, cli *actor) *actor {
				cli.do("close")
				srv.do("read-eof")
				time.Sleep(peerWait)
				srv.do("close")
				return cli
			},
			shape: "four_segment", firstFIN: "local", inSegs: 4, counter: "TcpExt.TWKilled", halfClose: peerWait},
		{name: "simultaneous",
			close: func(ns *netns, srv, cli *actor) *actor {
				// The client's FIN is held back until the server's is out.
				ns.nft(t, fmt.Sprintf(`table inet tcptrace_close {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp sport %d tcp flags & fin == fin drop
	}
}`, cli.port))
				cli.do("close")
				srv.do("close") // its FIN, not the ACK of the client's, reaches the client
				ns.nft(t, "delete table inet tcptrace_close")
				time.Sleep(time.Second) // the client's FIN is retransmitted
				return cli
			},
			// The server's FIN, the client's ACK of it, the client's FIN
			// (retransmitted: its first copies dropped), the server's ACK of
			// that. Both sides get a TIME_WAIT socket, the server's an
			// orphan's FIN_WAIT2 first.
			shape: "simultaneous", firstFIN: "local", inSegs: 4, counter: "TcpExt.TW", count: 2},
		{name: "peer first",
			close: func(ns *netns, srv, cli *actor) *actor {
				srv.do("close")
				cli.do("read-eof")
				time.Sleep(peerWait)
				cli.do("close")
				return cli
			},
			shape: "peer_first", firstFIN: "peer", inSegs: 4, counter: "TcpExt.TW", halfClose: peerWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNetns(t)
			if tt.sysctl[0] != "" {
				ns.sysctl(t, tt.sysctl[0], tt.sysctl[1])
			}
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv, cli := ns.connected(t, "127.0.0.1")
			before := ns.counters(t)
			about := tt.close(ns, srv, cli)
			settle()
			after := ns.counters(t)
			evs := tr.stop()
			logLines(t, tr, "summary")

			sum := summaryOf(t, evs, about.port)
			// Where the precise hook sees the segments a closing socket
			// gets, the peer's FIN is seen: nothing is inferred.
			inferred := tt.inferred && !preciseHookAttached(t, "fentry/tcp_rcv_state_process")
			wantClose(t, "summary", sum, tt.shape, tt.firstFIN, inferred)
			if c := sum.Close; c != nil && (c.HalfCloseMs == nil || *c.HalfCloseMs < float64(tt.halfClose.Microseconds())/1000) {
				t.Errorf("half-close %v ms, want it known and at least %v", c.HalfCloseMs, tt.halfClose)
			}
			wantDelta(t, before, after, "Tcp.InSegs", tt.inSegs)
			wantDelta(t, before, after, tt.counter, max(tt.count, 1))
		})
	}
}

// TestAbortiveCloses: each way this side resets its connection instead of
// closing it, made on purpose on a connection open before tracing whose
// owners tcptrace cannot learn then (--skip-hook learn_owners): the abort
// is named by its rule, with the counter the kernel moved and a finding;
// the owner is the closing process; the peer's story is a reset by the
// peer. With --port, the destroy that follows tcp_disconnect() (its remote
// port zeroed) passes the kernel's filter and keeps its 4-tuple, while the
// destroys of sockets never seen stay out.
func TestAbortiveCloses(t *testing.T) {
	withReasons := kernelHasResetReasons(t)
	tests := []struct {
		name string
		// portFilter, if set, traces with it (--port or --rport) at the
		// server's port: the client's side only, under --rport.
		portFilter string
		// abort makes one side reset the connection; it returns the actor
		// that does.
		abort         func(srv, cli *actor) *actor
		rule, counter string
		reason        string // on kernels that report one
		state         string // the state it aborted in
		inferred      bool
		// fromReason: the rule is seen from the RST's reason, inferred
		// where the kernel gives none (before 6.10).
		fromReason   bool
		peerFirstFIN string // the peer's summary's first_fin
	}{
		{name: "SO_LINGER 0", abort: func(srv, cli *actor) *actor { cli.do("linger0", "close"); return cli },
			rule: "so_linger_zero", counter: "TcpExt.TCPAbortOnData", reason: "TCP_STATE", state: "ESTABLISHED"},
		{name: "SO_LINGER 0 with --port", portFilter: "--port", abort: func(srv, cli *actor) *actor { cli.do("linger0", "close"); return cli },
			rule: "so_linger_zero", counter: "TcpExt.TCPAbortOnData", reason: "TCP_STATE", state: "ESTABLISHED"},
		{name: "SO_LINGER 0 with --rport", portFilter: "--rport", abort: func(srv, cli *actor) *actor { cli.do("linger0", "close"); return cli },
			rule: "so_linger_zero", counter: "TcpExt.TCPAbortOnData", reason: "TCP_STATE", state: "ESTABLISHED"},
		{name: "close with unread data", abort: func(srv, cli *actor) *actor {
			cli.do("write 100")
			srv.do("wait-readable", "close")
			return srv
		}, rule: "unread_data", counter: "TcpExt.TCPAbortOnClose", reason: "TCP_ABORT_ON_CLOSE", state: "ESTABLISHED", fromReason: true},
		{name: "TCP_LINGER2 -1 close", abort: func(srv, cli *actor) *actor { cli.do("linger2 -1", "close"); return cli },
			rule: "linger2_negative", counter: "TcpExt.TCPAbortOnData", reason: "TCP_ABORT_ON_DATA", state: "FIN_WAIT2",
			peerFirstFIN: "peer"},
		{name: "TCP_LINGER2 -1 shutdown then close", abort: func(srv, cli *actor) *actor {
			cli.do("linger2 -1", "shutdown-write")
			settle()
			cli.do("close")
			return cli
		}, rule: "linger2_negative", counter: "TcpExt.TCPAbortOnLinger", reason: "TCP_ABORT_ON_LINGER", state: "FIN_WAIT2",
			peerFirstFIN: "peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNetns(t)
			srv, cli := ns.connected(t, "127.0.0.1")
			args := []string{"--netns", fmt.Sprint(ns.inode), "--skip-hook", "learn_owners"}
			var tr, all *tracer
			if tt.portFilter != "" {
				tr = startTracer(t, append(args, tt.portFilter, fmt.Sprint(srv.port))...)
				all = startTracer(t, args...)
			} else {
				tr = startTracer(t, args...)
			}
			// Its runtime makes (and closes) sockets of its own as it starts:
			// a --port tracer sees their destroys in the kernel, port 0.
			ns.listener(t, "127.0.0.1")
			before := ns.counters(t)
			closer := tt.abort(srv, cli)
			settle()
			after := ns.counters(t)
			evs := tr.stop()
			logLines(t, tr, "summary", "finding")

			wantDelta(t, before, after, tt.counter, 1)
			sum := summaryOf(t, evs, closer.port)
			inferred := tt.inferred || (tt.fromReason && !withReasons)
			if sum.Close == nil {
				t.Fatalf("closer's summary %+v: no close", sum)
			}
			wantClose(t, "closer", sum, "abort", sum.Close.FirstFIN, inferred)
			want := closeObject{Shape: "abort", FirstFIN: sum.Close.FirstFIN, State: tt.state, Rule: tt.rule, Counter: tt.counter,
				Inferred: inferred, InferredFrom: sum.Close.InferredFrom, SeenFrom: sum.Close.SeenFrom}
			if withReasons {
				want.ResetReason = tt.reason
			}
			if *sum.Close != want {
				t.Errorf("close %+v, want %+v", *sum.Close, want)
			}
			if sum.End != "reset" || sum.PID != closer.pid {
				t.Errorf("closer's summary ends %s, owned by pid %d: want reset, pid %d (the closing process)", sum.End, sum.PID, closer.pid)
			}
			peer := srv
			if closer == srv {
				peer = cli
			}
			if tt.portFilter != "--rport" {
				wantClose(t, "peer", summaryOf(t, evs, peer.port), "reset_by_peer", tt.peerFirstFIN, false)
			}
			finding := false
			for _, f := range ofType(evs, "finding") {
				if f.Kind == "abortive_close" && f.Sport == closer.port && f.Evidence["rule"] == tt.rule {
					finding = true
				}
			}
			if !finding {
				t.Errorf("no abortive_close finding naming %s", tt.rule)
			}
			destroy := socketWith(ofType(evs, "destroy"), func(e event) bool { return e.Sport == closer.port })
			if len(destroy) != 1 || destroy[0].Daddr != "127.0.0.1" || destroy[0].Dport != peer.port || destroy[0].Saddr != "127.0.0.1" {
				t.Errorf("closer's destroy %+v, want one, with the connection's 4-tuple", destroy)
			}
			if tt.portFilter == "" {
				return
			}
			for _, e := range evs {
				if e.Type != "finding_summary" && e.Dport != srv.port && (tt.portFilter == "--rport" || e.Sport != srv.port) {
					t.Errorf("%s %d shows %s %s:%d -> %s:%d", tt.portFilter, srv.port, e.Type, e.Saddr, e.Sport, e.Daddr, e.Dport)
				}
			}
			strays := 0
			for _, e := range ofType(all.stop(), "destroy") {
				if e.Dport == 0 && e.Sport != srv.port {
					strays++
				}
			}
			if strays == 0 {
				t.Error("no destroy of another port with its remote port 0 seen unfiltered: the filter was not put to the test")
			}
		})
	}
}

// TestCloseOwners: the process that closes a socket is its owner, seen as
// it closes, where nothing told tcptrace before (its listener or connection
// open before tracing, --skip-hook learn_owners); a socket destroyed from
// outside (ss -K) is not given to the process that destroyed it. The cookie
// is the one ss -e shows as sk:.
func TestCloseOwners(t *testing.T) {
	ns := newNetns(t)
	srv, cli := ns.connected(t, "127.0.0.1")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--skip-hook", "learn_owners")
	ssCookie := ns.cookieOf(t, cli.port)
	srv.do("close-listener")
	mustRun(t, "ip", "netns", "exec", ns.name, "ss", "-K", "src", "127.0.0.1", "sport", "=", fmt.Sprint(cli.port))
	settle()
	evs := tr.stop()
	logLines(t, tr, "state", "destroy", "summary")

	listener := false
	for _, e := range evs {
		if e.Sport != srv.port || e.Dport != 0 || (e.Type != "destroy" && e.NewState != "CLOSE") {
			continue
		}
		listener = true
		if e.PID != srv.pid {
			t.Errorf("the listener's %s %s: pid %d, want the server's %d", e.Type, e.NewState, e.PID, srv.pid)
		}
	}
	if !listener {
		t.Error("the listener's close was not seen")
	}
	client := socketWith(evs, func(e event) bool { return e.Sport == cli.port && e.Dport == srv.port })
	for _, e := range client {
		if e.PID != 0 {
			t.Errorf("client %s %s: pid %d, want none (only ss touched it)", e.Type, e.NewState, e.PID)
		}
	}
	if len(client) == 0 || client[0].Cookie != ssCookie {
		t.Errorf("client's events %+v: want cookie %d, as ss -e shows it", client, ssCookie)
	}
	sum := summaryOf(t, client, cli.port)
	// The rule is inferred from the RST's reason (TCP_STATE); without
	// reasons (before 6.10) the abort is all there is to tell.
	wantClose(t, "client", sum, "abort", "", kernelHasResetReasons(t))
	if sum.Close != nil && sum.Close.Rule != "socket_destroyed" && kernelHasResetReasons(t) {
		t.Errorf("client close %+v, want rule socket_destroyed", sum.Close)
	}
}

// cookieOf is the cookie ss -e shows (sk:, hex) for the socket on a local port.
func (ns *netns) cookieOf(t *testing.T, port int) uint64 {
	t.Helper()
	out := mustRun(t, "ip", "netns", "exec", ns.name, "ss", "-Htne", "sport", "=", fmt.Sprint(port))
	m := regexp.MustCompile(` sk:([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no sk: in ss -e: %s", out)
	}
	cookie, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return cookie
}
