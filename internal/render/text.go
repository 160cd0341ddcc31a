package render

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Text writes one aligned line per event: local time to the microsecond,
// event, owner, local and remote endpoint, and what happened.
type Text struct {
	w         *bufio.Writer
	errw      io.Writer
	loc       *time.Location
	buf       []byte
	addrWidth int
	header    bool
	// containers: an event had an owner in a container, and from then on
	// each line has a CONTAINER column (under a header written again).
	containers bool
	// summaryTable: only summaries, as tcplife's table (SummaryTable).
	summaryTable bool
	// Scratch space for the columns of a line, and the formatted second of
	// the last event's time.
	clock, typ, pid, comm, ctr, local, remote []byte
	clockSecs                                 []byte
	clockSec                                  int64
}

const (
	timeWidth = 15
	typeWidth = 17
	pidWidth  = 7
	commWidth = 15
	// A container's id as docker ps and crictl ps show it.
	containerWidth = 12
	// containerColumn is the container's place among the columns.
	containerColumn = 4
)

// SummaryTable makes t write only summaries, one table row each: the
// figures tcplife gives.
func (t *Text) SummaryTable() { t.summaryTable = true }

func (t *Text) Event(ev events.Event) error {
	if t.summaryTable {
		s, ok := ev.(*events.Summary)
		if !ok {
			return nil
		}
		return t.summaryRow(s)
	}
	h := ev.Head()
	t.local = appendEndpoint(t.local[:0], h.Local)
	t.remote = appendEndpoint(t.remote[:0], h.Remote)
	t.addrWidth = max(t.addrWidth, 21, len(t.local), len(t.remote))
	if cg := h.Owner.Cgroup; !t.containers && cg != nil && cg.ContainerID != "" {
		t.containers, t.header = true, false
	}
	if !t.header {
		t.header = true
		t.buf = t.columns(t.buf[:0], []byte("TIME"), []byte("EVENT"), []byte("PID"), []byte("COMM"), []byte("CONTAINER"), []byte("LOCAL"), []byte("REMOTE"))
		t.buf = append(t.buf, "DETAIL\n"...)
		if _, err := t.w.Write(t.buf); err != nil {
			return err
		}
	}
	t.pid = append(t.pid[:0], '-')
	if h.Owner.PID != 0 {
		t.pid = strconv.AppendUint(t.pid[:0], uint64(h.Owner.PID), 10)
	}
	t.comm = append(t.comm[:0], h.Owner.Comm...)
	if len(t.comm) == 0 {
		t.comm = append(t.comm, '?')
	}
	t.ctr = append(t.ctr[:0], '-')
	if cg := h.Owner.Cgroup; cg != nil && cg.ContainerID != "" {
		t.ctr = append(t.ctr[:0], cg.ContainerID[:min(len(cg.ContainerID), containerWidth)]...)
	}
	t.clock = t.appendClock(t.clock[:0], h.Time)
	t.typ = append(t.typ[:0], ev.Type()...)
	b := t.columns(t.buf[:0], t.clock, t.typ, t.pid, t.comm, t.ctr, t.local, t.remote)
	b = AppendDetail(b, ev)
	b = append(b, '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

// summaryRow writes a summary as a row of the summary table.
func (t *Text) summaryRow(s *events.Summary) error {
	b := t.buf[:0]
	if !t.header {
		t.header = true
		b = fmt.Appendf(b, "%-15s %7s %-15s %-39s %-39s %9s %9s %10s %s\n", "TIME", "PID", "COMM", "LOCAL", "REMOTE", "TX_KB", "RX_KB", "MS", "END")
	}
	pid, comm, figure := "-", s.Owner.Comm, func(known bool, v float64, format string) string {
		if !known {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	if s.Owner.PID != 0 {
		pid = strconv.FormatUint(uint64(s.Owner.PID), 10)
	}
	if comm == "" {
		comm = "?"
	}
	b = t.appendClock(b, s.Time)
	b = fmt.Appendf(b, " %7s %-15s %-39s %-39s %9s %9s %10s %s\n", pid, comm, appendEndpoint(nil, s.Local), appendEndpoint(nil, s.Remote),
		figure(s.CountersKnown, float64(s.Counters.BytesAcked)/1024, "%.1f"),
		figure(s.CountersKnown, float64(s.Counters.BytesReceived)/1024, "%.1f"),
		figure(s.LifetimeKnown, float64(s.Lifetime)/float64(time.Millisecond), "%.3f"), s.End)
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

// appendClock writes the local time to the microsecond, reusing the
// formatted hours, minutes and seconds while the second does not change.
func (t *Text) appendClock(b []byte, at time.Time) []byte {
	at = at.In(t.loc)
	if sec := at.Unix(); sec != t.clockSec || len(t.clockSecs) == 0 {
		t.clockSecs = at.AppendFormat(t.clockSecs[:0], "15:04:05.")
		t.clockSec = sec
	}
	b = append(b, t.clockSecs...)
	us := at.Nanosecond() / 1000
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + us%10)
		us /= 10
	}
	return append(b, digits[:]...)
}

// columns lays out the fixed columns (time, event, pid, comm, container,
// local, remote), the container's only once t.containers; a value wider
// than its column pushes the rest right by one space rather than being cut.
func (t *Text) columns(b []byte, values ...[]byte) []byte {
	widths := [...]int{timeWidth, typeWidth, pidWidth, commWidth, containerWidth, t.addrWidth, t.addrWidth}
	end := 0
	for i, v := range values {
		if i == containerColumn && !t.containers {
			continue
		}
		b = append(b, v...)
		end += widths[i] + 2
		b = append(b, ' ')
		for len(b) < end {
			b = append(b, ' ')
		}
	}
	return b
}

// AppendDetail appends what the DETAIL column says of ev: an event in
// words (the OTLP export's log bodies too).
func AppendDetail(b []byte, ev events.Event) []byte {
	switch e := ev.(type) {
	case *events.StateChange:
		b = append(b, e.Old...)
		b = append(b, " -> "...)
		b = append(b, e.New...)
		if e.PrevStateKnown {
			b = append(b, " (after "...)
			b = appendDuration(b, e.PrevState)
			b = append(b, " in "...)
			b = append(b, e.Old...)
			b = append(b, ')')
		}
		if e.Options.LingerZero {
			b = append(b, ", SO_LINGER {1, 0} set"...)
		}
		if e.Options.Linger2Negative {
			b = append(b, ", TCP_LINGER2 < 0 set"...)
		}
	case *events.Retransmit:
		b = append(b, "in "...)
		b = append(b, e.State...)
	case *events.ResetSent:
		if e.NoSocket {
			b = append(b, "for a segment that matched no socket"...)
		} else {
			b = append(b, "in "...)
			b = append(b, e.State...)
		}
		if e.Reason != "" {
			b = append(b, ", reason "...)
			b = append(b, e.Reason...)
		}
	case *events.ResetReceived:
		b = append(b, "in "...)
		b = append(b, e.State...)
	case *events.Destroy:
		b = append(b, "in "...)
		b = append(b, e.State...)
	case *events.TimewaitEnter:
		if e.Restart {
			b = append(b, "TIME_WAIT timer restarted by a segment it answered, substate "...)
		} else {
			b = append(b, "TIME_WAIT socket, substate "...)
		}
		b = append(b, e.Substate...)
		if e.TimeoutKnown {
			b = append(b, ", timer "...)
			b = appendDuration(b, e.Timeout)
		}
	case *events.TimewaitEnd:
		b = append(b, "TIME_WAIT socket ended: "...)
		b = append(b, e.Cause...)
		b = append(b, ", substate "...)
		b = append(b, e.Substate...)
		if e.RSTAnswerReason != "" {
			b = append(b, " (it sent an RST, reason "...)
			b = append(b, e.RSTAnswerReason...)
			b = append(b, ')')
		}
		if e.AgeKnown {
			b = append(b, " after "...)
			b = appendDuration(b, e.Age)
		}
		if e.Inferred {
			b = append(b, " (inferred: "...)
			b = append(b, e.InferredFrom...)
			b = append(b, ')')
		}
	case *events.TimewaitSubstate:
		b = fmt.Appendf(b, "TIME_WAIT socket moved %s -> %s", e.Old, e.New)
		if e.TimeoutKnown {
			b = append(b, ", timer "...)
			b = appendDuration(b, e.Timeout)
		}
		switch {
		case !e.Inferred:
		case e.TimeKnown:
			b = append(b, " (inferred: within "...)
			b = appendDuration(b, e.Within)
			b = append(b, " after this time, from "...)
			b = append(b, e.DerivedFrom...)
			b = append(b, ')')
		default:
			b = append(b, " (inferred: time unknown; "...)
			b = append(b, e.DerivedFrom...)
			b = append(b, ')')
		}
	case *events.TimewaitRSTIgnored:
		b = fmt.Appendf(b, "TIME_WAIT socket lived on after the peer's RST for its 4-tuple (%s earlier", events.HumanDuration(e.AliveFor))
		if e.PeerRSTReason != "" {
			b = append(b, ", reason "...)
			b = append(b, e.PeerRSTReason...)
		}
		b = append(b, "; inferred)"...)
	case *events.TimewaitOverflow:
		b = append(b, "closed from "...)
		b = append(b, e.State...)
		b = append(b, " with no TIME_WAIT socket (tcp_max_tw_buckets reached; inferred)"...)
	case *events.ProbeSent:
		b = fmt.Appendf(b, "probe sent by the %s timer (tcp_write_wakeup)", e.Timer)
	case *events.TimewaitSegment:
		b = fmt.Appendf(b, "TIME_WAIT socket got %s seq %d (rcv_nxt %d): verdict %s", events.FlagNames(e.Flags), e.Seq, e.RcvNxt, e.Verdict)
	case *events.Segment:
		b = fmt.Appendf(b, "got %s seq %d ack %d win %d len %d in %s (rcv_nxt %d)",
			events.FlagNames(e.Flags), e.Seq, e.Ack, e.Window, e.Len, e.State, e.RcvNxt)
		if e.OutOfWindow {
			b = append(b, " - out of window"...)
		}
		if e.DataAfterFIN {
			b = append(b, " - data after FIN"...)
		}
	case *events.KeepaliveProbe:
		b = fmt.Appendf(b, "keepalive probe #%d, idle %s, next in %s (idle %s, interval %s, %d probes: %s)",
			e.Probe, human(e.Idle), human(e.Interval), human(e.Settings.Idle), human(e.Settings.Interval),
			e.Settings.Probes, e.Settings.Source)
	case *events.KeepaliveAck:
		b = fmt.Appendf(b, "keepalive answered after %d probe(s) (seen at the timer's next run)", e.Probes)
	case *events.ZeroWindowStart:
		b = append(b, "peer window is 0: the persist timer starts probing"...)
	case *events.ZeroWindowProbe:
		b = fmt.Appendf(b, "zero-window probe #%d +%s (backoff %d) - not a keepalive", e.Probe, human(e.Interval), e.Backoff)
	case *events.ZeroWindowEnd:
		b = fmt.Appendf(b, "zero window over (%s) after %s, %d probes", e.How, human(e.Duration), e.Probes)
	case *events.RTO:
		b = fmt.Appendf(b, "%s, backoff %d, RTO now %s", rtoWords[e.Kind], e.Backoff, human(e.RTO))
	case *events.TimeoutAbort:
		b = fmt.Appendf(b, "connection aborted (ETIMEDOUT) by the %s timer after %d probes/retries in %s: %s",
			e.Timer, e.Probes, human(e.Elapsed), e.Rule)
	case *events.Summary:
		b = appendSummary(b, e)
	case *events.Finding:
		b = append(b, e.Kind...)
		if e.See != 0 {
			b = append(b, " (same as finding #"...)
			b = strconv.AppendUint(b, e.See, 10)
			b = append(b, ", "...)
			b = appendThousands(b, e.Count)
			return append(b, " so far)"...)
		}
		b = append(b, " #"...)
		b = strconv.AppendUint(b, e.ID, 10)
		b = appendWrapped(b, e.Message, "    ", 100)
	case *events.FindingSummary:
		b = append(b, e.Kind...)
		b = append(b, ": "...)
		b = appendThousands(b, e.Count)
		if e.Count == 1 {
			b = append(b, " finding"...)
		} else {
			b = append(b, " findings"...)
		}
		b = fmt.Appendf(b, " in %s in netns %d (e.g. cookie %d)", events.HumanDuration(e.Time.Sub(e.Since)), e.Netns, e.ExampleCookie)
	}
	return b
}

// appendThousands writes n with its thousands grouped: 1,234,567.
func appendThousands(b []byte, n uint64) []byte {
	digits := strconv.FormatUint(n, 10)
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, digits[i])
	}
	return b
}

// appendSummary writes a socket's story on one line:
// SYN_SENT 0.3 ms > ESTABLISHED 1.2 s > ... [end; closed by local; 2 retransmits].
func appendSummary(b []byte, e *events.Summary) []byte {
	for i, p := range e.History {
		if i > 0 {
			b = append(b, " > "...)
		}
		if p.Timewait {
			b = append(b, "tw:"...)
		}
		b = append(b, p.State...)
		if p.DurationKnown {
			b = append(b, ' ')
			b = appendDuration(b, p.Duration)
		}
	}
	b = append(b, " ["...)
	b = append(b, e.End...)
	if e.ClosedBy != "" {
		b = append(b, "; closed by "...)
		b = append(b, e.ClosedBy...)
	}
	if e.Close.Shape != "" {
		b = append(b, "; "...)
		b = append(b, e.Close.Words()...)
	}
	for _, c := range []struct {
		n    int
		what string
	}{{e.Retransmits, " retransmits"}, {e.ResetsSent, " RSTs sent"}, {e.ResetsReceived, " RSTs received"}} {
		if c.n > 0 {
			b = append(b, "; "...)
			b = strconv.AppendInt(b, int64(c.n), 10)
			b = append(b, c.what...)
		}
	}
	if e.BeforeTrace {
		b = append(b, "; began before tracing"...)
	}
	if e.HistoryDropped {
		b = append(b, "; earlier history dropped (--max-sockets)"...)
	}
	// As tcplife gives them: sent and received, and how long it lived.
	if e.CountersKnown {
		b = fmt.Appendf(b, "; tx %.1f KB rx %.1f KB rtt ", float64(e.Counters.BytesAcked)/1024, float64(e.Counters.BytesReceived)/1024)
		b = appendDuration(b, e.Counters.RTT)
	}
	if e.LifetimeKnown {
		b = append(b, "; lived "...)
		b = appendDuration(b, e.Lifetime)
	}
	if e.HandshakeKnown {
		h := &e.Handshake
		b = fmt.Appendf(b, "; mss %d", h.MSSInUse)
		if h.WindowScaling {
			b = fmt.Appendf(b, " wscale %d,%d", h.SendScale, h.ReceiveScale)
		}
		for _, o := range []struct {
			on   bool
			name string
		}{{h.SACK, " sack"}, {h.Timestamps, " ts"}, {h.ECN, " ecn"}, {h.FastOpen, " tfo"}} {
			if o.on {
				b = append(b, o.name...)
			}
		}
	}
	return append(b, ']')
}

// appendWrapped writes text as indented lines of at most width characters,
// each starting on a new line.
func appendWrapped(b []byte, text, indent string, width int) []byte {
	line := 0
	for word := range strings.FieldsSeq(text) {
		if line == 0 || line+1+len(word) > width {
			b = append(b, '\n')
			b = append(b, indent...)
			line = len(indent)
		} else {
			b = append(b, ' ')
			line++
		}
		b = append(b, word...)
		line += len(word)
	}
	return b
}

func human(d time.Duration) string { return events.HumanDuration(d) }

func appendDuration(b []byte, d time.Duration) []byte { return events.AppendHumanDuration(b, d) }

func appendEndpoint(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, '-')
	}
	return ap.AppendTo(b)
}

