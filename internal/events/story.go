package events

import "time"

// EndCause says how a TIME_WAIT socket ended.
type EndCause string

const (
	CauseExpired      EndCause = "expired"       // its timer fired
	CauseRST          EndCause = "rst"           // an RST killed it (tcp_rfc1337 = 0)
	CauseSynAccepted  EndCause = "syn_accepted"  // a new SYN on its 4-tuple was accepted
	CauseConnectReuse EndCause = "connect_reuse" // a connect() took its 4-tuple over
	CausePurged       EndCause = "purged"        // its network namespace went away
	// CauseRSTAnswer: it answered a segment with an RST (a SYN, or new
	// data, reaching a FIN_WAIT2 minisock: reason TCP_TIMEWAIT_SOCKET), and
	// the kernel killed it right after (inet_twsk_deschedule_put).
	CauseRSTAnswer EndCause = "rst_answer"
	CauseUnknown   EndCause = "unknown"
)

// TimewaitEnter: a socket's TIME_WAIT socket began (or changed substate),
// or, with Restart, its timer started over: a segment it answered with an
// ACK (a retransmitted FIN, an old SYN...) makes it wait the full time again.
type TimewaitEnter struct {
	Header
	Substate     State // TIME_WAIT, or FIN_WAIT2 until the peer closes
	Timeout      time.Duration
	TimeoutKnown bool
	Restart      bool
}

// TimewaitEnd: a TIME_WAIT socket ended.
type TimewaitEnd struct {
	Header
	Substate State
	Cause    EndCause
	Age      time.Duration // valid when AgeKnown
	AgeKnown bool
	// HistoryDropped: its start is not known because tcptrace dropped the
	// socket's history to stay within --max-sockets.
	HistoryDropped bool
	// Incomplete: records were lost (ring buffer full) while the socket
	// was tracked: its story may miss events.
	Incomplete bool
	// Inferred marks a cause concluded from other events rather than
	// seen; InferredFrom says from what.
	Inferred     bool
	InferredFrom string
	// Successor is the cookie of the socket that took over the 4-tuple
	// (syn_accepted, connect_reuse).
	Successor uint64
	// SuccessorBoundPort: the successor had its local port before it
	// connected (bind() before connect()).
	SuccessorBoundPort bool
	// For syn_accepted: the new SYN and what the TIME_WAIT socket held,
	// which tell why the kernel accepted it.
	Syn, Last SynInfo
	// PeerRST: the RST that ended it (cause rst) was seen leaving the peer,
	// sent for no connection (for no socket, or by a listener): the peer's
	// answer to an ACK of the TIME_WAIT socket, itself the answer to a
	// late segment. PeerRSTReason is that RST's reason.
	PeerRST       bool
	PeerRSTReason string
	// LateSegment is the segment the TIME_WAIT socket got before the RST,
	// where the precise hook saw it (fexit on tcp_timewait_state_process).
	LateSegment *TimewaitSegment
	// RSTAnswerReason: for rst_answer, the reason of the RST it sent.
	RSTAnswerReason string
}

// TimewaitSubstate: a TIME_WAIT socket moved from one substate to another
// (FIN_WAIT2 -> TIME_WAIT when the peer's FIN reached an orphaned
// FIN_WAIT2 minisock). The kernel re-arms the timer then, often in the
// same timer-wheel bucket, which no tracepoint shows: the move is seen in
// tw_substate at the timer's expiry or cancel, and its time is derived.
type TimewaitSubstate struct {
	Header
	Old, New     State
	Timeout      time.Duration // the timer it was re-armed with
	TimeoutKnown bool
	// Time (in Header) is the earliest the move can have happened; it
	// happened within Within after it. TimeKnown is false when no time
	// could be derived (then Time is when the move was seen).
	TimeKnown bool
	Within    time.Duration
	// DerivedFrom says where the time comes from. Inferred: seen after the
	// fact (at the timer's expiry or cancel), not as it happened (a re-arm
	// into another timer-wheel bucket shows it at once).
	DerivedFrom string
	Inferred    bool
	// SeenAt is when the new substate was read from the socket.
	SeenAt time.Time
}

