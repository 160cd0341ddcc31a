// Package decode turns ring-buffer records from tcptrace's BPF programs into
// events. The record layout is layout.TcptraceEvent, generated from
// bpf/event.h; kernel enum numbers are mapped to names through tables the
// probe layer reads from the running kernel's BTF.
package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/tcptrace/tcptrace/bpf/layout"
	"github.com/tcptrace/tcptrace/internal/events"
)

// RecordSize is the size of the whole layout, the longest record of any kind
// but for its tail.
const RecordSize = int(unsafe.Sizeof(layout.TcptraceEvent{}))

// MinRecordSize is the length of the shortest record: the fields every kind
// carries.
const MinRecordSize = int(layout.TcptraceRecordLengthRECORD_LEN_BASE)

// lengths are the lengths of the records of each kind before their tail,
// as record_length() in bpf/event.h gives them (a test checks it): a record
// holds the groups of fields its kind uses, and no more.
var lengths = func() (l [256]uint8) {
	for t := range l {
		l[t] = uint8(layout.TcptraceRecordLengthRECORD_LEN_BASE)
	}
	for _, t := range []layout.TcptraceEventType{layout.TcptraceEventTypeEVENT_TW_START,
		layout.TcptraceEventTypeEVENT_TW_EXPIRE, layout.TcptraceEventTypeEVENT_TW_CANCEL,
		layout.TcptraceEventTypeEVENT_SNAPSHOT} {
		l[t] = uint8(layout.TcptraceRecordLengthRECORD_LEN_TIMEWAIT)
	}
	l[layout.TcptraceEventTypeEVENT_STATE] = uint8(layout.TcptraceRecordLengthRECORD_LEN_STATE)
	l[layout.TcptraceEventTypeEVENT_TW_SEGMENT] = uint8(layout.TcptraceRecordLengthRECORD_LEN_SEGMENT)
	l[layout.TcptraceEventTypeEVENT_SEGMENT] = uint8(layout.TcptraceRecordLengthRECORD_LEN_SEGMENT)
	for _, t := range []layout.TcptraceEventType{layout.TcptraceEventTypeEVENT_TCP_TIMER,
		layout.TcptraceEventTypeEVENT_PROBE_SENT, layout.TcptraceEventTypeEVENT_WINDOW_OPEN} {
		l[t] = uint8(layout.TcptraceRecordLengthRECORD_LEN_FULL)
	}
	return l
}()

// Length is the length of a record of kind typ (enum event_type) before its
// tail.
func Length(typ uint8) int { return int(lengths[typ]) }

// tailSizes are the lengths of the tails some records carry after the event
// (enum record_tail).
var tailSizes = [...]int{
	layout.TcptraceRecordTailTAIL_NONE:      0,
	layout.TcptraceRecordTailTAIL_HANDSHAKE: int(unsafe.Sizeof(layout.TcptraceTcpHandshake{})),
	layout.TcptraceRecordTailTAIL_COUNTERS:  int(unsafe.Sizeof(layout.TcptraceTcpCounters{})),
}

// Where a record says what kind it is and which tail follows it.
const (
	typeOffset = int(unsafe.Offsetof(layout.TcptraceEvent{}.Type))
	tailOffset = int(unsafe.Offsetof(layout.TcptraceEvent{}.Tail))
)

// Size is the length of the record rec starts with, its tail included, for
// records laid end to end; MinRecordSize where rec is too short to tell.
func Size(rec []byte) int {
	if len(rec) < MinRecordSize || int(rec[tailOffset]) >= len(tailSizes) {
		return MinRecordSize
	}
	return Length(rec[typeOffset]) + tailSizes[rec[tailOffset]]
}

// ErrShortRecord is returned for a record shorter than its kind's.
var ErrShortRecord = errors.New("short record")

// Names is what a record's numbers mean on the kernel that wrote it: its
// enum numbers by name, and its tick rate. The probe layer reads them from
// the running kernel; a recording carries them in its header, in this
// form (docs/record.md).
type Names struct {
	// HZ is the kernel's tick rate, to turn timer ticks into time; 0 when
	// unknown.
	HZ int `json:"hz"`
	// States maps a TCP state number to its name (TCP_ prefix dropped).
	States map[uint8]events.State `json:"states"`
	// ResetReasons maps an enum sk_rst_reason number to its name
	// (SK_RST_REASON_ prefix dropped); nil on kernels without the enum.
	ResetReasons map[uint32]string `json:"reset_reasons,omitempty"`
	// TWVerdicts maps enum tcp_tw_status numbers to names (TCP_TW_
	// dropped); nil on kernels without the enum.
	TWVerdicts map[uint32]string `json:"tw_verdicts,omitempty"`
}

