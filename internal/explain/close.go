package explain

import (
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// abortWhy says what each abort rule means for the application, and what
// the kernel did instead of a FIN.
var abortWhy = map[string]string{
	events.RuleLingerZero: "The application set SO_LINGER with l_onoff 1 and l_linger 0 before close(): the kernel " +
		"then drops any data not yet sent and sends an RST instead of a FIN, and the socket gets no TIME_WAIT. The " +
		"peer's next read or write fails with ECONNRESET.",
	events.RuleUnreadData: "The application closed the socket while data it had not read was still queued: the " +
		"kernel sends an RST instead of a FIN, so that the peer knows the data was lost (RFC 2525, 2.17). Reading " +
		"everything before close() (or shutdown(SHUT_WR), then reading to the end) closes gracefully.",
	events.RuleLinger2: "TCP_LINGER2 was set below 0 on the socket: once the application has closed it, the kernel " +
		"resets the connection instead of waiting in FIN_WAIT2 for the peer's FIN (net.ipv4.tcp_fin_timeout does " +
		"not apply then).",
	events.RuleDataAfterClose: "Data arrived after the application had closed the socket (or shut it for reading): " +
		"the kernel can no longer deliver it, and resets the connection (RFC 1122).",
	events.RuleOrphanMemory: "The application had closed the socket, and the kernel, short of room for orphaned " +
		"sockets (net.ipv4.tcp_max_orphans) or of TCP memory (net.ipv4.tcp_mem), reset it instead of finishing its close.",
	events.RuleDisconnect: "tcp_disconnect() reset it: close() with SO_LINGER {1, 0}, connect(AF_UNSPEC) on the " +
		"socket, and a listener closing with this connection not yet accepted all end a connection so.",
	events.RuleDisconnectUnsent: "tcp_disconnect() reset it in CLOSING or LAST_ACK with data still unsent: " +
		"close() with SO_LINGER {1, 0}, or connect(AF_UNSPEC).",
	events.RuleSocketDestroyed: "The socket was destroyed from outside the application: sock_diag's SOCK_DESTROY " +
		"(ss -K does that) or a BPF program's bpf_sock_destroy(). Its owner gets ECONNABORTED.",
}

// abortSysctls are the namespace's sysctls a rule's story names (the
// orphan limits are the host's, not a namespace's).
var abortSysctls = map[string][]sysctl.Name{
	events.RuleLinger2: {sysctl.FinTimeout},
}

// abortiveClose explains a connection this side reset instead of closing
// it: what made the kernel do it, as far as the RST's reason and the events
// around it tell.
func (x *Explainer) abortiveClose(e *events.Summary) *events.Finding {
	c := e.Close
	values := x.sysctls(e.Netns, abortSysctls[c.Rule]...)
	msg := "The connection " + conn(e.Header) + " was reset by this side, an abortive close in " + string(c.State) +
		": " + events.RuleWords(c.Rule) + ". " + abortWhy[c.Rule]
	switch {
	case c.Inferred:
		msg += inferredNote(c.InferredFrom)
	case c.SeenFrom != "":
		msg += " tcptrace saw it: " + c.SeenFrom + "."
	}
	if c.Counter != "" {
		msg += " The kernel counts it in " + c.Counter + " (nstat, /proc/net/netstat)."
	}
	ev := map[string]any{"rule": c.Rule, "state": string(c.State)}
	for key, value := range map[string]string{"reset_reason": c.ResetReason, "counter": c.Counter,
		"inferred_from": c.InferredFrom, "seen_from": c.SeenFrom, "first_fin": string(c.FirstFIN)} {
		if value != "" {
			ev[key] = value
		}
	}
	if e.Incomplete {
		ev["incomplete"] = true
		msg += " Records were lost while this socket was traced (ring buffer full): its story may miss events."
	}
	return finding(e.Header, events.FindingAbortiveClose, msg, ev, values)
}