// TimewaitRSTIgnored: an RST for a TIME_WAIT socket's 4-tuple left the
// peer (seen: the peer is traced too), in its window (the peer's answer to
// the TIME_WAIT socket's ACK carries seq = that ACK's ack = rcv_nxt), and
// the TIME_WAIT socket lived on. Explain tells why (tcp_rfc1337).
type TimewaitRSTIgnored struct {
	Header
	Substate State
	// PeerRSTAt, PeerRSTReason: the peer's RST.
	PeerRSTAt     time.Time
	PeerRSTReason string
	// PeerNoSocket: sent for no socket (else by the peer's listener).
	PeerNoSocket bool
	// AliveFor is how long after the RST the TIME_WAIT socket was seen
	// still alive (its timer not stopped), and Ended how it ended if it
	// did (expired).
	AliveFor time.Duration
	Ended    EndCause
}

// SynSeqAfter tells whether the new SYN's sequence number was after the
// TIME_WAIT socket's rcv_nxt; ok is false when either is unknown.
func (e *TimewaitEnd) SynSeqAfter() (after, ok bool) {
	if !e.Syn.SeqKnown || !e.Last.SeqKnown {
		return false, false
	}
	return int32(e.Syn.Seq-e.Last.Seq) > 0, true
}

// SynTSNewer tells whether the new SYN's timestamp was newer than the
// TIME_WAIT socket's ts_recent; ok is false when either is unknown.
func (e *TimewaitEnd) SynTSNewer() (newer, ok bool) {
	if !e.Syn.TSValKnown || !e.Last.TSValKnown {
		return false, false
	}
	return int32(e.Syn.TSVal-e.Last.TSVal) > 0, true
}

// TimewaitOverflow: a socket closed without the TIME_WAIT socket it should
// have had (tcp_max_tw_buckets reached).
type TimewaitOverflow struct {
	Header
	State State // the state it closed from
	// TimewaitSockets is how many TIME_WAIT sockets tcptrace saw alive in
	// the namespace then (those made before tracing began not counted).
	TimewaitSockets int
	// MaxTWBuckets is net.ipv4.tcp_max_tw_buckets as read when the socket
	// closed (the kernel's decision); valid when MaxTWBucketsKnown.
	MaxTWBuckets      int64
	MaxTWBucketsKnown bool
	InferredFrom      string
}

// Phase is one state in a socket's history.
type Phase struct {
	State State
	Start time.Time
	// Duration is valid when DurationKnown (the phase's start was seen).
	Duration      time.Duration
	DurationKnown bool
	// Timewait marks time spent as a TIME_WAIT socket (state is its
	// substate), after the full socket was gone.
	Timewait bool
}

// End is how a socket's story ended (Summary.End).
type End string

const (
	EndClosed           End = "closed"
	EndReset            End = "reset"
	EndNeverEstablished End = "never_established"
	EndTimewaitOverflow End = "timewait_overflow" // closed with no TIME_WAIT socket: tcp_max_tw_buckets
	EndOpen             End = "open"              // still open when tracing stopped
)

// timewaitEnds are the ends of sockets whose TIME_WAIT socket ended, by
// how it did: "timewait_<cause>".
var timewaitEnds = map[EndCause]End{}

func init() {
	for _, c := range []EndCause{CauseExpired, CauseRST, CauseSynAccepted, CauseConnectReuse, CausePurged,
		CauseRSTAnswer, CauseUnknown} {
		timewaitEnds[c] = End("timewait_" + c)
	}
}

// EndTimewait is the end of a socket whose TIME_WAIT socket ended so,
// without building the string for every socket.
func EndTimewait(c EndCause) End {
	if e, ok := timewaitEnds[c]; ok {
		return e
	}
	return End("timewait_" + c)
}

// Closer is who closed a connection first (Summary.ClosedBy).
type Closer string

