package track

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

func keepaliveRun(ms int, before, after int, state events.State) *events.TCPTimer {
	h := hdr(ms, 1, client, server, 0)
	return &events.TCPTimer{Header: h, Entry: h.Time, Kind: events.TimerKeepalive,
		StateBefore: events.StateEstablished, State: state, ProbesBefore: before, ProbesAfter: after,
		TimesKnown: true, Idle: time.Duration(ms) * time.Millisecond, Next: time.Second,
		Settings: events.KeepaliveSettings{On: true, Idle: time.Second, Interval: time.Second, Probes: 3}}
}

func typesOf(evs []events.Event) map[events.Type]int {
	n := map[events.Type]int{}
	for _, ev := range evs {
		n[ev.Type()]++
	}
	return n
}

// Answered probes come back as #1 after an ack; unanswered ones count up to
// the abort, which says which rule decided.
func TestKeepaliveSeries(t *testing.T) {
	s := &stream{}
	s.state(hdr(0, 1, client, server, 10), events.StateSynSent, events.StateEstablished)
	s.add(keepaliveRun(1000, 0, 1, events.StateEstablished))
	s.add(keepaliveRun(2000, 0, 1, events.StateEstablished)) // #1 was answered
	s.add(keepaliveRun(3000, 1, 2, events.StateEstablished))
	s.add(keepaliveRun(4000, 2, 3, events.StateEstablished))
	s.add(keepaliveRun(5000, 3, 3, events.StateClose))
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	n := typesOf(out)
	if n[events.TypeKeepaliveProbe] != 4 || n[events.TypeKeepaliveAck] != 1 || n[events.TypeTimeoutAbort] != 1 {
		t.Errorf("events %v, want 4 probes, 1 ack, 1 abort", n)
	}
	abort := only[*events.TimeoutAbort](t, out)
	if abort.Timer != "keepalive" || abort.Rule != "keepalive_probes" || abort.Probes != 3 ||
		abort.Elapsed != 3*time.Second || abort.Settings.Source != "socket" || abort.Owner.PID != 10 {
		t.Errorf("abort %+v", abort)
	}
}

// A probe whose count an ACK reset on another CPU as the handler ran is
// told by the segment the handler sent: before it (the count read stale at
// 1) or after it (read back at 0). A run that sent nothing, and the abort's
// RST, are no probe.
func TestKeepaliveProbeCountReset(t *testing.T) {
	sent := func(r *events.TCPTimer, n int) *events.TCPTimer { r.SegmentsSent = n; return r }
	s := &stream{}
	s.state(hdr(0, 1, client, server, 10), events.StateSynSent, events.StateEstablished)
	s.add(sent(keepaliveRun(1000, 0, 1, events.StateEstablished), 1))
	s.add(sent(keepaliveRun(2000, 1, 1, events.StateEstablished), 1)) // #1's ACK came between entry and the handler
	s.add(sent(keepaliveRun(3000, 0, 0, events.StateEstablished), 1)) // #1's ACK came before timer_expire_exit
	s.add(keepaliveRun(3500, 0, 0, events.StateEstablished))          // not idle long enough: nothing sent
	s.add(sent(keepaliveRun(4000, 0, 1, events.StateEstablished), 1))
	s.add(sent(keepaliveRun(5000, 1, 2, events.StateEstablished), 1))
	s.add(sent(keepaliveRun(6000, 2, 3, events.StateEstablished), 1))
	s.add(sent(keepaliveRun(7000, 3, 3, events.StateClose), 1)) // the RST
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	var probes []int
	for _, ev := range out {
		if p, ok := ev.(*events.KeepaliveProbe); ok {
			probes = append(probes, p.Probe)
		}
	}
	if n := typesOf(out); len(probes) != 6 || n[events.TypeKeepaliveAck] != 3 || n[events.TypeTimeoutAbort] != 1 {
		t.Errorf("events %v, probes %v: want 6 probes, 3 acks, 1 abort", n, probes)
	}
	if want := []int{1, 1, 1, 1, 2, 3}; fmt.Sprint(probes) != fmt.Sprint(want) {
		t.Errorf("probe numbers %v, want %v", probes, want)
	}
}

// The keepalive timer of an orphan in FIN_WAIT2 is its FIN_WAIT2 timer: the
// socket it closes timed out in no keepalive.
func TestFinWait2TimerIsNoKeepalive(t *testing.T) {
	s := &stream{}
	s.state(hdr(0, 1, client, server, 10), events.StateFinWait1, events.StateFinWait2)
	timer := keepaliveRun(61000, 0, 0, events.StateClose)
	timer.StateBefore = events.StateFinWait2
	out := run(New(Options{}), s.add(timer).evs, t0.Add(time.Hour))
	if n := typesOf(out); n[events.TypeTimeoutAbort] != 0 {
		t.Errorf("events %v: a FIN_WAIT2 timer's end told as a keepalive timeout", n)
	}
}

func probe0(ms, before, after, backoff int, next time.Duration, state events.State) *events.TCPTimer {
	h := hdr(ms, 1, client, server, 0)
	return &events.TCPTimer{Header: h, Entry: h.Time, Kind: events.TimerWrite, Pending: events.PendingProbe0,
		StateBefore: events.StateEstablished, State: state, ProbesBefore: before, ProbesAfter: after,
		Backoff: backoff, TimesKnown: true, Next: next}
}

func TestZeroWindowEpisode(t *testing.T) {
	s := &stream{}
	s.state(hdr(0, 1, client, server, 10), events.StateSynSent, events.StateEstablished)
	s.add(probe0(200, 0, 1, 1, 416*time.Millisecond, events.StateEstablished))
	s.add(probe0(616, 0, 1, 2, 832*time.Millisecond, events.StateEstablished))
	s.add(probe0(1448, 0, 1, 3, 1664*time.Millisecond, events.StateEstablished))
	s.add(&events.WindowOpen{Header: hdr(2000, 1, client, server, 0), Window: 512})
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	n := typesOf(out)
	if n[events.TypeZeroWindowStart] != 1 || n[events.TypeZeroWindowProbe] != 3 || n[events.TypeKeepaliveProbe] != 0 {
		t.Errorf("events %v", n)
	}
	end := only[*events.ZeroWindowEnd](t, out)
	if end.How != "reopened" || end.Probes != 3 || end.Duration != 1800*time.Millisecond || len(end.Intervals) != 3 ||
		end.Intervals[2] != 1664*time.Millisecond || end.Owner.PID != 10 {
		t.Errorf("end %+v", end)
	}
}

func TestRetransmitAbort(t *testing.T) {
	s := &stream{}
	s.state(hdr(0, 1, client, server, 10), events.StateSynSent, events.StateEstablished)
	for i, ms := range []int{200, 600, 1400} {
		h := hdr(ms, 1, client, server, 0)
		state := events.StateEstablished
		if i == 2 {
			state = events.StateClose
		}
		s.add(&events.TCPTimer{Header: h, Entry: h.Time, Kind: events.TimerWrite, Pending: events.PendingRetransmit,
			StateBefore: events.StateEstablished, State: state, Backoff: i + 1})
	}
	out := run(New(Options{}), s.evs, t0.Add(time.Hour))
	if n := typesOf(out); n[events.TypeRTO] != 3 {
		t.Errorf("events %v, want 3 RTOs", n)
	}
	abort := only[*events.TimeoutAbort](t, out)
	if abort.Timer != "retransmit" || abort.Rule != "tcp_retries2" || abort.Probes != 3 || abort.Elapsed != 1200*time.Millisecond {
		t.Errorf("abort %+v", abort)
	}
}