var timerActions = map[uint8]events.TimerAction{
	uint8(layout.TcptraceEventTypeEVENT_TW_START):  events.TimerStart,
	uint8(layout.TcptraceEventTypeEVENT_TW_EXPIRE): events.TimerExpire,
	uint8(layout.TcptraceEventTypeEVENT_TW_CANCEL): events.TimerCancel,
}

// Decoder decodes records. It is not safe for concurrent use.
type Decoder struct {
	names Names
	// states is names.States as a table: every record names one or two
	// states, and indexing beats hashing.
	states [256]events.State
	// boot is the wall-clock time at which CLOCK_MONOTONIC was zero, which
	// turns bpf_ktime_get_ns() stamps into wall-clock times.
	boot time.Time
	// comms interns process names: a few processes make most events, and a
	// string per event would be an allocation per event. lastComm is the
	// one seen last, the usual answer (the zero value is right: no name).
	comms        map[[16]int8]string
	lastComm     [16]int8
	lastCommName string
	// scratch and the tails' hold the record when it cannot be read in
	// place (see readAs).
	scratch          layout.TcptraceEvent
	whole            layout.TcptraceEvent // a record shorter than the layout, made whole
	handshakeScratch layout.TcptraceTcpHandshake
	countersScratch  layout.TcptraceTcpCounters
	// The events of the kinds that make most records, reused (see Decode).
	stateChange events.StateChange
	destroy     events.Destroy
	timer       events.TimewaitTimer
}

// New returns a decoder for a kernel with the given enum names, whose
// monotonic clock read zero at boot.
func New(names Names, boot time.Time) *Decoder {
	d := &Decoder{names: names, boot: boot, comms: map[[16]int8]string{}}
	for n, s := range names.States {
		d.states[n] = s
	}
	return d
}

