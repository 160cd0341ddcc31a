// Package events is tcptrace's event model: one Go type per kind of thing the
// kernel reported, with kernel enum values carried by name. Everything after
// decode (tracking, explaining, rendering, replay) works on these types.
package events

import (
	"net/netip"
	"strings"
	"time"
)

// Type names an event kind as it appears in the JSON "type" field.
type Type string

const (
	TypeState         Type = "state"
	TypeRetransmit    Type = "retransmit"
	TypeResetSent     Type = "reset_sent"
	TypeResetReceived Type = "reset_received"
	TypeDestroy       Type = "destroy"
	TypeSnapshot      Type = "snapshot"

	// What the kernel did to TIME_WAIT sockets, as seen on their timer. The
	// tracker turns these into the events below; they are recorded, not shown.
	TypeTimewaitTimerStart  Type = "tw_timer_start"
	TypeTimewaitTimerExpire Type = "tw_timer_expire"
	TypeTimewaitTimerCancel Type = "tw_timer_cancel"
	TypeTimewaitRST         Type = "tw_rst"
	// Shown: what a TIME_WAIT socket decided about a segment (fexit).
	TypeTimewaitSegment Type = "tw_segment"
	// Shown: a segment received while closing (fentry).
	TypeSegment Type = "segment"

	// Made by the tracker from the kernel's events.
	TypeTimewaitEnter    Type = "timewait_enter"
	TypeTimewaitRestart  Type = "timewait_restart"
	TypeTimewaitEnd      Type = "timewait_end"
	TypeTimewaitOverflow Type = "timewait_overflow"
	TypeTimewaitSubstate Type = "timewait_substate"
	// TypeTimewaitRSTIgnored: the peer's RST did not end a TIME_WAIT socket.
	TypeTimewaitRSTIgnored Type = "timewait_rst_ignored"
	TypeSummary            Type = "summary"
	TypeFinding            Type = "finding"
	TypeFindingSummary     Type = "finding_summary"
)

// State is a kernel TCP state by its name without the TCP_ prefix, as the
// running kernel's BTF spells it (ESTABLISHED, SYN_RECV, CLOSE...). Names,
// not numbers, are what stay the same across kernels.
type State string

const (
	StateEstablished State = "ESTABLISHED"
	StateSynSent     State = "SYN_SENT"
	StateSynRecv     State = "SYN_RECV"
	StateFinWait1    State = "FIN_WAIT1"
	StateFinWait2    State = "FIN_WAIT2"
	StateTimeWait    State = "TIME_WAIT"
	StateClose       State = "CLOSE"
	StateCloseWait   State = "CLOSE_WAIT"
	StateLastAck     State = "LAST_ACK"
	StateListen      State = "LISTEN"
	StateClosing     State = "CLOSING"
	StateNewSynRecv  State = "NEW_SYN_RECV"
)

// Owner is the process that owns a socket, which is not necessarily the task
// that was on the CPU when the kernel did something to it. PID 0 means the
// owner is not known (the socket was never seen in its owner's context).
type Owner struct {
	PID      uint32
	Comm     string
	CgroupID uint64
	// Cgroup is what the cgroup id resolved to; nil when not known. One
	// value is shared by every owner in that cgroup, so owners compare
	// equal by pointer and a socket's history stays small.
	Cgroup *Cgroup
}

// Cgroup is the cgroup v2 directory an owner ran in, and what its path (and
// the node) tells of a container; empty fields are not known.
type Cgroup struct {
	Path         string // below the cgroup2 mount, e.g. /system.slice/docker-<id>.scope
	ContainerID  string
	Runtime      string // docker, containerd, cri-o, podman, or cri (a kubelet's, runtime not named)
	PodUID       string
	Pod          string
	PodNamespace string
}

// Header is what every event carries: when, which socket, whose.
type Header struct {
	Time   time.Time
	Cookie uint64 // socket cookie; 0 for an RST sent for no socket
	Family uint8  // 4 or 6
	Local  netip.AddrPort
	Remote netip.AddrPort
	Netns  uint32 // network namespace inode
	Owner  Owner
}

// Event is one thing the kernel reported about a socket.
type Event interface {
	Type() Type
	Head() *Header
}

