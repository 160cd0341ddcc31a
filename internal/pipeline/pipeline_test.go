package pipeline_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tcptrace/tcptrace/bpf/layout"
	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/rollup"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Kernel TCP state numbers (include/net/tcp_states.h).
const (
	established = 1 + iota
	synSent
	synRecv
	finWait1
	finWait2
	timeWait
	closed
	closeWait
	lastAck
	listen
)

var names = decode.Names{HZ: 1000, States: map[uint8]events.State{
	established: events.StateEstablished, synSent: events.StateSynSent, synRecv: events.StateSynRecv,
	finWait1: events.StateFinWait1, finWait2: events.StateFinWait2, timeWait: events.StateTimeWait,
	closed: events.StateClose, closeWait: events.StateCloseWait, lastAck: events.StateLastAck, listen: events.StateListen,
}}

const (
	ownerKnown = uint8(layout.TcptraceEventFlagEVENT_FLAG_OWNER_KNOWN)
	prevKnown  = uint8(layout.TcptraceEventFlagEVENT_FLAG_PREV_STATE_KNOWN)
	synKnown   = uint8(layout.TcptraceEventFlagEVENT_FLAG_SEQ_KNOWN | layout.TcptraceEventFlagEVENT_FLAG_TSVAL_KNOWN)
)

// churn makes the records of n loopback connections as scripts/bench's load
// makes them: the client connects, both sides exchange a request, the
// client closes first and its socket enters TIME_WAIT. One connection in
// three takes over the 4-tuple of an older TIME_WAIT socket (tcp_tw_reuse);
// the other TIME_WAIT sockets expire, so that no more than keep are alive,
// and all are gone at the end.
func churn(n, keep int) []layout.TcptraceEvent {
	const (
		serverPort = 32945
		step       = 100 * time.Microsecond
	)
	var recs []layout.TcptraceEvent
	now := time.Second
	var comm [16]int8
	for i, c := range "bench" {
		comm[i] = int8(c)
	}
	add := func(e layout.TcptraceEvent) {
		now += step / 16
		e.TsNs, e.Family, e.Netns, e.Comm = uint64(now), 4, 4026532177, comm
		e.Saddr, e.Daddr = [16]uint8{127, 0, 0, 1}, [16]uint8{127, 0, 0, 1}
		if e.Flags&ownerKnown != 0 {
			e.Pid, e.CgroupId = 4242, 1
		}
		recs = append(recs, e)
	}
	type tw struct {
		cookie uint64
		port   uint16
	}
	var timewaits []tw // oldest first
	cookie := uint64(1000)
	for i := range n {
		client, server := cookie, cookie+1
		cookie += 2
		port := uint16(10000 + i%50000)
		if len(timewaits) == keep {
			old := timewaits[0]
			timewaits = timewaits[1:]
			if i%3 == 0 {
				add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_TW_CANCEL), Cookie: old.cookie,
					Sport: old.port, Dport: serverPort, State: timeWait, Substate: timeWait, Flags: synKnown, Seq: 7, Tsval: 9})
				port = old.port
			} else {
				add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_TW_EXPIRE), Cookie: old.cookie,
					Sport: old.port, Dport: serverPort, State: timeWait, Substate: timeWait})
			}
		}
		state := func(ck uint64, local, remote uint16, old, new, flags uint8) {
			add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_STATE), Cookie: ck, Sport: local, Dport: remote,
				OldState: old, State: new, Flags: flags, PrevStateNs: uint64(step / 4), Seq: 100, Tsval: 200})
		}
		state(client, 0, serverPort, closed, synSent, ownerKnown)
		state(client, port, serverPort, synSent, established, ownerKnown|prevKnown)
		state(server, serverPort, port, listen, synRecv, ownerKnown|synKnown)
		state(server, serverPort, port, synRecv, established, ownerKnown|prevKnown)
		state(client, port, serverPort, established, finWait1, ownerKnown|prevKnown)
		state(server, serverPort, port, established, closeWait, ownerKnown|prevKnown)
		state(server, serverPort, port, closeWait, lastAck, ownerKnown|prevKnown)
		state(client, port, serverPort, finWait1, finWait2, ownerKnown|prevKnown)
		add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_TW_START), Cookie: client, Sport: port, Dport: serverPort,
			State: timeWait, Substate: timeWait, TimerJiffies: 60000})
		state(client, port, serverPort, finWait2, closed, ownerKnown|prevKnown)
		add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_DESTROY), Cookie: client, Sport: port, Dport: serverPort,
			State: closed, Flags: ownerKnown})
		state(server, serverPort, port, lastAck, closed, ownerKnown|prevKnown)
		add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_DESTROY), Cookie: server, Sport: serverPort, Dport: port,
			State: closed, Flags: ownerKnown})
		timewaits = append(timewaits, tw{client, port})
	}
	for _, old := range timewaits {
		add(layout.TcptraceEvent{Type: uint8(layout.TcptraceEventTypeEVENT_TW_EXPIRE), Cookie: old.cookie,
			Sport: old.port, Dport: serverPort, State: timeWait, Substate: timeWait})
	}
	return recs
}