// Decode decodes one record. Records that are short, of an unknown type or
// family, or name a state the kernel does not have, are errors.
//
// A StateChange, Destroy or TimewaitTimer returned is the decoder's own,
// overwritten by the next Decode: they are most records, and a new event
// per record would be most of the garbage a trace makes. Events of other
// kinds are new each time.
func (d *Decoder) Decode(rec []byte) (events.Event, error) {
	if len(rec) < MinRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortRecord, len(rec), MinRecordSize)
	}
	if n := Length(rec[typeOffset]); len(rec) < n {
		return nil, fmt.Errorf("%w: %d bytes, want %d for event type %d", ErrShortRecord, len(rec), n, rec[typeOffset])
	}
	raw, err := d.read(rec)
	if err != nil {
		return nil, err
	}
	h, err := d.header(raw)
	if err != nil {
		return nil, err
	}
	flags := layout.TcptraceEventFlag(raw.Flags)
	noSocket := flags&layout.TcptraceEventFlagEVENT_FLAG_NO_SOCKET != 0
	var state events.State
	if !noSocket {
		if state, err = d.state(raw.State); err != nil {
			return nil, err
		}
	}

	switch layout.TcptraceEventType(raw.Type) {
	case layout.TcptraceEventTypeEVENT_STATE:
		old, err := d.state(raw.OldState)
		if err != nil {
			return nil, err
		}
		ev := &d.stateChange
		*ev = events.StateChange{Header: h, Old: old, New: state, Syn: synInfo(raw), Options: closeOptions(raw.AuxFlags)}
		if flags&layout.TcptraceEventFlagEVENT_FLAG_PREV_STATE_KNOWN != 0 {
			ev.PrevState = time.Duration(raw.PrevStateNs)
			ev.PrevStateKnown = true
		}
		tail, err := d.tail(rec, raw, layout.TcptraceRecordTailTAIL_HANDSHAKE)
		if err != nil {
			return nil, err
		}
		if tail != nil {
			hs, err := readAs(tail, &d.handshakeScratch)
			if err != nil {
				return nil, err
			}
			ev.Handshake, ev.HandshakeKnown = handshake(hs), true
		}
		return ev, nil
	case layout.TcptraceEventTypeEVENT_RETRANSMIT:
		return &events.Retransmit{Header: h, State: state}, nil
	case layout.TcptraceEventTypeEVENT_RESET_SENT:
		ev := &events.ResetSent{Header: h, State: state, NoSocket: noSocket}
		if flags&layout.TcptraceEventFlagEVENT_FLAG_HAS_REASON != 0 {
			if ev.Reason, err = d.resetReason(raw.Reason); err != nil {
				return nil, err
			}
		}
		return ev, nil
	case layout.TcptraceEventTypeEVENT_RESET_RECEIVED:
		return &events.ResetReceived{Header: h, State: state}, nil
	case layout.TcptraceEventTypeEVENT_DESTROY:
		d.destroy = events.Destroy{Header: h, State: state}
		tail, err := d.tail(rec, raw, layout.TcptraceRecordTailTAIL_COUNTERS)
		if err != nil {
			return nil, err
		}
		if tail != nil && state != events.StateListen {
			c, err := readAs(tail, &d.countersScratch)
			if err != nil {
				return nil, err
			}
			d.destroy.Counters, d.destroy.CountersKnown = counters(c), true
		}
		return &d.destroy, nil
	case layout.TcptraceEventTypeEVENT_TW_START, layout.TcptraceEventTypeEVENT_TW_EXPIRE, layout.TcptraceEventTypeEVENT_TW_CANCEL:
		sub, err := d.state(raw.Substate)
		if err != nil {
			return nil, err
		}
		ev := &d.timer
		*ev = events.TimewaitTimer{Header: h, Substate: sub, Action: timerActions[raw.Type], Last: synInfo(raw)}
		if ev.Action == events.TimerStart && d.names.HZ > 0 {
			ev.Timeout = d.ticks(raw.TimerJiffies)
			ev.TimeoutKnown = true
		}
		if ev.Action != events.TimerStart && d.names.HZ > 0 && raw.AuxFlags&uint8(layout.TcptraceTwFlagTW_FLAG_EXPIRES_KNOWN) != 0 {
			ev.Expires, ev.ExpiresKnown = d.ticks(raw.TimerJiffies), true
			ev.Tick = time.Second / time.Duration(d.names.HZ)
		}
		ev.NetnsDying = ev.Action == events.TimerCancel && raw.AuxFlags&uint8(layout.TcptraceTwFlagTW_FLAG_NETNS_DYING) != 0
		return ev, nil
	case layout.TcptraceEventTypeEVENT_SNAPSHOT:
		ev := &events.Snapshot{Header: h, State: state}
		if state == events.StateTimeWait {
			if ev.Substate, err = d.state(raw.Substate); err != nil {
				return nil, err
			}
			if d.names.HZ > 0 {
				ev.Remaining = d.ticks(raw.TimerJiffies)
				ev.RemainingKnown = true
			}
		}
		return ev, nil
	case layout.TcptraceEventTypeEVENT_TCP_TIMER:
		return d.tcpTimer(h, raw, state)
	case layout.TcptraceEventTypeEVENT_TW_SEGMENT:
		sub, err := d.state(raw.Substate)
		if err != nil {
			return nil, err
		}
		verdict, ok := d.names.TWVerdicts[raw.Reason]
		if !ok {
			return nil, fmt.Errorf("TIME_WAIT verdict %d is not in the kernel's enum tcp_tw_status", raw.Reason)
		}
		return &events.TimewaitSegment{Header: h, Substate: sub, Verdict: verdict, Flags: raw.TcpFlags,
			Seq: raw.Seq, RcvNxt: raw.RcvNxt}, nil
	case layout.TcptraceEventTypeEVENT_SEGMENT:
		return &events.Segment{Header: h, State: state, Flags: raw.TcpFlags, Seq: raw.Seq, Ack: raw.AckSeq,
			Window: raw.Window, Len: raw.PayloadLen, RcvNxt: raw.RcvNxt,
			OutOfWindow:  flags&layout.TcptraceEventFlagEVENT_FLAG_OUT_OF_WINDOW != 0,
			DataAfterFIN: flags&layout.TcptraceEventFlagEVENT_FLAG_DATA_AFTER_FIN != 0}, nil
	case layout.TcptraceEventTypeEVENT_PROBE_SENT:
		timer := events.TimerKeepalive
		if layout.TcptraceTcpTimerKind(raw.Timer.Kind) == layout.TcptraceTcpTimerKindTCP_TIMER_WRITE {
			timer = events.TimerWrite
		}
		return &events.ProbeSent{Header: h, Timer: timer, State: state}, nil
	case layout.TcptraceEventTypeEVENT_WINDOW_OPEN:
		return &events.WindowOpen{Header: h, Window: raw.Timer.SndWnd}, nil
	case layout.TcptraceEventTypeEVENT_TW_RST:
		sub, err := d.state(raw.Substate)
		if err != nil {
			return nil, err
		}
		return &events.TimewaitRST{Header: h, Substate: sub}, nil
	}
	return nil, fmt.Errorf("unknown event type %d", raw.Type)
}

