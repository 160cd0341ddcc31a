package events

import (
	"strings"
	"time"
)

// CloseShape names how a connection closed, as one side of it saw it.
type CloseShape string

const (
	// ShapeThreeSegment: this side sent the first FIN; the peer's FIN
	// came with its ACK of it (FIN, FIN+ACK, ACK).
	ShapeThreeSegment CloseShape = "three_segment"
	// ShapeFourSegment: this side sent the first FIN; the peer ACKed it,
	// and sent its own FIN later (FIN, ACK, FIN, ACK).
	ShapeFourSegment CloseShape = "four_segment"
	// ShapeLocalFirst: this side sent the first FIN, and the peer's was
	// not seen: it never came, or not while the socket was traced.
	ShapeLocalFirst CloseShape = "local_first"
	// ShapePeerFirst: the peer sent the first FIN (a passive close).
	ShapePeerFirst CloseShape = "peer_first"
	// ShapeSimultaneous: the peer's FIN arrived before its ACK of ours:
	// both were sent before either arrived (CLOSING).
	ShapeSimultaneous CloseShape = "simultaneous"
	// ShapeAbort: this side reset the connection (Close.Rule says why).
	ShapeAbort CloseShape = "abort"
	// ShapeResetByPeer: an RST from the peer ended the connection.
	ShapeResetByPeer CloseShape = "reset_by_peer"
	// ShapeTimeout: a timer of this side gave up (ETIMEDOUT; Close.Rule
	// is the timeout_abort's rule).
	ShapeTimeout CloseShape = "timeout"
)

// What made this side reset its connection (Close.Rule of an abort).
const (
	RuleLingerZero       = "so_linger_zero"         // close() with SO_LINGER {1, 0}
	RuleUnreadData       = "unread_data"            // close() with data not read
	RuleLinger2          = "linger2_negative"       // TCP_LINGER2 < 0 on an orphaned socket
	RuleDataAfterClose   = "data_after_close"       // data arrived after close()
	RuleOrphanMemory     = "orphan_memory"          // too many orphans, or TCP memory short
	RuleDisconnect       = "disconnect"             // tcp_disconnect(), its caller not told
	RuleDisconnectUnsent = "disconnect_unsent_data" // tcp_disconnect() with data unsent
	RuleSocketDestroyed  = "socket_destroyed"       // tcp_abort(): destroyed from outside
	RuleKeepaliveTimeout = "keepalive_timeout"      // the keepalive timer's RST, no timeout_abort seen
)

// ruleWords says what each rule means, for people.
var ruleWords = map[string]string{
	RuleLingerZero:     "close() with SO_LINGER {1, 0} resets the connection instead of sending a FIN",
	RuleUnreadData:     "close() with unread data in the receive queue resets the connection (RFC 2525, 2.17)",
	RuleLinger2:        "TCP_LINGER2 < 0 resets an orphaned connection instead of keeping it in FIN_WAIT2",
	RuleDataAfterClose: "data arrived after close(), and the kernel resets the connection then (RFC 1122)",
	RuleOrphanMemory: "too many orphaned sockets (net.ipv4.tcp_max_orphans) or too little TCP memory " +
		"(net.ipv4.tcp_mem) made the kernel reset an orphaned connection",
	RuleDisconnect: "tcp_disconnect() reset the connection: close() with SO_LINGER {1, 0}, connect(AF_UNSPEC), " +
		"or its listener closing before it was accepted",
	RuleDisconnectUnsent: "tcp_disconnect() reset the connection in CLOSING or LAST_ACK with data still unsent",
	RuleSocketDestroyed: "the socket was destroyed from outside (sock_diag's SOCK_DESTROY, as ss -K does, or a BPF " +
		"program's bpf_sock_destroy())",
}

// RuleWords says what an abort's rule means; "" for none.
func RuleWords(rule string) string { return ruleWords[rule] }

// Close is how a socket's connection closed (Summary.Close).
type Close struct {
	// Shape is "" when nothing of a close was seen.
	Shape CloseShape
	// FirstFIN: who sent the first FIN as this side saw it (local or
	// peer); "" when no FIN went either way before the end.
	FirstFIN Closer
	// HalfClose is the time from the first FIN to the second as this side
	// saw them (ours sent and the peer's arriving, or the other way
	// round); valid when HalfCloseKnown. HalfCloseWithin, when not 0: the
	// second FIN's time is known only to be in a window that long after
	// HalfClose (its TIME_WAIT socket's substate move, derived).
	HalfClose       time.Duration
	HalfCloseKnown  bool
	HalfCloseWithin time.Duration
	// State is the state this side was in when the connection was reset
	// or aborted.
	State State
	// Rule is what made this side abort (Rule* above) or time out (the
	// timeout_abort's rule); "" when the evidence does not say.
	// ResetReason is the kernel's reason for the RST this side sent, and
	// Counter the TcpExt counter the kernel counted the abort in.
	Rule        string
	ResetReason string
	Counter     string
	// Inferred marks a shape or rule concluded from the events' order
	// and timing rather than seen; InferredFrom says from what. SeenFrom
	// says what showed an abort's rule where it was seen.
	Inferred     bool
	InferredFrom string
	SeenFrom     string
}

// Words tells the close in plain words: "this side sent the first FIN;
// the peer ACKed it and sent its own FIN 12 ms later (four-segment close)".
func (c *Close) Words() string {
	var b strings.Builder
	switch c.Shape {
	case ShapeThreeSegment:
		b.WriteString("this side sent the first FIN; the peer's FIN came with its ACK of it" + c.later() +
			" (three-segment close)")
	case ShapeFourSegment:
		b.WriteString("this side sent the first FIN; the peer ACKed it and sent its own FIN" + c.later() +
			" (four-segment close)")
	case ShapeLocalFirst:
		b.WriteString("this side sent the first FIN; the peer's FIN was not seen")
	case ShapePeerFirst:
		b.WriteString("the peer sent the first FIN; this side sent its own" + c.later())
	case ShapeSimultaneous:
		b.WriteString("simultaneous close: the peer's FIN arrived" + c.later() + ", before its ACK of ours (CLOSING)")
	case ShapeAbort:
		b.WriteString("abortive close in " + string(c.State) + ": ")
		if words := RuleWords(c.Rule); words != "" {
			b.WriteString(words)
		} else {
			b.WriteString("this side reset the connection")
		}
	case ShapeResetByPeer:
		b.WriteString("reset by the peer in " + string(c.State))
	case ShapeTimeout:
		b.WriteString("a timer gave up in " + string(c.State) + " (" + c.Rule + ")")
	}
	if c.ResetReason != "" {
		b.WriteString(", RST reason " + c.ResetReason)
	}
	if c.Counter != "" {
		b.WriteString(", counted in " + c.Counter)
	}
	if c.Inferred {
		b.WriteString(" (inferred from " + c.InferredFrom + ")")
	}
	if c.SeenFrom != "" {
		b.WriteString(" (seen: " + c.SeenFrom + ")")
	}
	return b.String()
}

// later says when the second FIN came after the first: " 12 ms later",
// " 12 ms to 13 ms later"; "" when not known.
func (c *Close) later() string {
	switch {
	case !c.HalfCloseKnown:
		return ""
	case c.HalfCloseWithin > 0:
		return " " + HumanDuration(c.HalfClose) + " to " + HumanDuration(c.HalfClose+c.HalfCloseWithin) + " later"
	}
	return " " + HumanDuration(c.HalfClose) + " later"
}