// StateChange is one tcp_set_state() call.
type StateChange struct {
	Header
	Old, New State
	// PrevState is the time spent in Old; valid only when PrevStateKnown
	// (the previous transition was seen).
	PrevState      time.Duration
	PrevStateKnown bool
	// Syn holds the SYN of an accepted socket, on its LISTEN -> SYN_RECV.
	Syn SynInfo
	// Options, on a move to CLOSE: the socket's options that make a close
	// an abort, as it moved.
	Options CloseOptions
	// Handshake: what the handshake settled, on the change into
	// ESTABLISHED (where the kernel side reads it).
	Handshake      Handshake
	HandshakeKnown bool
}

// CloseOptions are the socket options that make a close an abort.
type CloseOptions struct {
	// Known: they were read (recordings made before tcptrace read them
	// have none).
	Known           bool
	LingerZero      bool // SO_LINGER {1, 0}: close() resets
	Linger2Negative bool // TCP_LINGER2 < 0: the orphan is reset, not kept in FIN_WAIT2
}

// Handshake is what a connection's handshake settled, read from the socket
// as it became ESTABLISHED.
type Handshake struct {
	MSSInUse      uint16 // the MSS segments are sent with
	MSSAdvertised uint16 // the MSS this side announced
	MSSReceived   uint16 // the peer's MSS option, as this side clamped it
	WindowScaling bool   // both sides offered window scaling; then:
	SendScale     uint8  // the peer's window scale (its windows are shifted by it)
	ReceiveScale  uint8  // this side's
	SACK          bool
	Timestamps    bool
	ECN           bool // classic ECN (RFC 3168) negotiated
	FastOpen      bool // the client's data in its SYN was acknowledged
	// RTT is the smoothed RTT then: on both sides the handshake's own
	// sample (SYN -> SYN-ACK on the client, SYN-ACK -> ACK on the server).
	RTT time.Duration
	// Retransmits: the client's SYNs or the server's SYN-ACKs sent again.
	Retransmits uint32
}

// Counters is what a socket carried, read as it was destroyed (the
// figures tcp_info and ss -ti give).
type Counters struct {
	BytesAcked    uint64 // sent and acknowledged
	BytesReceived uint64 // received in order
	SegsOut       uint32
	SegsIn        uint32
	Retransmits   uint32 // segments retransmitted
	RTT           time.Duration
	MinRTT        time.Duration
	DeliveryRate  uint64 // bytes a second, the last sample; 0 if none
}

// SynInfo is what decides whether a SYN may end a TIME_WAIT (RFC 6191): a
// SYN's sequence number and TCP timestamp value, or a TIME_WAIT socket's
// rcv_nxt and ts_recent.
type SynInfo struct {
	Seq        uint32
	SeqKnown   bool
	TSVal      uint32
	TSValKnown bool
}

// Retransmit is one retransmitted segment that the stack sent.
type Retransmit struct {
	Header
	State State
}

// ResetSent is an RST the kernel sent.
type ResetSent struct {
	Header
	// State is the socket's state; empty when NoSocket.
	State State
	// Reason is the kernel's enum sk_rst_reason name without its
	// SK_RST_REASON_ prefix; empty on kernels that do not report one.
	Reason string
	// NoSocket marks an RST answering a segment that matched no socket; the
	// addresses then come from that segment.
	NoSocket bool
}

// ResetReceived is a tcp_reset() on the socket: normally an RST arrived.
type ResetReceived struct {
	Header
	State State
}

// Destroy is the socket being torn down (tcp_destroy_sock).
type Destroy struct {
	Header
	State State
	// Counters: what the socket carried (not for a listener).
	Counters      Counters
	CountersKnown bool
}

// TimerAction is what happened to a timer.
type TimerAction uint8

const (
	TimerStart  TimerAction = iota + 1 // armed or re-armed
	TimerExpire                        // fired
	TimerCancel                        // stopped before it was due
)

// TimewaitTimer is a TIME_WAIT socket's timer being armed, firing or
// stopped early. The TIME_WAIT socket keeps the cookie of the socket it
// replaced.
type TimewaitTimer struct {
	Header
	Action TimerAction
	// Substate is the TIME_WAIT socket's tw_substate: TIME_WAIT, or
	// FIN_WAIT2 while the peer has not closed yet.
	Substate State
	// Timeout is how long until the timer is due (TimerStart only); valid
	// when TimeoutKnown.
	Timeout      time.Duration
	TimeoutKnown bool
	// Last is the TIME_WAIT socket's rcv_nxt and ts_recent (TimerCancel).
	Last SynInfo
	// Expires is when the timer is due, relative to Time (negative once
	// due), at TimerExpire and TimerCancel; valid when ExpiresKnown. It
	// tells when the timer was last armed (Expires - its timeout), to
	// within Tick (one jiffy).
	Expires      time.Duration
	ExpiresKnown bool
	Tick         time.Duration
	// NetnsDying (TimerCancel): nothing held the socket's network
	// namespace any more: the kernel stopped the timer tearing it down.
	NetnsDying bool
}