// read returns the record in the generated layout, the fields its kind does
// not have zero.
func (d *Decoder) read(rec []byte) (*layout.TcptraceEvent, error) {
	n := Length(rec[typeOffset])
	if n == RecordSize {
		return readAs(rec[:n], &d.scratch)
	}
	whole := unsafe.Slice((*byte)(unsafe.Pointer(&d.whole)), RecordSize)
	clear(whole[copy(whole, rec[:n]):])
	return readAs(whole, &d.scratch)
}

// readAs returns b as a T in the generated layout. A little-endian host,
// like the kernel that wrote it, reads it in place where it is aligned (the
// ring buffer reader's records are) and copies it into scratch where not;
// others (a recording replayed on a big-endian host) decode it field by
// field.
func readAs[T any](b []byte, scratch *T) (*T, error) {
	if !hostLittleEndian {
		if _, err := binary.Decode(b, binary.LittleEndian, scratch); err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		return scratch, nil
	}
	if p := unsafe.Pointer(unsafe.SliceData(b)); uintptr(p)%unsafe.Alignof(*scratch) == 0 {
		return (*T)(p), nil
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(scratch)), unsafe.Sizeof(*scratch)), b)
	return scratch, nil
}

// tail returns the tail of kind want that follows rec's event, if it has
// one.
func (d *Decoder) tail(rec []byte, raw *layout.TcptraceEvent, want layout.TcptraceRecordTail) ([]byte, error) {
	if layout.TcptraceRecordTail(raw.Tail) != want {
		return nil, nil
	}
	at, size := Length(raw.Type), tailSizes[want]
	if len(rec) < at+size {
		return nil, fmt.Errorf("%w: %d bytes, want %d for event type %d and its tail", ErrShortRecord, len(rec), at+size, raw.Type)
	}
	return rec[at : at+size], nil
}

func handshake(h *layout.TcptraceTcpHandshake) events.Handshake {
	has := func(o layout.TcptraceHandshakeOption) bool { return layout.TcptraceHandshakeOption(h.Options)&o != 0 }
	hs := events.Handshake{
		MSSInUse: h.MssInUse, MSSAdvertised: h.MssAdvertised, MSSReceived: h.MssReceived,
		WindowScaling: has(layout.TcptraceHandshakeOptionHANDSHAKE_WSCALE),
		SACK:          has(layout.TcptraceHandshakeOptionHANDSHAKE_SACK),
		Timestamps:    has(layout.TcptraceHandshakeOptionHANDSHAKE_TIMESTAMPS),
		ECN:           has(layout.TcptraceHandshakeOptionHANDSHAKE_ECN),
		FastOpen:      has(layout.TcptraceHandshakeOptionHANDSHAKE_FASTOPEN),
		RTT:           time.Duration(h.SrttUs) * time.Microsecond,
		Retransmits:   h.Retrans,
	}
	if hs.WindowScaling {
		hs.SendScale, hs.ReceiveScale = h.SndWscale, h.RcvWscale
	}
	return hs
}

func counters(c *layout.TcptraceTcpCounters) events.Counters {
	return events.Counters{
		BytesAcked: c.BytesAcked, BytesReceived: c.BytesReceived,
		SegsOut: c.SegsOut, SegsIn: c.SegsIn, Retransmits: c.TotalRetrans,
		RTT:          time.Duration(c.SrttUs) * time.Microsecond,
		MinRTT:       time.Duration(c.MinRttUs) * time.Microsecond,
		DeliveryRate: c.DeliveryRate,
	}
}

// icsk_pending values: #defines in include/net/inet_connection_sock.h, so
// not in BTF (see bpf/tcptrace.bpf.c).
var pendings = map[uint8]events.Pending{1: events.PendingRetransmit, 3: events.PendingProbe0, 5: events.PendingLossProbe}