// env answers as a namespace with the default sysctls.
type env struct{ snap sysctl.Snapshot }

func newEnv() *env {
	defaults := map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.tcp_tw_reuse_delay": "1000", "net.ipv4.tcp_timestamps": "1"}
	var snap sysctl.Snapshot
	for _, s := range sysctl.Known {
		v, ok := defaults[string(s.Name)]
		snap.Values = append(snap.Values, sysctl.Value{Sysctl: s, Raw: v, Present: ok})
	}
	return &env{snap}
}

func (e *env) Sysctls(uint32) (sysctl.Snapshot, error) { return e.snap, nil }
func (e *env) NetnsGone(uint32) bool                   { return false }
func (e *env) Cgroup(uint64) *events.Cgroup            { return nil }

// Every connection of the churn tells its whole story: states, TIME_WAIT,
// summaries, and a finding for each TIME_WAIT socket taken over.
func TestChurn(t *testing.T) {
	const n, keep = 30, 9
	p, err := pipeline.New(pipeline.Config{Names: names, Boot: time.Unix(1700000000, 0), Format: "json",
		Stdout: io.Discard, Stderr: io.Discard}, newEnv())
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range churn(n, keep) {
		if err := p.Record(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), decode.RecordSize)); err != nil {
			t.Fatal(err)
		}
	}
	reused := 0
	for i := keep; i < n; i++ {
		if i%3 == 0 {
			reused++
		}
	}
	want := map[events.Type]uint64{events.TypeState: 10 * n, events.TypeDestroy: 2 * n, events.TypeTimewaitEnter: n,
		events.TypeTimewaitEnd: n, events.TypeSummary: 2 * n, events.TypeFinding: uint64(reused)}
	if got := p.Stats().ByType; !maps.Equal(got, want) {
		t.Errorf("events by type %v, want %v", got, want)
	}
	if p.Tracked() != 0 {
		t.Errorf("%d sockets still tracked", p.Tracked())
	}
}

// BenchmarkChurn runs the records of a connection-churn load through the
// whole pipeline, as a live trace does: per record.
func BenchmarkChurn(b *testing.B) {
	recs := churn(20000, 4096)
	span, cookies := recs[len(recs)-1].TsNs, uint64(0)
	for _, r := range recs {
		cookies = max(cookies, r.Cookie)
	}
	for _, format := range []render.Format{render.FormatJSON, render.FormatText} {
		b.Run(string(format), func(b *testing.B) {
			p, err := pipeline.New(pipeline.Config{Names: names, Boot: time.Unix(1700000000, 0), Format: format,
				Stdout: io.Discard, Stderr: io.Discard}, newEnv())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rec := &recs[i%len(recs)]
				if err := p.Record(unsafe.Slice((*byte)(unsafe.Pointer(rec)), decode.RecordSize)); err != nil {
					b.Fatal(err)
				}
				if i++; i%1024 == 0 {
					p.Flush()
				}
				if i%len(recs) == 0 {
					// Again, later, with new sockets.
					for j := range recs {
						recs[j].TsNs += span
						recs[j].Cookie += cookies
					}
				}
			}
			b.ReportMetric(float64(p.Stats().Events)/float64(i), "events/record")
		})
	}
}

