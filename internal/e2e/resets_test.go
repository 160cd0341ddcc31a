package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// kernelHasResetReasons tells whether tcp_send_reset carries enum
// sk_rst_reason here (Linux 6.10+), from the tracer's own feature report.
func kernelHasResetReasons(t *testing.T) bool {
	t.Helper()
	return strings.Contains(mustRun(t, tracerBinary, "features"), "with enum sk_rst_reason")
}

// preciseHookAttached tells whether tcptrace features reports a precise
// (fentry/fexit) hook attached. The only acceptable reason for it not to be
// is a kernel that refuses fentry/fexit (the 6.18 host): any other refusal,
// such as the verifier's, fails the test instead of skipping its checks.
func preciseHookAttached(t *testing.T, hook string) bool {
	t.Helper()
	requireTracing(t)
	for line := range strings.SplitSeq(mustRun(t, tracerBinary, "features"), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != hook {
			continue
		}
		if f[3] != "attached" && !strings.Contains(line, "does not permit") {
			t.Fatalf("precise hook %s unavailable for another reason than the kernel refusing fentry/fexit: %s", hook, line)
		}
		return f[3] == "attached"
	}
	t.Fatalf("tcptrace features does not list %s", hook)
	return false
}

// TestResets: an abortive close sends an RST with the kernel's reason, the
// peer sees it arrive, and the events match the namespace's counters.
func TestResets(t *testing.T) {
	withReasons := kernelHasResetReasons(t)
	tests := []struct {
		name string
		// abort makes one side reset the connection; it returns the
		// actor that sends the RST and the one that receives it.
		abort   func(srv, cli *actor) (sender, receiver *actor)
		reason  string // the reason on kernels that report one
		counter string // TcpExt counter the abort increments
	}{
		{
			name: "SO_LINGER 0 close",
			abort: func(srv, cli *actor) (*actor, *actor) {
				cli.do("linger0", "close")
				return cli, srv
			},
			reason:  "TCP_STATE",
			counter: "TcpExt.TCPAbortOnData",
		},
		{
			name: "close with unread data",
			abort: func(srv, cli *actor) (*actor, *actor) {
				cli.do("write 100")
				srv.do("wait-readable", "close")
				return srv, cli
			},
			reason:  "TCP_ABORT_ON_CLOSE",
			counter: "TcpExt.TCPAbortOnClose",
		},
	}
	for _, fam := range families {
		for _, tt := range tests {
			t.Run(fam.name+"/"+tt.name, func(t *testing.T) {
				ns := newNetns(t)
				tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
				srv, cli := ns.connected(t, fam.loopback)
				before := ns.counters(t)
				sender, receiver := tt.abort(srv, cli)
				settle()
				evs := tr.stop()
				after := ns.counters(t)

				sent := ofType(evs, "reset_sent")
				if len(sent) != 1 {
					t.Fatalf("%d reset_sent events, want 1: %+v", len(sent), evs)
				}
				rst := sent[0]
				// The kernel moves the socket to CLOSE before it sends the RST.
				if rst.Sport != sender.port || rst.PID != sender.pid || rst.State != "CLOSE" || rst.NoSocket {
					t.Errorf("reset_sent %+v, want from port %d pid %d in CLOSE", rst, sender.port, sender.pid)
				}
				want := ""
				if withReasons {
					want = tt.reason
				}
				if rst.Reason != want {
					t.Errorf("reset reason %q, want %q", rst.Reason, want)
				}
				got := ofType(evs, "reset_received")
				if len(got) != 1 || got[0].Sport != receiver.port || got[0].PID != receiver.pid || got[0].State != "ESTABLISHED" {
					t.Errorf("reset_received %+v, want one on port %d pid %d in ESTABLISHED", got, receiver.port, receiver.pid)
				}
				wantDelta(t, before, after, "Tcp.OutRsts", int64(len(sent)))
				wantDelta(t, before, after, tt.counter, 1)
				// Both sockets end in CLOSE straight from ESTABLISHED.
				for _, a := range []*actor{sender, receiver} {
					sock := socketWith(evs, func(e event) bool { return e.Sport == a.port && e.Dport != 0 })
					if got := transitions(sock); !strings.HasSuffix(got, "ESTABLISHED->CLOSE") {
						t.Errorf("port %d: %s, want it to end ESTABLISHED->CLOSE", a.port, got)
					}
				}
			})
		}
	}
}

// TestResetForNoSocket: a SYN to a port nobody listens on is answered by an
// RST that belongs to no socket; the connecting side sees it arrive.
func TestResetForNoSocket(t *testing.T) {
	withReasons := kernelHasResetReasons(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			ns := newNetns(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			before := ns.counters(t)
			cli := ns.startActor(t)
			const closedPort = 9 // discard: nobody listens in a fresh namespace
			if line := cli.try("connect " + addr(fam.loopback, closedPort)); !strings.Contains(line, "connection refused") {
				t.Fatalf("connect to a closed port: %s", line)
			}
			settle()
			evs := tr.stop()
			after := ns.counters(t)

			// Kernels before 6.10 do not fire tcp_send_reset without a
			// socket (the same release added the reason argument).
			sent := ofType(evs, "reset_sent")
			if !withReasons {
				if len(sent) != 0 {
					t.Errorf("reset_sent events %+v on a kernel that does not report them", sent)
				}
			} else if len(sent) != 1 {
				t.Errorf("%d reset_sent events, want 1: %+v", len(sent), evs)
			} else if rst := sent[0]; !rst.NoSocket || rst.Cookie != 0 || rst.PID != 0 || rst.Sport != closedPort ||
				rst.Family != fam.family || rst.Reason != "NO_SOCKET" {
				t.Errorf("reset_sent %+v, want no_socket, cookie 0, pid 0, from port %d, reason NO_SOCKET", rst, closedPort)
			}
			got := ofType(evs, "reset_received")
			if len(got) != 1 || got[0].PID != cli.pid || got[0].State != "SYN_SENT" || got[0].Dport != closedPort {
				t.Errorf("reset_received %+v, want one for pid %d in SYN_SENT", got, cli.pid)
			}
			wantDelta(t, before, after, "Tcp.OutRsts", 1)
		})
	}
}

// TestRetransmits: with the server silenced by nftables, every retransmitted
// segment is one retransmit event and one Tcp RetransSegs.
func TestRetransmits(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			ns := newNetns(t)
			tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
			srv, cli := ns.connected(t, fam.loopback)
			before := ns.counters(t)
			// Drop on input: a drop on output fails the send locally, and
			// failed retransmits are neither counted nor reported.
			ns.nft(t, fmt.Sprintf(`table inet tcptrace_e2e {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport %d drop
	}
}`, srv.port))
			cli.do("write 2000")
			// RTO starts at 200 ms and doubles: about 4 retransmits in 2.5 s.
			time.Sleep(2500 * time.Millisecond)
			cli.do("linger0", "close")
			settle()
			evs := tr.stop()
			after := ns.counters(t)

			rtx := ofType(evs, "retransmit")
			if len(rtx) < 3 {
				t.Errorf("%d retransmit events, want at least 3", len(rtx))
			}
			wantDelta(t, before, after, "Tcp.RetransSegs", int64(len(rtx)))
			for _, e := range rtx {
				if e.Sport != cli.port || e.Dport != srv.port || e.PID != cli.pid || e.State != "ESTABLISHED" {
					t.Errorf("retransmit %+v, want from client port %d pid %d in ESTABLISHED", e, cli.port, cli.pid)
				}
			}
		})
	}
}
