package events

import "time"

// What a socket's keepalive and write timers did, as the kernel reported it
// (tcp_timer), and what the tracker makes of it.
const (
	TypeTCPTimer   Type = "tcp_timer"   // recorded, not shown
	TypeWindowOpen Type = "window_open" // recorded, not shown

	TypeProbeSent       Type = "probe_sent" // fentry: a probe leaving
	TypeKeepaliveProbe  Type = "keepalive_probe"
	TypeKeepaliveAck    Type = "keepalive_ack"
	TypeZeroWindowStart Type = "zero_window_start"
	TypeZeroWindowProbe Type = "zero_window_probe"
	TypeZeroWindowEnd   Type = "zero_window_end"
	TypeRTO             Type = "rto"
	TypeTimeoutAbort    Type = "timeout_abort"
)

// TimerKind is which of a socket's timers fired.
type TimerKind string

const (
	TimerKeepalive TimerKind = "keepalive" // tcp_keepalive_timer
	TimerWrite     TimerKind = "write"     // tcp_write_timer
)

// Pending is what the write timer was armed for (icsk_pending).
type Pending string

const (
	PendingRetransmit Pending = "retransmit" // RTO
	PendingProbe0     Pending = "probe0"     // persist: zero-window probe
	PendingLossProbe  Pending = "loss_probe" // tail loss probe (TLP)
)

// KeepaliveSettings are a socket's own keepalive options; zero means the
// namespace's sysctl applies.
type KeepaliveSettings struct {
	On          bool          // SO_KEEPALIVE
	Idle        time.Duration // TCP_KEEPIDLE
	Interval    time.Duration // TCP_KEEPINTVL
	Probes      int           // TCP_KEEPCNT
	UserTimeout time.Duration // TCP_USER_TIMEOUT
}

// TCPTimer is one run of a socket's keepalive or write timer.
type TCPTimer struct {
	Header
	Kind    TimerKind
	Pending Pending // write timer only
	// Entry is when the handler started (Time is when it returned).
	Entry                     time.Time
	StateBefore, State        State
	ProbesBefore, ProbesAfter int // icsk_probes_out
	// SegmentsSent is how many segments the socket sent as the handler ran
	// (a probe, an RST; at most 255).
	SegmentsSent int
	Backoff      int // icsk_backoff after
	// Durations below are valid when TimesKnown (the kernel's tick rate
	// is known).
	TimesKnown bool
	RTO        time.Duration
	Next       time.Duration // until it is due again; 0: not re-armed
	Idle       time.Duration // since the last segment received
	PeerWindow uint32
	Settings   KeepaliveSettings
}

// WindowOpen: the peer advertised a window again after zero-window probes.
type WindowOpen struct {
	Header
	Window uint32
}

// ResolvedKeepalive is the keepalive configuration in force, with where it
// came from: "socket" (TCP_KEEPIDLE...), "sysctl", or "mixed".
type ResolvedKeepalive struct {
	Idle, Interval time.Duration
	Probes         int
	UserTimeout    time.Duration
	Source         string
}

// KeepaliveProbe: the keepalive timer sent a probe.
type KeepaliveProbe struct {
	Header
	Probe    int           // icsk_probes_out after sending
	Idle     time.Duration // since the last segment received
	Interval time.Duration // until the next probe is due
	Settings ResolvedKeepalive
}

// KeepaliveAck: the peer answered: the probe count went back to zero. Seen
// at the timer's next run, so inferred.
type KeepaliveAck struct {
	Header
	Probes int // unanswered probes before the answer
}

// ZeroWindowStart: the persist timer began probing a peer whose window is 0.
type ZeroWindowStart struct {
	Header
}

// ZeroWindowProbe: the persist timer sent a zero-window probe. On the wire
// it looks like a keepalive (no data, sequence SND.UNA-1).
type ZeroWindowProbe struct {
	Header
	Probe    int           // icsk_probes_out after sending
	Backoff  int           // icsk_backoff
	Interval time.Duration // until the next probe
}

// ZeroWindowEnd: a zero-window episode ended: "reopened", "aborted",
// "closed", or "tracing_stopped" while it went on.
type ZeroWindowEnd struct {
	Header
	How      string
	Duration time.Duration
	Probes   int
	// Intervals are the waits the persist timer set after each probe: the
	// backoff series.
	Intervals []time.Duration
}

// RTOKind is what a retransmission timer's expiry sent again.
type RTOKind string

const (
	RTOData      RTOKind = "rto"        // data (or a FIN)
	RTOLossProbe RTOKind = "loss_probe" // a tail loss probe (TLP)
	RTOSyn       RTOKind = "syn"        // the client's SYN
	RTOSynAck    RTOKind = "synack"     // the server's SYN-ACK
)

// RTO: the retransmission timer fired.
type RTO struct {
	Header
	Kind    RTOKind
	Backoff int
	RTO     time.Duration // the timeout now in force
}

// TimeoutAbort: a timer gave up on the connection (ETIMEDOUT to the
// application), and which rule decided.
type TimeoutAbort struct {
	Header
	Timer string // "keepalive", "retransmit", "zero_window", "syn"
	Rule  string // "keepalive_probes", "tcp_retries2", "tcp_syn_retries", "user_timeout", "tcp_orphan_retries"
	// Probes is the kernel's count of unanswered probes or retransmissions
	// in a row when it gave up (an ACK, even of a zero window, resets it).
	Probes int
	// Sent is how many probes or retransmissions the episode sent in all,
	// and Intervals the waits between them, as the timer armed them.
	Sent      int
	Intervals []time.Duration
	Elapsed   time.Duration // since the first unanswered probe or retransmission
	// Settings is what was in force (keepalive aborts).
	Settings ResolvedKeepalive
}

// ProbeSent: a probe left, seen at tcp_write_wakeup() where fentry is
// allowed; Timer says whose (keepalive or the persist/write timer).
type ProbeSent struct {
	Header
	Timer TimerKind
	State State
}

func (e *ProbeSent) Type() Type       { return TypeProbeSent }
func (e *TCPTimer) Type() Type        { return TypeTCPTimer }
func (e *WindowOpen) Type() Type      { return TypeWindowOpen }
func (e *KeepaliveProbe) Type() Type  { return TypeKeepaliveProbe }
func (e *KeepaliveAck) Type() Type    { return TypeKeepaliveAck }
func (e *ZeroWindowStart) Type() Type { return TypeZeroWindowStart }
func (e *ZeroWindowProbe) Type() Type { return TypeZeroWindowProbe }
func (e *ZeroWindowEnd) Type() Type   { return TypeZeroWindowEnd }
func (e *RTO) Type() Type             { return TypeRTO }
func (e *TimeoutAbort) Type() Type    { return TypeTimeoutAbort }