// Under churn every TIME_WAIT socket taken over gets its finding: the
// first in full, the others naming it; and the findings of each interval
// of trace time, and of the rest at the end, are summed up.
func TestChurnRollup(t *testing.T) {
	const n, keep = 30, 9
	boot := time.Unix(1700000000, 0) // at an interval's start
	var out bytes.Buffer
	p, err := pipeline.New(pipeline.Config{Names: names, Boot: boot, Format: "json", Stdout: &out, Stderr: io.Discard}, newEnv())
	if err != nil {
		t.Fatal(err)
	}
	recs := churn(n, keep)
	last, cookies := recs[len(recs)-1].TsNs, uint64(0)
	for _, r := range recs {
		cookies = max(cookies, r.Cookie)
	}
	for run, later := range []time.Duration{0, rollup.Interval} { // twice, in two intervals, with new sockets
		for _, rec := range recs {
			rec.TsNs += uint64(later)
			rec.Cookie += uint64(run) * cookies
			if err := p.Record(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), decode.RecordSize)); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := boot.Add(rollup.Interval + time.Duration(last) + time.Second)
	// A live trace ticks (and records the tick) when a summary is due.
	if p.Waiting(end) || !p.Waiting(boot.Add(2*rollup.Interval)) {
		t.Errorf("waiting at the end %v, at the interval's end %v: want only there", p.Waiting(end), p.Waiting(boot.Add(2*rollup.Interval)))
	}
	if err := p.Finish(end, events.Loss{}, time.Minute); err != nil {
		t.Fatal(err)
	}

	var line struct {
		Type, Kind, TS, Since, Cause string
		Cookie, ID, See, Count       uint64
		Message                      *string
		Sysctls                      map[string]any
	}
	taken, found := map[uint64]bool{}, map[uint64]int{}
	var first, lastID, summed uint64
	var summaries []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		line.Message, line.Sysctls, line.See, line.Count = nil, nil, 0, 0
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		switch line.Type {
		case "timewait_end":
			taken[line.Cookie] = line.Cause == "connect_reuse"
		case "finding":
			found[line.Cookie]++
			if line.ID != lastID+1 {
				t.Errorf("finding id %d after %d", line.ID, lastID)
			}
			lastID = line.ID
			switch {
			case first == 0 && (line.See != 0 || line.Message == nil || line.Sysctls == nil):
				t.Errorf("the first finding is not in full: %s", l)
			case first == 0:
				first = line.ID
			case line.See != first || line.Count != line.ID-first+1 || line.Message != nil || line.Sysctls != nil:
				t.Errorf("a repeat of finding %d: %s", first, l)
			}
		case "finding_summary":
			summed += line.Count
			summaries = append(summaries, line.Since+" "+line.TS)
		}
	}
	for cookie, reused := range taken {
		if want := map[bool]int{true: 1}[reused]; found[cookie] != want {
			t.Errorf("socket %d: %d findings, want %d", cookie, found[cookie], want)
		}
	}
	boundary := boot.Add(rollup.Interval).Format(events.TimeLayout)
	if summed != lastID || len(summaries) != 2 || !strings.HasSuffix(summaries[0], " "+boundary) ||
		summaries[1] != boundary+" "+end.Format(events.TimeLayout) {
		t.Errorf("summaries (since, ts) %q count %d findings of %d, want one to %s and one from there to the end",
			summaries, summed, lastID, boundary)
	}
}
