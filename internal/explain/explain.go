// Package explain turns what the tracker concluded into findings: plain
// words on why the kernel did it, the evidence, and the sysctls that decided
// it. Pure Go: the sysctls come from a function the caller provides.
package explain

import (
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// SysctlSource returns the sysctls of a network namespace (by inode).
type SysctlSource func(netns uint32) (sysctl.Snapshot, error)

// Explainer makes findings. Not safe for concurrent use.
type Explainer struct {
	source SysctlSource
	// values holds each namespace's sysctls as findings show them, as
	// source last answered: under connection churn a namespace makes
	// thousands of findings a second, and its values change rarely.
	values map[uint32]genValues
	// picked holds the sets of them findings show, made once: findings
	// only read them.
	picked map[pickKey]map[string]any
	// reuseWhy holds the reasons connect() reuse findings give, made once.
	reuseWhy map[reuseKey]string
}

// genValues are a namespace's sysctls as read in one generation.
type genValues struct {
	gen uint64
	all map[sysctl.Name]any
}

// pickKey names a set of sysctls of a namespace, as read in a generation.
type pickKey struct {
	netns uint32
	gen   uint64
	names [4]sysctl.Name
}

// New returns an explainer reading sysctls from source for each finding:
// the values it quotes are those source has when the finding is made.
func New(source SysctlSource) *Explainer {
	return &Explainer{source: source, values: map[uint32]genValues{}, picked: map[pickKey]map[string]any{},
		reuseWhy: map[reuseKey]string{}}
}

// Explain returns the findings an event calls for, if any.
func (x *Explainer) Explain(ev events.Event) []events.Event {
	switch e := ev.(type) {
	case *events.TimewaitEnd:
		switch e.Cause {
		case events.CauseSynAccepted:
			return []events.Event{x.synReuse(e)}
		case events.CauseConnectReuse:
			return []events.Event{x.connectReuse(e)}
		case events.CauseRST:
			if e.PeerRST || e.LateSegment != nil {
				return []events.Event{x.rstKill(e), x.lateSegment(e)}
			}
			return []events.Event{x.rstKill(e)}
		}
	case *events.TimewaitOverflow:
		return []events.Event{x.overflow(e)}
	case *events.TimewaitRSTIgnored:
		if f := x.rfc1337Kept(e); f != nil {
			return []events.Event{f}
		}
	case *events.TimeoutAbort:
		return []events.Event{x.timeoutAbort(e)}
	case *events.ZeroWindowEnd:
		if e.Probes > 0 {
			return []events.Event{x.zeroWindow(e)}
		}
	case *events.Summary:
		if e.Close.Shape == events.ShapeAbort && e.Close.Rule != "" {
			return []events.Event{x.abortiveClose(e)}
		}
	}
	return nil
}

// sysctls reads the namespace's values of names, as numbers where they are
// numbers and nil where the kernel has no such sysctl; a name is left out
// while the namespace's sysctls could not be read, so that findings do not
// take "unread" for "absent". The map is shared: do not change it.
func (x *Explainer) sysctls(netns uint32, names ...sysctl.Name) map[string]any {
	snap, err := x.source(netns)
	readable := err == nil
	key := pickKey{netns: netns, gen: snap.Gen}
	cacheable := copy(key.names[:], names) == len(names)
	if out, ok := x.picked[key]; ok && cacheable && readable {
		return out
	}
	cur, ok := x.values[netns]
	if readable && (!ok || cur.gen != snap.Gen) {
		cur = genValues{gen: snap.Gen, all: values(snap)}
		x.values[netns] = cur
		clear(x.picked) // the sets of the namespace's older generation
		clear(x.reuseWhy)
	}
	out := make(map[string]any, len(names))
	for _, n := range names {
		if v, ok := cur.all[n]; ok {
			out[string(n)] = v
		}
	}
	// Not while the namespace's sysctls cannot be read: they may be later.
	if readable && cacheable {
		x.picked[key] = out
	}
	return out
}

// cached tells whether the namespace's values of names are read for good.
func (x *Explainer) cached(netns uint32, names ...sysctl.Name) bool {
	key := pickKey{netns: netns, gen: x.values[netns].gen}
	copy(key.names[:], names)
	_, ok := x.picked[key]
	return ok
}

// values is every sysctl of snap: a number where it is one, nil where the
// kernel has no such sysctl.
func values(snap sysctl.Snapshot) map[sysctl.Name]any {
	all := make(map[sysctl.Name]any, len(snap.Values))
	for _, v := range snap.Values {
		all[v.Name] = v.Number()
	}
	return all
}

// quote says a sysctl as a finding read it: its value, or why it has none.
func quote(values map[string]any, name sysctl.Name) string {
	switch v, read := values[string(name)]; {
	case !read:
		return "could not be read"
	case v == nil:
		return "absent on this kernel"
	default:
		return fmt.Sprint(v)
	}
}

// number is a sysctl as a finding read it, where it holds an integer.
func number(values map[string]any, name sysctl.Name) (int64, bool) {
	v, ok := values[string(name)].(int64)
	return v, ok
}

// plural counts things: "1 probe", "3 probes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// recycleNote states tcp_tw_recycle's part: none on kernels since 4.12.
func recycleNote(values map[string]any) string {
	switch v, read := values[string(sysctl.TWRecycle)]; {
	case !read:
		return " net.ipv4.tcp_tw_recycle plays no part: Linux removed it in 4.12."
	case v != nil:
		return fmt.Sprintf(" net.ipv4.tcp_tw_recycle is %v on this kernel.", v)
	}
	return " net.ipv4.tcp_tw_recycle plays no part: it does not exist on this kernel (removed in Linux 4.12)."
}

// timestampsNote tells a tcp_tw_reuse or RFC 6191 story that timestamps
// are off for connections made now.
func timestampsNote(values map[string]any) string {
	if ts, ok := number(values, sysctl.Timestamps); ok && ts == 0 {
		return " net.ipv4.tcp_timestamps reads 0 now: connections made here use no TCP timestamps."
	}
	return ""
}

// inferredNote says a cause was concluded, not seen, and from what.
func inferredNote(from string) string {
	if from == "" {
		return " tcptrace infers this; it did not see it."
	}
	return " tcptrace infers this from what it saw: " + from + "."
}

func conn(h events.Header) string {
	return h.Local.String() + " (local) <-> " + h.Remote.String()
}

func age(e *events.TimewaitEnd) string {
	switch {
	case e.HistoryDropped:
		return "of unknown age (tcptrace had dropped its history to stay within --max-sockets)"
	case !e.AgeKnown:
		return "of unknown age (it existed before tracing started)"
	}
	return e.Age.Round(time.Millisecond).String() + " old"
}

func evidence(e *events.TimewaitEnd) map[string]any {
	ev := map[string]any{"cause": string(e.Cause), "substate": string(e.Substate)}
	if e.AgeKnown {
		ev["age_ms"] = float64(e.Age.Microseconds()) / 1000
	}
	if e.Inferred {
		ev["inferred_from"] = e.InferredFrom
	}
	if e.Successor != 0 {
		ev["successor_cookie"] = e.Successor
	}
	if e.Incomplete {
		ev["incomplete"] = true
	}
	return ev
}

// caveats are what a TIME_WAIT end's story rests on beyond what was seen:
// an inferred cause, records lost while the socket was traced.
func caveats(e *events.TimewaitEnd) string {
	var out string
	if e.Inferred {
		out = inferredNote(e.InferredFrom)
	}
	if e.Incomplete {
		out += " Records were lost while this socket was traced (ring buffer full): its story may miss events."
	}
	return out
}

func finding(h events.Header, kind events.FindingKind, msg string, ev, sysctls map[string]any) *events.Finding {
	return &events.Finding{Header: h, Kind: kind, Message: msg, Evidence: ev, Sysctls: sysctls}
}

func (x *Explainer) synReuse(e *events.TimewaitEnd) *events.Finding {
	values := x.sysctls(e.Netns, sysctl.Timestamps, sysctl.TWRecycle)
	ev := evidence(e)
	took := "accepted the new connection"
	if e.Successor == 0 {
		took = "passed the SYN on (the new connection was not seen established)"
	}
	msg := fmt.Sprintf("The TIME_WAIT socket of %s was %s when a new SYN on the same 4-tuple arrived, and the kernel "+
		"ended it and %s instead of waiting out the 60 s.%s Linux ends a TIME_WAIT socket for a new SYN when it "+
		"is not rejected by PAWS and either its sequence number is after the last one the old connection "+
		"received (rcv_nxt) or its TCP timestamp is newer than the old connection's (RFC 6191). ",
		conn(e.Header), age(e), took, caveats(e))
	after, seqKnown := e.SynSeqAfter()
	newer, tsKnown := e.SynTSNewer()
	if seqKnown {
		ev["syn_seq"], ev["rcv_nxt"], ev["syn_seq_after_rcv_nxt"] = e.Syn.Seq, e.Last.Seq, after
	}
	if tsKnown {
		ev["syn_tsval"], ev["ts_recent"], ev["syn_ts_newer"] = e.Syn.TSVal, e.Last.TSVal, newer
	}
	msg += synWhy(e, after, seqKnown, newer, tsKnown) + timestampsNote(values) + recycleNote(values)
	return finding(e.Header, events.FindingTimewaitSynReuse, msg, ev, values)
}

// synWhy says which RFC 6191 test let the SYN through, as far as the
// sequence numbers and timestamps seen tell.
func synWhy(e *events.TimewaitEnd, after, seqKnown, newer, tsKnown bool) string {
	seq := fmt.Sprintf("sequence number %d", e.Syn.Seq)
	ts := fmt.Sprintf("timestamp %d", e.Syn.TSVal)
	switch {
	case seqKnown && after:
		return fmt.Sprintf("Here the SYN's %s was after rcv_nxt %d, which is enough.", seq, e.Last.Seq)
	case seqKnown && tsKnown && newer:
		return fmt.Sprintf("Here the SYN's %s was NOT after rcv_nxt %d; its %s was newer than the old "+
			"connection's %d, and that decided it.", seq, e.Last.Seq, ts, e.Last.TSVal)
	case seqKnown && tsKnown:
		return fmt.Sprintf("Here neither held as seen: the SYN's %s was not after rcv_nxt %d, and its %s was not "+
			"newer than the old connection's %d; what let it through is unknown.", seq, e.Last.Seq, ts, e.Last.TSVal)
	case seqKnown:
		return fmt.Sprintf("Here the SYN's %s was not after rcv_nxt %d, so its timestamp presumably decided it "+
			"(timestamps were not seen on both sides).", seq, e.Last.Seq)
	case tsKnown && newer:
		return fmt.Sprintf("Here the SYN's %s was newer than the old connection's %d, which is enough (the "+
			"sequence numbers were not seen).", ts, e.Last.TSVal)
	case tsKnown:
		return fmt.Sprintf("Here the SYN's %s was not newer than the old connection's %d, so its sequence number "+
			"(not seen) was presumably after rcv_nxt.", ts, e.Last.TSVal)
	}
	return "Which of the two held was not seen."
}

func (x *Explainer) connectReuse(e *events.TimewaitEnd) *events.Finding {
	names := []sysctl.Name{sysctl.TWReuse, sysctl.TWReuseDelay, sysctl.Timestamps, sysctl.TWRecycle}
	values := x.sysctls(e.Netns, names...)
	ev := evidence(e)
	ev["port_bound_before_connect"] = e.SuccessorBoundPort
	loopback := isLoopback(e.Local.Addr()) || isLoopback(e.Remote.Addr())
	ev["loopback"] = loopback
	key := reuseKey{e.Netns, e.SuccessorBoundPort, loopback}
	why, ok := x.reuseWhy[key]
	if !ok {
		why = connectReuseWhy(values, e.SuccessorBoundPort, loopback)
		// Only once the sysctls it quotes are read for good.
		if x.cached(e.Netns, names...) {
			x.reuseWhy[key] = why
		}
	}
	msg := "An outgoing connect() took over the TIME_WAIT socket of " + conn(e.Header) + " when it was " + age(e) + "." +
		caveats(e) + " " + why
	if !e.SuccessorBoundPort {
		msg += reuseAgeWords(values, e)
	}
	return finding(e.Header, events.FindingTimewaitConnectReuse, msg+recycleNote(values), ev, values)
}

// reuseKey names what connectReuseWhy depends on, but for the sysctls,
// which are those of the namespace.
type reuseKey struct {
	netns           uint32
	bound, loopback bool
}

// connectReuseWhy says why the kernel let connect() take a TIME_WAIT
// socket over: the same words for every socket of a namespace alike.
func connectReuseWhy(values map[string]any, bound, loopback bool) string {
	if bound {
		return "The new socket had bound its port before connect(), and for an explicitly bound port the kernel " +
			"takes over a TIME_WAIT socket whose connection used TCP timestamps at once, whatever tcp_tw_reuse says." +
			timestampsNote(values)
	}
	return "connect() picked the port itself, so tcp_tw_reuse decided (" + describeTWReuse(values, loopback) + ")." +
		" Reuse needs the old connection to have used TCP timestamps." + timestampsNote(values)
}

// reuseAgeWords says how old tcp_tw_reuse wants a TIME_WAIT socket to be,
// and whether this one was, where its age is known.
func reuseAgeWords(values map[string]any, e *events.TimewaitEnd) string {
	d, ok := number(values, sysctl.TWReuseDelay)
	if !ok {
		return " The old connection's last timestamp must also be about a second old (this kernel has no tcp_tw_reuse_delay)."
	}
	delay := time.Duration(d) * time.Millisecond
	msg := " The TIME_WAIT socket must also be older than tcp_tw_reuse_delay (" + strconv.FormatInt(d, 10) + " ms)"
	switch {
	case !e.AgeKnown:
		return msg + "."
	case e.Age > delay:
		return msg + ", and it was."
	}
	return msg + ", yet it was only " + age(e) + ": what allowed the reuse is unknown."
}

func describeTWReuse(values map[string]any, loopback bool) string {
	v, ok := number(values, sysctl.TWReuse)
	switch {
	case !ok:
		return "tcp_tw_reuse: " + quote(values, sysctl.TWReuse)
	case v == 1:
		return "tcp_tw_reuse = 1: reuse for any destination"
	case v == 2 && loopback:
		return "tcp_tw_reuse = 2: reuse for loopback connections only, and this one is on loopback"
	case v == 2:
		return "tcp_tw_reuse = 2 allows reuse on loopback only, and neither address is a loopback one: " +
			"the old socket must have been bound to the lo device"
	}
	return "tcp_tw_reuse = " + strconv.FormatInt(v, 10) + ", which should have forbidden reuse"
}

func isLoopback(a netip.Addr) bool { return a.Unmap().IsLoopback() }

// rfc1337Part says what tcp_rfc1337 had to do with an RST that ended a
// TIME_WAIT socket: nothing in FIN_WAIT2, where an RST in window ends it
// anyway; in TIME_WAIT the kernel kills only while it is 0, so a value
// other than 0 read after the kill was set since.
func rfc1337Part(substate events.State, values map[string]any) string {
	if substate == events.StateFinWait2 {
		return "as in FIN_WAIT2 an RST in window always does, whatever net.ipv4.tcp_rfc1337 says"
	}
	switch v, ok := number(values, sysctl.RFC1337); {
	case ok && v == 0:
		return "because net.ipv4.tcp_rfc1337 is 0"
	case ok:
		return fmt.Sprintf("so net.ipv4.tcp_rfc1337 was 0 then: it reads %d now", v)
	}
	return "which the kernel does only while net.ipv4.tcp_rfc1337 is 0 (here: " + quote(values, sysctl.RFC1337) + ")"
}

func (x *Explainer) rstKill(e *events.TimewaitEnd) *events.Finding {
	values := x.sysctls(e.Netns, sysctl.RFC1337, sysctl.TWRecycle)
	who := "An RST received on its 4-tuple"
	if e.PeerRST {
		who = "An RST from the peer (seen leaving it" + reasonNote(e.PeerRSTReason) + ")"
	}
	msg := fmt.Sprintf("%s ended the TIME_WAIT socket of %s when it was %s, instead of the 60 s it would have "+
		"lasted, %s. With it set to 1 the kernel ignores such RSTs (RFC 1337, TIME-WAIT assassination), and the "+
		"4-tuple stays protected.", who, conn(e.Header), age(e), rfc1337Part(e.Substate, values))
	if e.Substate == events.StateFinWait2 {
		msg = fmt.Sprintf("%s ended the TIME_WAIT socket of %s, still in FIN_WAIT2 (waiting for the peer's FIN), when "+
			"it was %s, before its timeout (net.ipv4.tcp_fin_timeout, or the socket's TCP_LINGER2) ran out, %s.",
			who, conn(e.Header), age(e), rfc1337Part(e.Substate, values))
	}
	return finding(e.Header, events.FindingTimewaitRSTKill, msg+caveats(e)+recycleNote(values), evidence(e), values)
}

// rfc1337Kept tells that tcp_rfc1337 kept a TIME_WAIT socket alive against
// the peer's in-window RST. Only with tcp_rfc1337 read as other than 0
// (the kernel's test): with 0 such an RST kills it, so one that did not
// was not delivered or not in window, and tcptrace does not say which.
func (x *Explainer) rfc1337Kept(e *events.TimewaitRSTIgnored) *events.Finding {
	// In FIN_WAIT2 an RST kills it whatever tcp_rfc1337 says.
	if e.Substate != events.StateTimeWait {
		return nil
	}
	values := x.sysctls(e.Netns, sysctl.RFC1337)
	v, ok := number(values, sysctl.RFC1337)
	if !ok || v == 0 {
		return nil
	}
	sender := "the peer's listener"
	if e.PeerNoSocket {
		sender = "the peer's kernel, for no socket"
	}
	lived := fmt.Sprintf("it was still alive %s later", human(e.AliveFor))
	if e.Ended == events.CauseExpired {
		lived = fmt.Sprintf("it lived on until its timer expired, %s later", human(e.AliveFor))
	}
	msg := fmt.Sprintf("An RST for the 4-tuple of the TIME_WAIT socket of %s left the peer (sent by %s%s), and the "+
		"TIME_WAIT socket was not stopped: %s. As the answer to the TIME_WAIT socket's ACK that RST carries "+
		"seq = that ACK's ack = its rcv_nxt, exactly in window, which with net.ipv4.tcp_rfc1337 = 0 kills it; "+
		"net.ipv4.tcp_rfc1337 = %d made the kernel ignore it (RFC 1337, TIME-WAIT assassination hazards). "+
		"That the RST arrived, in window, is inferred (the peer is on this host), not seen.",
		conn(e.Header), sender, reasonNote(e.PeerRSTReason), lived, v)
	ev := map[string]any{"substate": string(e.Substate), "peer_rst_at": e.PeerRSTAt.Format(events.TimeLayout),
		"peer_rst_reason": e.PeerRSTReason, "peer_no_socket": e.PeerNoSocket,
		"alive_after_ms": float64(e.AliveFor.Microseconds()) / 1000,
		"inferred_from": "the peer's RST to its 4-tuple seen leaving the peer, and no stop of the TIME_WAIT socket's " +
			"timer after it; that the RST arrived is inferred (the peer is on this host)"}
	if e.Ended != "" {
		ev["ended"] = string(e.Ended)
	}
	return finding(e.Header, events.FindingTimewaitRFC1337Kept, msg, ev, values)
}

func (x *Explainer) overflow(e *events.TimewaitOverflow) *events.Finding {
	values := x.sysctls(e.Netns, sysctl.MaxTWBuckets, sysctl.FinTimeout, sysctl.TWRecycle)
	buckets := quote(values, sysctl.MaxTWBuckets)
	limit, limitKnown := number(values, sysctl.MaxTWBuckets)
	if e.MaxTWBucketsKnown {
		// As read when the socket closed, not now: the finding waits for
		// the RST an abort would have sent.
		decided := values
		values = maps.Clone(values)
		values[string(sysctl.MaxTWBuckets)] = e.MaxTWBuckets
		limit, limitKnown = e.MaxTWBuckets, true
		buckets = strconv.FormatInt(e.MaxTWBuckets, 10)
		if now, ok := number(decided, sysctl.MaxTWBuckets); ok && now != e.MaxTWBuckets {
			buckets += fmt.Sprintf(" when it closed; it reads %d now", now)
		}
	}
	seen := fmt.Sprintf("tcptrace saw %s alive in this namespace then", plural(e.TimewaitSockets, "TIME_WAIT socket", "TIME_WAIT sockets"))
	switch {
	case limitKnown && limit == 0:
		seen = "With the limit at 0 no TIME_WAIT socket can be made at all."
	case limitKnown && int64(e.TimewaitSockets) >= limit:
		seen += ": the limit was reached."
	case limitKnown:
		seen += ", fewer than the limit: it does not count those made before tracing began, and memory may " +
			"have run out instead."
	default:
		seen += "."
	}
	msg := fmt.Sprintf("The socket %s closed from %s without a TIME_WAIT socket: the kernel could not make one.%s "+
		"That happens when the namespace already holds net.ipv4.tcp_max_tw_buckets (%s) of them, or when memory for "+
		"one runs out (both counted in TCPTimeWaitOverflow). %s Without TIME_WAIT, late segments of this connection "+
		"can be taken for a new one on the same 4-tuple.",
		conn(e.Header), e.State, inferredNote(e.InferredFrom), buckets, seen)
	ev := map[string]any{"closed_from": string(e.State), "inferred_from": e.InferredFrom,
		"timewait_sockets_seen": e.TimewaitSockets}
	return finding(e.Header, events.FindingTimewaitOverflow, msg+recycleNote(values), ev, values)
}
func (x *Explainer) timeoutAbort(e *events.TimeoutAbort) *events.Finding {
	kind, spaced := spacing(e.Timer, e.Intervals)
	intervals := make([]float64, 0, len(e.Intervals))
	for _, d := range e.Intervals {
		intervals = append(intervals, float64(d.Microseconds())/1000)
	}
	ev := map[string]any{"timer": e.Timer, "rule": e.Rule, "probes": e.Probes, "sent": e.Sent,
		"elapsed_ms": float64(e.Elapsed.Microseconds()) / 1000}
	if len(intervals) > 0 {
		ev["intervals_ms"], ev["backoff"] = intervals, kind
	}
	elapsed := e.Elapsed.Round(time.Millisecond)
	if e.Rule == "user_timeout" {
		values := x.sysctls(e.Netns, sysctl.Retries2, sysctl.KeepaliveProbes)
		msg := fmt.Sprintf("The connection %s was aborted (ETIMEDOUT) by TCP_USER_TIMEOUT: the %s timer had gone on for %s, "+
			"longer than the socket's user timeout allows, so the kernel gave up before tcp_retries2 or the keepalive "+
			"probe count would have. %s", conn(e.Header), e.Timer, elapsed, sentWords(e, spaced))
		if e.Timer == "keepalive" {
			ev["user_timeout_ms"] = float64(e.Settings.UserTimeout.Milliseconds())
		}
		return finding(e.Header, events.FindingUserTimeout, msg, ev, values)
	}
	switch e.Timer {
	case "keepalive":
		k := e.Settings
		ev["settings"] = map[string]any{"idle_s": k.Idle.Seconds(), "interval_s": k.Interval.Seconds(),
			"probes": k.Probes, "user_timeout_ms": k.UserTimeout.Milliseconds(), "source": k.Source}
		values := x.sysctls(e.Netns, sysctl.KeepaliveTime, sysctl.KeepaliveIntvl, sysctl.KeepaliveProbes)
		where := map[string]string{"socket": "all set on the socket (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT)",
			"sysctl": "all from the sysctls net.ipv4.tcp_keepalive_time, _intvl and _probes",
			"mixed":  "partly set on the socket, the rest from the net.ipv4.tcp_keepalive_* sysctls"}[k.Source]
		unanswered := fmt.Sprintf("%d of them in a row", e.Probes)
		if e.Probes == 1 {
			unanswered = "one of them"
		}
		msg := fmt.Sprintf("The connection %s was aborted by the keepalive timer: after %s idle the kernel sent "+
			"keepalive probes every %s, and when %s got no answer (%s over the probes) it sent an RST "+
			"and returned ETIMEDOUT to the application. The settings were %s.",
			conn(e.Header), human(k.Idle), human(k.Interval), unanswered, elapsed, where)
		return finding(e.Header, events.FindingKeepaliveTimeout, msg, ev, values)
	case "syn":
		values := x.sysctls(e.Netns, sysctl.SynRetries)
		msg := fmt.Sprintf("connect() to %s failed with ETIMEDOUT: the SYN was retransmitted %s over %s%s, never "+
			"answered; net.ipv4.tcp_syn_retries (%s) decides how many.",
			e.Remote, times(e.Sent), elapsed, spaced, quote(values, sysctl.SynRetries))
		return finding(e.Header, events.FindingRetransmitTimeout, msg, ev, values)
	}
	values := x.sysctls(e.Netns, sysctl.Retries2, sysctl.OrphanRetries)
	msg := fmt.Sprintf("The connection %s was aborted (ETIMEDOUT) after %s over %s without "+
		"an acknowledgement%s. net.ipv4.tcp_retries2 (%s) bounds that: the kernel turns it into a time budget of "+
		"backed-off RTOs, and gives up when it is spent.",
		conn(e.Header), plural(e.Sent, "retransmission timeout", "retransmission timeouts"), elapsed, spaced,
		quote(values, sysctl.Retries2))
	if e.Timer == "zero_window" {
		msg = fmt.Sprintf("The connection %s was aborted (ETIMEDOUT) while its peer kept a zero window, after %s. %s "+
			"net.ipv4.tcp_retries2 (%s) bounds the unanswered ones in a row (an orphaned socket: tcp_orphan_retries, %s); "+
			"a peer that answers the probes, even with a zero window, is never aborted this way.",
			conn(e.Header), elapsed, sentWords(e, spaced), quote(values, sysctl.Retries2),
			quote(values, sysctl.OrphanRetries))
	}
	return finding(e.Header, events.FindingRetransmitTimeout, msg, ev, values)
}

// sentWords tells what the timer sent and how much of it went unanswered,
// from the counts the abort carries.
func sentWords(e *events.TimeoutAbort, spaced string) string {
	what := "retransmissions"
	switch e.Timer {
	case "zero_window":
		what = "zero-window probes"
	case "keepalive":
		what = "keepalive probes"
	}
	msg := fmt.Sprintf("It sent %d %s%s", e.Sent, what, spaced)
	switch answered := e.Sent - e.Probes; {
	case e.Sent == 0:
		return fmt.Sprintf("It had sent no %s yet.", what)
	case answered > 0 && e.Timer == "zero_window":
		return msg + fmt.Sprintf("; the peer ACKed %d of them with its window still 0, and each ACK resets the kernel's count of unanswered probes (%d at the end).", answered, e.Probes)
	case answered > 0:
		return msg + fmt.Sprintf("; %d were answered, %d in a row were not.", answered, e.Probes)
	}
	return msg + ", none answered."
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times"
}

// spacing says the waits between retransmissions or probes and how they
// grew (" (1 s, 2 s, 4 s apart: exponential backoff)"), and names the
// backoff; both empty with no wait to go by.
func spacing(timer string, intervals []time.Duration) (kind, words string) {
	if len(intervals) == 0 {
		return "", ""
	}
	kind, grew := backoff(timer, intervals)
	if grew == "" {
		return "", " (" + waits(intervals) + " apart)"
	}
	return kind, " (" + waits(intervals) + " apart: " + grew + ")"
}

// waits lists durations in words: "200 ms, 400 ms".
func waits(intervals []time.Duration) string {
	parts := make([]string, len(intervals))
	for i, d := range intervals {
		parts[i] = human(d)
	}
	return strings.Join(parts, ", ")
}

// linearFirst names what makes the timer's first waits fixed.
var linearFirst = map[string]string{
	"syn":        " (tcp_syn_linear_timeouts)",
	"retransmit": " (thin-stream linear timeouts: tcp_thin_linear_timeouts or TCP_THIN_LINEAR_TIMEOUTS)",
}

// backoff names how the waits of the timer grew and says it in words; both
// empty with fewer than two waits to compare.
func backoff(timer string, intervals []time.Duration) (kind, words string) {
	if len(intervals) < 2 {
		return "", ""
	}
	// Per pair: 'd' doubled, 'e' equal, 'c' grew by less (a ceiling
	// reached), 'x' anything else.
	steps := make([]byte, 0, len(intervals)-1)
	for i := 1; i < len(intervals); i++ {
		switch r := float64(intervals[i]) / float64(intervals[i-1]); {
		case r > 1.7 && r < 2.3:
			steps = append(steps, 'd')
		case r > 0.85 && r < 1.15:
			steps = append(steps, 'e')
		case r >= 1.15 && r <= 1.7:
			steps = append(steps, 'c')
		default:
			steps = append(steps, 'x')
		}
	}
	pattern := string(steps)
	onlyDoubling := func(p string) bool { return p != "" && strings.Trim(p, "d") == "" }
	// Doubling until a ceiling holds it (tcp_rto_max) or a limit cuts the
	// last wait short (TCP_USER_TIMEOUT's time left).
	capped := strings.TrimRight(pattern, "e")
	if last := len(capped) - 1; last >= 0 && capped[last] != 'd' {
		capped = capped[:last]
	}
	switch {
	case strings.Trim(pattern, "e") == "":
		return "linear", "a fixed interval (linear, not exponential)"
	case onlyDoubling(pattern):
		return "exponential", "each wait twice the one before (exponential backoff)"
	case pattern[0] == 'e' && onlyDoubling(strings.TrimLeft(pattern, "e")):
		return "linear_then_exponential", "first at a fixed interval, then doubling" + linearFirst[timer]
	case onlyDoubling(capped) && len(capped) < len(pattern):
		return "clamped", "doubling, then clamped: held at a ceiling or cut to what a limit left"
	}
	return "irregular", "neither fixed nor doubling"
}

// zeroWindowHow says how a zero-window episode ended.
var zeroWindowHow = map[string]string{
	"reopened":        "until the peer opened it again",
	"aborted":         "until the connection was aborted",
	"closed":          "until the socket closed",
	"tracing_stopped": "and it was still 0 when tracing stopped",
}

func (x *Explainer) zeroWindow(e *events.ZeroWindowEnd) *events.Finding {
	values := x.sysctls(e.Netns, sysctl.KeepaliveTime, sysctl.Retries2)
	intervals := make([]float64, 0, len(e.Intervals))
	for _, d := range e.Intervals {
		intervals = append(intervals, float64(d.Microseconds())/1000)
	}
	how, ok := zeroWindowHow[e.How]
	if !ok {
		how = "ended: " + e.How
	}
	msg := fmt.Sprintf("The persist timer, not the keepalive timer, sent %s on %s while its peer's window was 0 "+
		"(for %s, %s): a zero-window probe carries no data and the sequence number SND.UNA-1, exactly like a "+
		"keepalive, which is why capture tools such as Wireshark label it \"TCP Keep-Alive\" (and the answer \"TCP "+
		"ZeroWindow\"). The keepalive settings (tcp_keepalive_time and friends, SO_KEEPALIVE) played no part: a "+
		"zero window means the peer had no room left to receive, most often because its application stopped reading.",
		plural(e.Probes, "zero-window probe", "zero-window probes"), conn(e.Header), human(e.Duration), how)
	ev := map[string]any{"probes": e.Probes, "zero_window_ms": float64(e.Duration.Microseconds()) / 1000,
		"ended": e.How, "intervals_ms": intervals}
	switch kind, grew := backoff("zero_window", e.Intervals); {
	case len(e.Intervals) == 1:
		msg += " The wait it set after the probe was " + waits(e.Intervals) + "."
	case grew != "":
		msg += " The waits it set after the probes were " + waits(e.Intervals) + ": " + grew + "."
		ev["backoff"] = kind
	}
	return finding(e.Header, events.FindingZeroWindowNotKeepalive, msg, ev, values)
}

func human(d time.Duration) string { return events.HumanDuration(d) }

// lateSegment tells the story of seed 000: a segment of the old connection
// arrives after our side entered TIME_WAIT (reordered, duplicated, or
// retransmitted); the TIME_WAIT socket answers it with an ACK; the peer has
// no connection any more and answers that ACK with an RST, which is in
// window, and with tcp_rfc1337 = 0 it kills the TIME_WAIT socket. Made when
// the peer's RST or the segment was seen: the rest follows from them.
func (x *Explainer) lateSegment(e *events.TimewaitEnd) *events.Finding {
	values := x.sysctls(e.Netns, sysctl.RFC1337)
	ev := evidence(e)
	ev["peer_rst_reason"] = e.PeerRSTReason
	msg := fmt.Sprintf("A late segment of the old connection reached the TIME_WAIT socket of %s when it was %s, "+
		"tcptrace infers from the peer's RST for a connection it no longer had: the segment itself is not visible "+
		"from tracepoints (a capture shows it just before the ACK).", conn(e.Header), age(e))
	acked := true
	if seg := e.LateSegment; seg != nil {
		flags := events.FlagNames(seg.Flags)
		ev["late_segment"] = map[string]any{"flags": flags, "seq": seg.Seq, "rcv_nxt": seg.RcvNxt, "verdict": seg.Verdict}
		if flags == "" {
			flags = "no flags"
		}
		msg = fmt.Sprintf("A segment reached the TIME_WAIT socket of %s when it was %s: %s, sequence %d (its rcv_nxt "+
			"was %d), kernel verdict TCP_TW_%s.", conn(e.Header), age(e), flags, seg.Seq, seg.RcvNxt, seg.Verdict)
		acked = seg.Verdict == "ACK" || seg.Verdict == "ACK_OOW" || seg.Verdict == "SYN"
	}
	seen := ""
	if e.PeerRST {
		seen = " (seen leaving the peer" + reasonNote(e.PeerRSTReason) + ")"
	}
	if !acked {
		msg += fmt.Sprintf(" With that verdict the TIME_WAIT socket sent no ACK for it, so the RST%s was not the "+
			"answer to one: what the peer answered is unknown. The RST ended it %s.", seen, rfc1337Part(e.Substate, values))
		return finding(e.Header, events.FindingLateSegmentInTimewait, msg+caveats(e), ev, values)
	}
	answer := "The TIME_WAIT socket answered it with an ACK (seq = its snd_nxt, ack = its rcv_nxt)"
	if e.LateSegment != nil && e.LateSegment.Verdict == "SYN" {
		answer = "No listener took the SYN, so the TIME_WAIT socket answered it with an ACK (seq = its snd_nxt, ack = its rcv_nxt)"
	}
	peer := "the peer, whose side of the connection was already gone, answered that ACK with an RST" + seen
	if !e.PeerRST {
		peer = "an RST came back, not seen leaving the peer: presumably its answer, its side of the connection gone"
	}
	msg += fmt.Sprintf(" %s; %s, and that RST, exactly in window as the answer to an ACK is, ended it %s.",
		answer, peer, rfc1337Part(e.Substate, values))
	return finding(e.Header, events.FindingLateSegmentInTimewait, msg+caveats(e), ev, values)
}

func reasonNote(reason string) string {
	if reason == "" {
		return ""
	}
	return ", reason " + reason
}