func (t *Text) Stats(s Stats) error {
	if err := t.w.Flush(); err != nil {
		return err
	}
	return writeTextStats(t.errw, s)
}

// writeTextStats writes the closing stats for people.
func writeTextStats(w io.Writer, s Stats) error {
	msg := fmt.Sprintf("%d events in %s, %d lost", s.Events, s.Duration.Round(time.Millisecond), s.Lost.Total)
	if len(s.Lost.ByKind) > 0 {
		var kinds []string
		for _, kind := range slices.Sorted(maps.Keys(s.Lost.ByKind)) {
			kinds = append(kinds, fmt.Sprintf("%s %d", kind, s.Lost.ByKind[kind]))
		}
		msg += " (" + strings.Join(kinds, ", ") + ")"
	}
	if s.Undecodable > 0 {
		msg += fmt.Sprintf(", %d undecodable", s.Undecodable)
	}
	if s.Evicted > 0 {
		msg += fmt.Sprintf(", %d socket histories dropped (raise --max-sockets)", s.Evicted)
	}
	if o := s.OTLP; o != nil {
		msg += fmt.Sprintf(", OTLP: %d log records (%d not delivered), %d metric exports (%d failed)", o.LogRecords, o.LogRecordsDropped, o.MetricExports, o.MetricExportsFailed)
	}
	for _, c := range s.Programs {
		msg += fmt.Sprintf("\n  BPF %s: %d runs, %d ns a run", c.Program, c.Runs, c.Time.Nanoseconds()/int64(c.Runs))
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

func (t *Text) Flush() error { return t.w.Flush() }

// rtoWords say what a retransmission timer's expiry sent again.
var rtoWords = map[events.RTOKind]string{events.RTOData: "retransmission timeout", events.RTOSyn: "SYN retransmission timeout",
	events.RTOSynAck: "SYN-ACK retransmission timeout", events.RTOLossProbe: "tail loss probe (TLP)"}
