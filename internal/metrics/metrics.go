// Package metrics counts what the pipeline writes as Prometheus metrics:
// the sink behind --metrics. It sees every event written (after the
// filter) and only increments collectors, which are safe to read from
// the HTTP server's goroutine while the pipeline writes.
//
// Labels are bounded: the network namespace always, and on request the
// owner's comm, container id, pod and pod namespace (values only from the
// cgroup the owner runs in: a socket without a known owner gets ""); never
// a 4-tuple or a pid, which would make a series per connection.
package metrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tcptrace/tcptrace/internal/events"
)

// The optional labels of every per-socket metric, by the name
// --metrics-labels gives them.
const (
	LabelComm      = "comm"      // the owner's comm
	LabelContainer = "container" // the owner's container id, as label container_id
	LabelPod       = "pod"       // the owner's pod and its namespace, as labels pod and pod_namespace
)

// OptionalLabels are the labels --metrics-labels may add.
var OptionalLabels = []string{LabelComm, LabelContainer, LabelPod}

// ParseLabels checks a --metrics-labels list and returns it in the
// order of OptionalLabels, each once.
func ParseLabels(names []string) ([]string, error) {
	asked := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if !slices.Contains(OptionalLabels, n) {
			return nil, fmt.Errorf("--metrics-labels: unknown label %q (known: %s)", n, strings.Join(OptionalLabels, ", "))
		}
		asked[n] = true
	}
	var labels []string
	for _, l := range OptionalLabels {
		if asked[l] {
			labels = append(labels, l)
		}
	}
	return labels, nil
}

// ageBuckets, in seconds, for how old a TIME_WAIT socket was at its end:
// fine below a second (an RST or a reused 4-tuple ends it early), and
// around 60 s, where the kernel's timer ends it (TCP_TIMEWAIT_LEN, give or
// take the timer wheel's slack).
var ageBuckets = []float64{0.001, 0.01, 0.1, 1, 5, 10, 30, 50, 55, 60, 62, 65, 70, 90, 120}

// Metrics holds tcptrace's collectors on a registry of their own.
type Metrics struct {
	registry             *prometheus.Registry
	comm, container, pod bool

	stateChanges     *prometheus.CounterVec
	timewaitSockets  *prometheus.GaugeVec
	timewaitEnters   *prometheus.CounterVec
	timewaitRestarts *prometheus.CounterVec
	timewaitEnds     *prometheus.CounterVec
	timewaitAge      *prometheus.HistogramVec
	resetsSent       *prometheus.CounterVec
	resetsReceived   *prometheus.CounterVec
	retransmits      *prometheus.CounterVec
	rtos             *prometheus.CounterVec
	keepaliveProbes  *prometheus.CounterVec
	zeroWindowProbes *prometheus.CounterVec
	timeoutAborts    *prometheus.CounterVec
	findings         *prometheus.CounterVec

	// Set by the reader's side, read at each scrape.
	lost, evicted atomic.Uint64
	queueBytes    atomic.Int64

	// timewaits is the substate of each TIME_WAIT socket alive (by
	// cookie), with the labels its gauge has: a socket's end and
	// substate moves then change the right series, and an end whose start
	// was never seen changes none.
	timewaits map[uint64]timewait
}

type timewait struct {
	substate events.State
	labels   []string // of the socket, without substate; never appended to in place
}

