package decode

import (
	"encoding/binary"
	"fmt"
	"structs"
	"unsafe"

	"github.com/tcptrace/tcptrace/bpf/layout"
)

// recordV1 is the record layout of recording format 1: one layout for every
// kind, before records were sized per kind. It is the generated layout as it
// was then, copied on purpose: it must not follow bpf/event.h, so that those
// recordings still replay.
type recordV1 struct {
	_            structs.HostLayout
	TsNs         uint64
	Cookie       uint64
	CgroupId     uint64
	PrevStateNs  uint64
	Saddr        [16]uint8
	Daddr        [16]uint8
	Netns        uint32
	Pid          uint32
	Reason       uint32
	Sport        uint16
	Dport        uint16
	Type         uint8
	Family       uint8
	OldState     uint8
	State        uint8
	Flags        uint8
	Substate     uint8
	Window       uint16
	TimerJiffies uint32
	Seq          uint32
	Tsval        uint32
	TcpFlags     uint8
	AuxFlags     uint8
	PayloadLen   uint16
	RcvNxt       uint32
	AckSeq       uint32
	Timer        timerFactsV1
	Comm         [16]int8
	Tail         uint8
	Pad          [7]uint8
}

type timerFactsV1 struct {
	_               structs.HostLayout
	EntryNs         uint64
	NextJiffies     uint32
	IdleJiffies     uint32
	RtoJiffies      uint32
	KeepaliveTime   uint32
	KeepaliveIntvl  uint32
	UserTimeoutMs   uint32
	SndWnd          uint32
	Kind            uint8
	Pending         uint8
	ProbesBefore    uint8
	ProbesAfter     uint8
	Backoff         uint8
	KeepaliveProbes uint8
	KeepaliveOn     uint8
	Pad             uint8
	_               [4]byte
}

// Record sizes of format 1: a record without a tail, and one of the
// recordings made before records had tails (the same layout up to the tail
// byte).
const (
	RecordSizeV1            = int(unsafe.Sizeof(recordV1{}))
	RecordSizeV1BeforeTails = int(unsafe.Offsetof(recordV1{}.Tail))
)

// FromV1 returns a record of recording format 1 (its tail included) in
// today's layout, as long as its kind's.
func FromV1(rec []byte) ([]byte, error) {
	var old recordV1
	if len(rec) < RecordSizeV1BeforeTails {
		return nil, fmt.Errorf("%w: %d bytes, want %d in a recording of format 1", ErrShortRecord, len(rec), RecordSizeV1BeforeTails)
	}
	whole := make([]byte, max(len(rec), RecordSizeV1))
	copy(whole, rec)
	if _, err := binary.Decode(whole, binary.LittleEndian, &old); err != nil {
		return nil, fmt.Errorf("read record of format 1: %w", err)
	}
	t := old.Timer
	e := layout.TcptraceEvent{
		TsNs: old.TsNs, Cookie: old.Cookie, CgroupId: old.CgroupId, Saddr: old.Saddr, Daddr: old.Daddr,
		Netns: old.Netns, Pid: old.Pid, Reason: old.Reason, Sport: old.Sport, Dport: old.Dport,
		Type: old.Type, Family: old.Family, OldState: old.OldState, State: old.State, Flags: old.Flags,
		Substate: old.Substate, AuxFlags: old.AuxFlags, Tail: old.Tail, Comm: old.Comm,
		TimerJiffies: old.TimerJiffies, Seq: old.Seq, Tsval: old.Tsval, RcvNxt: old.RcvNxt,
		PrevStateNs: old.PrevStateNs,
		AckSeq:      old.AckSeq, Window: old.Window, PayloadLen: old.PayloadLen, TcpFlags: old.TcpFlags,
	}
	e.Timer.EntryNs, e.Timer.NextJiffies, e.Timer.IdleJiffies, e.Timer.RtoJiffies = t.EntryNs, t.NextJiffies, t.IdleJiffies, t.RtoJiffies
	e.Timer.KeepaliveTime, e.Timer.KeepaliveIntvl, e.Timer.UserTimeoutMs, e.Timer.SndWnd = t.KeepaliveTime, t.KeepaliveIntvl, t.UserTimeoutMs, t.SndWnd
	e.Timer.Kind, e.Timer.Pending, e.Timer.ProbesBefore, e.Timer.ProbesAfter = t.Kind, t.Pending, t.ProbesBefore, t.ProbesAfter
	e.Timer.Backoff, e.Timer.KeepaliveProbes, e.Timer.KeepaliveOn = t.Backoff, t.KeepaliveProbes, t.KeepaliveOn
	var tail []byte
	if int(e.Tail) < len(tailSizes) && len(rec) >= RecordSizeV1+tailSizes[e.Tail] {
		tail = rec[RecordSizeV1 : RecordSizeV1+tailSizes[e.Tail]]
	} else {
		e.Tail = 0 // no room for it: in recordings made before tails, the byte was padding
	}
	out, err := binary.Append(make([]byte, 0, RecordSize+len(tail)), binary.LittleEndian, &e)
	if err != nil {
		return nil, fmt.Errorf("write record: %w", err)
	}
	return append(out[:Length(e.Type)], tail...), nil
}
