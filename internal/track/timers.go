package track

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/explain"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// timers is what a socket's keepalive and write timers have done lately.
type timers struct {
	keepaliveProbes int       // probes sent and not yet answered
	firstKeepalive  time.Time // the first of them
	zeroWindow      *zeroWindow
	retransmits     int             // RTO expiries in a row
	firstRTO        time.Time       // the first of them
	rtoGaps         []time.Duration // between them (the first maxRTOGaps)
	lastRTO         time.Time
}

// maxRTOGaps bounds the waits kept between retransmissions: tcp_retries2
// allows 15 by default, tcp_syn_retries 6.
const maxRTOGaps = 32

// zeroWindow is an episode of zero-window probing.
type zeroWindow struct {
	start     time.Time
	probes    int
	intervals []time.Duration
}

// tcpTimer turns one run of a socket's timer into what it means.
func (t *Tracker) tcpTimer(e *events.TCPTimer) {
	s := t.lookup(&e.Header)
	if s == nil {
		return
	}
	h := e.Header
	h.Owner = s.header.Owner // the kernel reports it only under --pid
	aborted := e.State == events.StateClose && e.StateBefore != events.StateClose
	switch e.Kind {
	case events.TimerKeepalive:
		t.keepaliveTimer(s, h, e, aborted)
	case events.TimerWrite:
		t.writeTimer(s, h, e, aborted)
	}
}

func (t *Tracker) keepaliveTimer(s *socket, h events.Header, e *events.TCPTimer, aborted bool) {
	settings := explain.Keepalive(e.Settings, t.sysctls(h.Netns))
	// A probe went out when the count grew, or when the handler sent a
	// segment and did not abort (the count alone misses a probe whose ACK,
	// on another CPU, reset it as the handler ran). An ACK had reset it
	// when it is back at 0, or when the probe's number is not past the last.
	sent := e.ProbesAfter > e.ProbesBefore || (!aborted && e.SegmentsSent > 0)
	probe := max(e.ProbesAfter, 1)
	if s.timers.keepaliveProbes > 0 && (e.ProbesBefore == 0 || (sent && probe <= s.timers.keepaliveProbes)) {
		t.out = append(t.out, &events.KeepaliveAck{Header: h, Probes: s.timers.keepaliveProbes})
		s.timers.keepaliveProbes = 0
	}
	if sent {
		if s.timers.keepaliveProbes == 0 {
			s.timers.firstKeepalive = e.Entry
		}
		s.timers.keepaliveProbes = probe
		t.out = append(t.out, &events.KeepaliveProbe{Header: h, Probe: probe, Idle: e.Idle,
			Interval: e.Next, Settings: settings})
	}
	// In FIN_WAIT2 the timer is the orphan's FIN_WAIT2 timer (tcp_fin_timeout
	// or TCP_LINGER2 over 60 s): its end is no keepalive's.
	if aborted && e.StateBefore != events.StateFinWait2 {
		rule := "keepalive_probes"
		if settings.UserTimeout > 0 && e.Idle >= settings.UserTimeout {
			rule = "user_timeout"
		}
		t.timedOut(s, &events.TimeoutAbort{Header: h, Timer: "keepalive", Rule: rule,
			Probes: max(e.ProbesBefore, e.ProbesAfter), Sent: s.timers.keepaliveProbes,
			Elapsed: sinceOrZero(e.Time, s.timers.firstKeepalive), Settings: settings})
	}
}

func (t *Tracker) writeTimer(s *socket, h events.Header, e *events.TCPTimer, aborted bool) {
	userTimeout := e.Settings.UserTimeout
	switch e.Pending {
	case events.PendingProbe0:
		zw := s.timers.zeroWindow
		if zw == nil {
			zw = &zeroWindow{start: e.Entry}
			s.timers.zeroWindow = zw
			start := &events.ZeroWindowStart{Header: h}
			start.Time = e.Entry
			t.out = append(t.out, start)
		}
		if e.ProbesAfter > e.ProbesBefore {
			zw.probes++
			zw.intervals = append(zw.intervals, e.Next)
			t.out = append(t.out, &events.ZeroWindowProbe{Header: h, Probe: e.ProbesAfter, Backoff: e.Backoff, Interval: e.Next})
		}
		if aborted {
			rule := "tcp_retries2"
			if userTimeout > 0 {
				rule = "user_timeout"
			}
			t.timedOut(s, &events.TimeoutAbort{Header: h, Timer: "zero_window", Rule: rule,
				Probes: max(e.ProbesBefore, e.ProbesAfter), Sent: zw.probes, Intervals: zw.intervals,
				Elapsed: e.Time.Sub(zw.start)})
			t.endZeroWindow(s, h, e.Time, "aborted")
		}
	case events.PendingRetransmit, events.PendingLossProbe:
		kind := events.RTOData
		switch {
		case e.Pending == events.PendingLossProbe:
			kind = events.RTOLossProbe
		case e.StateBefore == events.StateSynSent:
			kind = events.RTOSyn
		}
		if kind != events.RTOLossProbe {
			if s.timers.retransmits == 0 {
				s.timers.firstRTO = e.Entry
			} else if len(s.timers.rtoGaps) < maxRTOGaps {
				s.timers.rtoGaps = append(s.timers.rtoGaps, e.Entry.Sub(s.timers.lastRTO))
			}
			s.timers.lastRTO = e.Entry
			s.timers.retransmits++
		}
		t.out = append(t.out, &events.RTO{Header: h, Kind: kind, Backoff: e.Backoff, RTO: e.RTO})
		if aborted {
			timer, rule := "retransmit", "tcp_retries2"
			if kind == events.RTOSyn {
				timer, rule = "syn", "tcp_syn_retries"
			}
			if userTimeout > 0 && e.Time.Sub(s.timers.firstRTO) >= userTimeout {
				rule = "user_timeout"
			}
			t.timedOut(s, &events.TimeoutAbort{Header: h, Timer: timer, Rule: rule,
				Probes: s.timers.retransmits, Sent: s.timers.retransmits, Intervals: s.timers.rtoGaps,
				Elapsed: sinceOrZero(e.Time, s.timers.firstRTO)})
		}
	}
}

// windowOpen ends a zero-window episode: the peer's window opened.
func (t *Tracker) windowOpen(e *events.WindowOpen) {
	if s := t.lookup(&e.Header); s != nil && s.timers.zeroWindow != nil {
		h := e.Header
		h.Owner = s.header.Owner
		t.endZeroWindow(s, h, e.Time, "reopened")
	}
}

func (t *Tracker) endZeroWindow(s *socket, h events.Header, at time.Time, how string) {
	zw := s.timers.zeroWindow
	if zw == nil {
		return
	}
	end := &events.ZeroWindowEnd{Header: h, How: how, Duration: at.Sub(zw.start), Probes: zw.probes,
		Intervals: zw.intervals}
	end.Time = at
	t.out = append(t.out, end)
	s.timers.zeroWindow = nil
}

// sysctls returns the namespace's sysctls; a snapshot holding none when
// they are not known.
func (t *Tracker) sysctls(netns uint32) sysctl.Snapshot {
	if t.sysctlSource == nil {
		return sysctl.Snapshot{}
	}
	snap, err := t.sysctlSource(netns)
	if err != nil {
		return sysctl.Snapshot{}
	}
	return snap
}

func sinceOrZero(now, since time.Time) time.Duration {
	if since.IsZero() {
		return 0
	}
	return now.Sub(since)
}