// New makes the collectors, with the optional labels given (ParseLabels),
// and registers them with Go's and the process's.
func New(optional []string) *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry(), timewaits: map[uint64]timewait{}}
	m.comm, m.container, m.pod = slices.Contains(optional, LabelComm), slices.Contains(optional, LabelContainer), slices.Contains(optional, LabelPod)
	socket := []string{"netns"}
	if m.comm {
		socket = append(socket, "comm")
	}
	if m.container {
		socket = append(socket, "container_id")
	}
	if m.pod {
		socket = append(socket, "pod", "pod_namespace")
	}
	with := func(extra ...string) []string { return append(append([]string{}, socket...), extra...) }
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tcptrace", Name: name, Help: help}, labels)
	}
	m.stateChanges = counter("state_changes_total", "TCP state changes (tcp_set_state) by old and new state.", with("old_state", "new_state"))
	m.timewaitSockets = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tcptrace", Name: "timewait_sockets",
		Help: "TIME_WAIT sockets alive now by substate (TIME_WAIT, or FIN_WAIT2 until the peer closes), of those seen start or existing when tracing began."},
		with("substate"))
	m.timewaitEnters = counter("timewait_enters_total", "TIME_WAIT sockets that began, by their first substate.", with("substate"))
	m.timewaitRestarts = counter("timewait_restarts_total", "TIME_WAIT timers started over by a segment answered with an ACK.", with("substate"))
	m.timewaitEnds = counter("timewait_ends_total", "TIME_WAIT sockets that ended, by cause.", with("cause"))
	m.timewaitAge = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "tcptrace", Name: "timewait_age_seconds",
		Help: "How old TIME_WAIT sockets were when they ended (those whose start was seen), by cause.", Buckets: ageBuckets},
		with("cause"))
	m.resetsSent = counter("resets_sent_total", "RSTs the kernel sent, by its reason (sk_rst_reason; unknown where the kernel gives none).", with("reason"))
	m.resetsReceived = counter("resets_received_total", "RSTs received that reset a socket (tcp_reset).", socket)
	m.retransmits = counter("retransmits_total", "Segments retransmitted, by the socket's state.", with("state"))
	m.rtos = counter("retransmission_timeouts_total", "Retransmission timer runs, by kind (rto, loss_probe, syn).", with("kind"))
	m.keepaliveProbes = counter("keepalive_probes_total", "Keepalive probes sent by the keepalive timer.", socket)
	m.zeroWindowProbes = counter("zero_window_probes_total", "Zero-window probes sent by the persist timer.", socket)
	m.timeoutAborts = counter("timeout_aborts_total", "Connections a timer gave up on (ETIMEDOUT), by timer and the rule that decided.", with("timer", "rule"))
	m.findings = counter("findings_total", "Findings written, by kind.", with("kind"))
	m.registry.MustRegister(m.stateChanges, m.timewaitSockets, m.timewaitEnters, m.timewaitRestarts, m.timewaitEnds,
		m.timewaitAge, m.resetsSent, m.resetsReceived, m.retransmits, m.rtos, m.keepaliveProbes, m.zeroWindowProbes,
		m.timeoutAborts, m.findings,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tcptrace", Name: "events_lost_total",
			Help: "Kernel records dropped because the ring buffer was full."},
			func() float64 { return float64(m.lost.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tcptrace", Name: "histories_evicted_total",
			Help: "Socket histories dropped to stay within --max-sockets."},
			func() float64 { return float64(m.evicted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "tcptrace", Name: "output_queue_bytes",
			Help: "Bytes of kernel records read and waiting to be tracked and written."},
			func() float64 { return float64(m.queueBytes.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is where the collectors are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// SetLost notes how many kernel records were dropped so far.
func (m *Metrics) SetLost(n uint64) { m.lost.Store(n) }

// SetEvicted notes how many socket histories were evicted so far.
func (m *Metrics) SetEvicted(n uint64) { m.evicted.Store(n) }

// SetQueueBytes notes how many bytes of records wait in the output queue.
func (m *Metrics) SetQueueBytes(n int64) { m.queueBytes.Store(n) }

// noCgroup labels the sockets whose owner's cgroup is not known.
var noCgroup events.Cgroup

// labels returns a socket's label values (netns, and the optional ones
// asked), followed by extra.
func (m *Metrics) labels(h *events.Header, extra ...string) []string {
	vals := make([]string, 0, 5+len(extra))
	vals = append(vals, strconv.FormatUint(uint64(h.Netns), 10))
	if m.comm {
		vals = append(vals, h.Owner.Comm)
	}
	cg := h.Owner.Cgroup
	if cg == nil {
		cg = &noCgroup
	}
	if m.container {
		vals = append(vals, cg.ContainerID)
	}
	if m.pod {
		vals = append(vals, cg.Pod, cg.PodNamespace)
	}
	return append(vals, extra...)
}

// Observe counts one event written. Not safe for concurrent use (the
// pipeline's goroutine calls it); scrapes may run concurrently.
func (m *Metrics) Observe(ev events.Event) {
	h := ev.Head()
	switch e := ev.(type) {
	case *events.StateChange:
		m.stateChanges.WithLabelValues(m.labels(h, string(e.Old), string(e.New))...).Inc()
	case *events.Snapshot:
		if e.State == events.StateTimeWait {
			m.timewaitAlive(h, e.Substate)
		}
	case *events.TimewaitEnter:
		switch _, alive := m.timewaits[h.Cookie]; {
		case e.Restart:
			m.timewaitRestarts.WithLabelValues(m.labels(h, string(e.Substate))...).Inc()
		case !alive:
			m.timewaitEnters.WithLabelValues(m.labels(h, string(e.Substate))...).Inc()
		}
		m.timewaitAlive(h, e.Substate)
	case *events.TimewaitSubstate:
		if _, alive := m.timewaits[h.Cookie]; alive {
			m.timewaitAlive(h, e.New)
		}
	case *events.TimewaitEnd:
		m.timewaitGone(h.Cookie)
		m.timewaitEnds.WithLabelValues(m.labels(h, string(e.Cause))...).Inc()
		if e.AgeKnown {
			m.timewaitAge.WithLabelValues(m.labels(h, string(e.Cause))...).Observe(e.Age.Seconds())
		}
	case *events.Summary:
		// A story's end: its TIME_WAIT socket, if any left, is gone too
		// (tracing stopped, or its end was not seen).
		m.timewaitGone(h.Cookie)
	case *events.ResetSent:
		reason := e.Reason
		if reason == "" {
			reason = "unknown"
		}
		m.resetsSent.WithLabelValues(m.labels(h, reason)...).Inc()
	case *events.ResetReceived:
		m.resetsReceived.WithLabelValues(m.labels(h)...).Inc()
	case *events.Retransmit:
		m.retransmits.WithLabelValues(m.labels(h, string(e.State))...).Inc()
	case *events.RTO:
		m.rtos.WithLabelValues(m.labels(h, string(e.Kind))...).Inc()
	case *events.KeepaliveProbe:
		m.keepaliveProbes.WithLabelValues(m.labels(h)...).Inc()
	case *events.ZeroWindowProbe:
		m.zeroWindowProbes.WithLabelValues(m.labels(h)...).Inc()
	case *events.TimeoutAbort:
		m.timeoutAborts.WithLabelValues(m.labels(h, e.Timer, e.Rule)...).Inc()
	case *events.Finding:
		m.findings.WithLabelValues(m.labels(h, string(e.Kind))...).Inc()
	}
}

// timewaitAlive notes a TIME_WAIT socket alive in substate, moving it
// from the substate it was in.
func (m *Metrics) timewaitAlive(h *events.Header, substate events.State) {
	tw, alive := m.timewaits[h.Cookie]
	if alive {
		if tw.substate == substate {
			return
		}
		m.timewaitSockets.WithLabelValues(slices.Concat(tw.labels, []string{string(tw.substate)})...).Dec()
	} else {
		tw.labels = m.labels(h)
	}
	tw.substate = substate
	m.timewaits[h.Cookie] = tw
	m.timewaitSockets.WithLabelValues(slices.Concat(tw.labels, []string{string(substate)})...).Inc()
}

// timewaitGone notes that a socket has no TIME_WAIT socket (any more).
func (m *Metrics) timewaitGone(cookie uint64) {
	tw, alive := m.timewaits[cookie]
	if !alive {
		return
	}
	delete(m.timewaits, cookie)
	m.timewaitSockets.WithLabelValues(slices.Concat(tw.labels, []string{string(tw.substate)})...).Dec()
}