// TimewaitRST is the RST that ended a TIME_WAIT socket early: the segment
// the kernel freed right after it stopped the socket's timer.
type TimewaitRST struct {
	Header
	Substate State
}

// Snapshot is a socket that existed when tracing started.
type Snapshot struct {
	Header
	State State
	// Substate and Remaining (time until its timer is due) are set for a
	// TIME_WAIT socket.
	Substate  State
	Remaining time.Duration
	// RemainingKnown: Remaining is valid.
	RemainingKnown bool
}

func (e *Snapshot) Type() Type { return TypeSnapshot }

func (e *TimewaitTimer) Type() Type {
	switch e.Action {
	case TimerStart:
		return TypeTimewaitTimerStart
	case TimerExpire:
		return TypeTimewaitTimerExpire
	}
	return TypeTimewaitTimerCancel
}
func (e *TimewaitRST) Type() Type { return TypeTimewaitRST }

// TimewaitSegment is the kernel's verdict on a segment that reached a
// TIME_WAIT (or FIN_WAIT2) socket: tcp_timewait_state_process()'s return,
// seen where fexit is allowed.
type TimewaitSegment struct {
	Header
	Substate State
	// Verdict is the enum tcp_tw_status name without TCP_TW_: SUCCESS
	// (nothing to send; also an RST that killed it), ACK, ACK_OOW, RST,
	// SYN (a new connection may take the 4-tuple over).
	Verdict string
	Flags   uint8  // the segment's TCP flags byte
	Seq     uint32 // the segment's sequence number
	RcvNxt  uint32 // the TIME_WAIT socket's rcv_nxt
}

// FlagNames spells TCP flags: "SYN,ACK".
func FlagNames(flags uint8) string {
	var names []string
	for i, n := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"} {
		if flags&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

func (e *TimewaitSegment) Type() Type { return TypeTimewaitSegment }

// Segment is a segment that matters to a close (FIN, SYN or RST, out of
// window, data after FIN, the ACK of our FIN) received by a closing socket
// (FIN_WAIT1/2, CLOSING, LAST_ACK, CLOSE_WAIT), seen as
// tcp_rcv_state_process() began on it, where fentry is allowed.
type Segment struct {
	Header
	State  State // the socket's state when it arrived
	Flags  uint8 // the segment's TCP flags byte
	Seq    uint32
	Ack    uint32
	Window uint16 // the segment's window field, unscaled
	Len    uint16 // bytes of data
	RcvNxt uint32 // the socket's rcv_nxt
	// OutOfWindow: outside the socket's receive window (tcp_sequence()):
	// the kernel drops it and, unless it is an RST, answers with a
	// duplicate ACK.
	OutOfWindow bool
	// DataAfterFIN: data past rcv_nxt while the receive side is shut: after
	// close() or shutdown(SHUT_RD) the kernel resets the connection
	// (TCPAbortOnData); after the peer's FIN it ignores data from rcv_nxt
	// on and resets for data overlapping it.
	DataAfterFIN bool
}

func (e *Segment) Type() Type { return TypeSegment }

func (e *StateChange) Type() Type   { return TypeState }
func (e *Retransmit) Type() Type    { return TypeRetransmit }
func (e *ResetSent) Type() Type     { return TypeResetSent }
func (e *ResetReceived) Type() Type { return TypeResetReceived }
func (e *Destroy) Type() Type       { return TypeDestroy }

func (h *Header) Head() *Header { return h }

// Loss counts the records the kernel side dropped because its ring buffer
// was full: in all, by the kind of record (its name in bpf/event.h, without
// EVENT_ and in lower case) and by CPU. The breakdowns are nil where not
// known (a recording made before they were kept).
type Loss struct {
	Total  uint64            `json:"lost"`
	ByKind map[string]uint64 `json:"lost_by_kind,omitempty"`
	ByCPU  []uint64          `json:"lost_by_cpu,omitempty"`
}

// ProgramCost is what one of tcptrace's BPF programs cost the kernel while
// tracing ran (counted with the kernel's BPF statistics).
type ProgramCost struct {
	Program string
	Runs    uint64
	Time    time.Duration // spent in all runs together
}