const (
	CloserLocal Closer = "local" // this side: FIN_WAIT1
	CloserPeer  Closer = "peer"  // the peer's FIN: CLOSE_WAIT
	CloserReset Closer = "reset" // an RST, before either FIN
)

// FindingKind names what a finding explains.
type FindingKind string

const (
	FindingTimewaitSynReuse       FindingKind = "timewait_syn_reuse"
	FindingTimewaitConnectReuse   FindingKind = "timewait_connect_reuse"
	FindingTimewaitRSTKill        FindingKind = "timewait_rst_kill"
	FindingTimewaitRFC1337Kept    FindingKind = "timewait_rfc1337_kept"
	FindingTimewaitOverflow       FindingKind = "timewait_overflow"
	FindingLateSegmentInTimewait  FindingKind = "late_segment_in_timewait"
	FindingUserTimeout            FindingKind = "user_timeout"
	FindingKeepaliveTimeout       FindingKind = "keepalive_timeout"
	FindingRetransmitTimeout      FindingKind = "retransmit_timeout"
	FindingZeroWindowNotKeepalive FindingKind = "zero_window_not_keepalive"
	FindingAbortiveClose          FindingKind = "abortive_close"
)

// Summary is a socket's whole story, told when it ends (or at exit).
type Summary struct {
	Header
	History []Phase
	// ClosedBy is who closed first; "" when not seen.
	ClosedBy       Closer
	End            End
	Retransmits    int
	ResetsSent     int
	ResetsReceived int
	// BeforeTrace marks a socket that existed before tracing started.
	BeforeTrace bool
	// HistoryDropped marks a socket whose earlier history tcptrace dropped
	// to stay within --max-sockets: what it tells starts later.
	HistoryDropped bool
	// Incomplete: records were lost while the socket was tracked.
	Incomplete bool
	// Close is how its connection closed, as far as seen.
	Close Close
	// Lifetime: from the first state change seen to the end; known only
	// when the socket was seen from its start.
	Lifetime      time.Duration
	LifetimeKnown bool
	// Handshake: what the handshake settled, where it was seen.
	Handshake      Handshake
	HandshakeKnown bool
	// Counters: what the socket carried, read as the full socket was
	// destroyed (before its TIME_WAIT socket's life); not for one still
	// open at exit.
	Counters      Counters
	CountersKnown bool
}

// Finding explains, in plain words, why the kernel did something, with the
// evidence and the settings that decided it.
type Finding struct {
	Header
	Kind FindingKind
	// ID numbers the findings written in a run, from 1.
	ID uint64
	// See, when not 0, is the ID of the finding told in full that this one
	// repeats (the same kind, words and sysctls in its network namespace):
	// Message and Sysctls are then left out, as they are there. Count is
	// how many findings like See's have been written so far, See's and
	// this one included.
	See, Count uint64
	Message    string
	Evidence   map[string]any
	Sysctls    map[string]any
}

// FindingSummary counts the findings of one kind written in a network
// namespace from Since to Time (in Header, with Netns; no socket's).
type FindingSummary struct {
	Header
	Kind  FindingKind
	Since time.Time
	Count uint64
	// ExampleCookie is the socket of the first finding counted.
	ExampleCookie uint64
}

func (e *TimewaitEnter) Type() Type {
	if e.Restart {
		return TypeTimewaitRestart
	}
	return TypeTimewaitEnter
}
func (e *TimewaitEnd) Type() Type      { return TypeTimewaitEnd }
func (e *TimewaitOverflow) Type() Type { return TypeTimewaitOverflow }
func (e *TimewaitSubstate) Type() Type { return TypeTimewaitSubstate }
func (e *TimewaitRSTIgnored) Type() Type {
	return TypeTimewaitRSTIgnored
}
func (e *Summary) Type() Type        { return TypeSummary }
func (e *Finding) Type() Type        { return TypeFinding }
func (e *FindingSummary) Type() Type { return TypeFindingSummary }