func (d *Decoder) tcpTimer(h events.Header, raw *layout.TcptraceEvent, state events.State) (events.Event, error) {
	t := &raw.Timer
	before, err := d.state(raw.OldState)
	if err != nil {
		return nil, err
	}
	ev := &events.TCPTimer{Header: h, State: state, StateBefore: before, Entry: d.boot.Add(time.Duration(t.EntryNs)),
		ProbesBefore: int(t.ProbesBefore), ProbesAfter: int(t.ProbesAfter), SegmentsSent: int(t.SegsSent), Backoff: int(t.Backoff),
		PeerWindow: t.SndWnd}
	switch layout.TcptraceTcpTimerKind(t.Kind) {
	case layout.TcptraceTcpTimerKindTCP_TIMER_KEEPALIVE:
		ev.Kind = events.TimerKeepalive
	case layout.TcptraceTcpTimerKindTCP_TIMER_WRITE:
		ev.Kind = events.TimerWrite
		if ev.Pending = pendings[t.Pending]; ev.Pending == "" {
			return nil, fmt.Errorf("write timer pending %d is none tcptrace reports", t.Pending)
		}
	default:
		return nil, fmt.Errorf("unknown timer kind %d", t.Kind)
	}
	ev.Settings = events.KeepaliveSettings{On: t.KeepaliveOn != 0, Probes: int(t.KeepaliveProbes),
		UserTimeout: time.Duration(t.UserTimeoutMs) * time.Millisecond}
	if d.names.HZ > 0 {
		ev.TimesKnown = true
		ev.RTO, ev.Next, ev.Idle = d.ticks(t.RtoJiffies), d.ticks(t.NextJiffies), d.ticks(t.IdleJiffies)
		ev.Settings.Idle, ev.Settings.Interval = d.ticks(t.KeepaliveTime), d.ticks(t.KeepaliveIntvl)
	}
	return ev, nil
}

func synInfo(raw *layout.TcptraceEvent) events.SynInfo {
	flags := layout.TcptraceEventFlag(raw.Flags)
	return events.SynInfo{
		Seq: raw.Seq, SeqKnown: flags&layout.TcptraceEventFlagEVENT_FLAG_SEQ_KNOWN != 0,
		TSVal: raw.Tsval, TSValKnown: flags&layout.TcptraceEventFlagEVENT_FLAG_TSVAL_KNOWN != 0,
	}
}

// closeOptions reads the socket options a move to CLOSE carries.
func closeOptions(flags uint8) events.CloseOptions {
	has := func(f layout.TcptraceCloseFlag) bool { return flags&uint8(f) != 0 }
	return events.CloseOptions{Known: has(layout.TcptraceCloseFlagCLOSE_FLAG_READ),
		LingerZero:      has(layout.TcptraceCloseFlagCLOSE_FLAG_LINGER_ZERO),
		Linger2Negative: has(layout.TcptraceCloseFlagCLOSE_FLAG_LINGER2NEGATIVE)}
}

// ticks turns a count of kernel ticks (jiffies) into time.
func (d *Decoder) ticks(n uint32) time.Duration {
	return time.Duration(int32(n)) * time.Second / time.Duration(d.names.HZ)
}

func (d *Decoder) header(raw *layout.TcptraceEvent) (events.Header, error) {
	h := events.Header{
		Time:   d.boot.Add(time.Duration(raw.TsNs)),
		Cookie: raw.Cookie,
		Family: raw.Family,
		Netns:  raw.Netns,
	}
	switch raw.Family {
	case 4:
		h.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw.Saddr[:4])), raw.Sport)
		h.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw.Daddr[:4])), raw.Dport)
	case 6:
		h.Local = netip.AddrPortFrom(netip.AddrFrom16(raw.Saddr), raw.Sport)
		h.Remote = netip.AddrPortFrom(netip.AddrFrom16(raw.Daddr), raw.Dport)
	default:
		return h, fmt.Errorf("unknown address family %d", raw.Family)
	}
	if layout.TcptraceEventFlag(raw.Flags)&layout.TcptraceEventFlagEVENT_FLAG_OWNER_KNOWN != 0 {
		h.Owner = events.Owner{PID: raw.Pid, Comm: d.comm(raw.Comm), CgroupID: raw.CgroupId}
	}
	return h, nil
}

func (d *Decoder) state(n uint8) (events.State, error) {
	if s := d.states[n]; s != "" {
		return s, nil
	}
	return "", fmt.Errorf("TCP state %d is not in the kernel's state enum", n)
}

func (d *Decoder) resetReason(n uint32) (string, error) {
	if r, ok := d.names.ResetReasons[n]; ok {
		return r, nil
	}
	return "", fmt.Errorf("reset reason %d is not in the kernel's enum sk_rst_reason", n)
}

func (d *Decoder) comm(c [16]int8) string {
	if c == d.lastComm {
		return d.lastCommName
	}
	s, ok := d.comms[c]
	if !ok {
		if len(d.comms) >= 4096 {
			clear(d.comms)
		}
		s = cString(c[:])
		d.comms[c] = s
	}
	d.lastComm, d.lastCommName = c, s
	return s
}

func cString(b []int8) string {
	u := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	if i := bytes.IndexByte(u, 0); i >= 0 {
		u = u[:i]
	}
	return string(u)
}
