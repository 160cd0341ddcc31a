package metrics

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/tcptrace/tcptrace/internal/events"
)

func header(cookie uint64, comm string) events.Header {
	return events.Header{Cookie: cookie, Netns: 4026531840, Owner: events.Owner{PID: 1234, Comm: comm}}
}

// story is one client's close through TIME_WAIT, a TIME_WAIT restart, one
// that moves from FIN_WAIT2, an end never started in view, resets, timers
// and a finding.
func story() []events.Event {
	return []events.Event{
		&events.StateChange{Header: header(1, "curl"), Old: events.StateEstablished, New: events.StateFinWait1},
		&events.StateChange{Header: header(1, "curl"), Old: events.StateFinWait1, New: events.StateFinWait2},
		&events.TimewaitEnter{Header: header(1, "curl"), Substate: events.StateFinWait2},
		&events.TimewaitSubstate{Header: header(1, "curl"), Old: events.StateFinWait2, New: events.StateTimeWait},
		&events.TimewaitEnter{Header: header(1, "curl"), Substate: events.StateTimeWait},
		&events.TimewaitEnter{Header: header(1, "curl"), Substate: events.StateTimeWait, Restart: true},
		&events.TimewaitEnter{Header: header(2, "nginx"), Substate: events.StateTimeWait},
		&events.Snapshot{Header: header(3, ""), State: events.StateTimeWait, Substate: events.StateTimeWait},
		&events.TimewaitEnd{Header: header(1, "curl"), Substate: events.StateTimeWait, Cause: events.CauseExpired,
			Age: 60 * time.Second, AgeKnown: true},
		&events.TimewaitEnd{Header: header(9, "curl"), Substate: events.StateTimeWait, Cause: events.CauseRST},
		&events.Summary{Header: header(3, "")},
		&events.ResetSent{Header: header(4, "curl"), Reason: "NOT_SPECIFIED"},
		&events.ResetSent{Header: header(0, ""), NoSocket: true},
		&events.ResetReceived{Header: header(4, "curl")},
		&events.Retransmit{Header: header(4, "curl"), State: events.StateEstablished},
		&events.RTO{Header: header(4, "curl"), Kind: "rto"},
		&events.KeepaliveProbe{Header: header(5, "redis")},
		&events.ZeroWindowProbe{Header: header(5, "redis")},
		&events.TimeoutAbort{Header: header(5, "redis"), Timer: "keepalive", Rule: "keepalive_probes"},
		&events.Finding{Header: header(5, "redis"), Kind: "keepalive_timeout"},
	}
}

func observed(labels []string) *Metrics {
	m := New(labels)
	for _, ev := range story() {
		m.Observe(ev)
	}
	m.SetLost(7)
	m.SetEvicted(3)
	m.SetQueueBytes(4096)
	return m
}

func TestCounts(t *testing.T) {
	m := observed(nil)
	const want = `
# HELP tcptrace_state_changes_total TCP state changes (tcp_set_state) by old and new state.
# TYPE tcptrace_state_changes_total counter
tcptrace_state_changes_total{netns="4026531840",new_state="FIN_WAIT1",old_state="ESTABLISHED"} 1
tcptrace_state_changes_total{netns="4026531840",new_state="FIN_WAIT2",old_state="FIN_WAIT1"} 1
# HELP tcptrace_timewait_sockets TIME_WAIT sockets alive now by substate (TIME_WAIT, or FIN_WAIT2 until the peer closes), of those seen start or existing when tracing began.
# TYPE tcptrace_timewait_sockets gauge
tcptrace_timewait_sockets{netns="4026531840",substate="FIN_WAIT2"} 0
tcptrace_timewait_sockets{netns="4026531840",substate="TIME_WAIT"} 1
# HELP tcptrace_timewait_enters_total TIME_WAIT sockets that began, by their first substate.
# TYPE tcptrace_timewait_enters_total counter
tcptrace_timewait_enters_total{netns="4026531840",substate="FIN_WAIT2"} 1
tcptrace_timewait_enters_total{netns="4026531840",substate="TIME_WAIT"} 1
# HELP tcptrace_timewait_restarts_total TIME_WAIT timers started over by a segment answered with an ACK.
# TYPE tcptrace_timewait_restarts_total counter
tcptrace_timewait_restarts_total{netns="4026531840",substate="TIME_WAIT"} 1
# HELP tcptrace_timewait_ends_total TIME_WAIT sockets that ended, by cause.
# TYPE tcptrace_timewait_ends_total counter
tcptrace_timewait_ends_total{cause="expired",netns="4026531840"} 1
tcptrace_timewait_ends_total{cause="rst",netns="4026531840"} 1
# HELP tcptrace_resets_sent_total RSTs the kernel sent, by its reason (sk_rst_reason; unknown where the kernel gives none).
# TYPE tcptrace_resets_sent_total counter
tcptrace_resets_sent_total{netns="4026531840",reason="NOT_SPECIFIED"} 1
tcptrace_resets_sent_total{netns="4026531840",reason="unknown"} 1
# HELP tcptrace_resets_received_total RSTs received that reset a socket (tcp_reset).
# TYPE tcptrace_resets_received_total counter
tcptrace_resets_received_total{netns="4026531840"} 1
# HELP tcptrace_timeout_aborts_total Connections a timer gave up on (ETIMEDOUT), by timer and the rule that decided.
# TYPE tcptrace_timeout_aborts_total counter
tcptrace_timeout_aborts_total{netns="4026531840",rule="keepalive_probes",timer="keepalive"} 1
# HELP tcptrace_events_lost_total Kernel records dropped because the ring buffer was full.
# TYPE tcptrace_events_lost_total counter
tcptrace_events_lost_total 7
# HELP tcptrace_histories_evicted_total Socket histories dropped to stay within --max-sockets.
# TYPE tcptrace_histories_evicted_total counter
tcptrace_histories_evicted_total 3
# HELP tcptrace_output_queue_bytes Bytes of kernel records read and waiting to be tracked and written.
# TYPE tcptrace_output_queue_bytes gauge
tcptrace_output_queue_bytes 4096
`
	names := []string{"tcptrace_state_changes_total", "tcptrace_timewait_sockets", "tcptrace_timewait_enters_total",
		"tcptrace_timewait_restarts_total", "tcptrace_timewait_ends_total", "tcptrace_resets_sent_total",
		"tcptrace_resets_received_total", "tcptrace_timeout_aborts_total", "tcptrace_events_lost_total",
		"tcptrace_histories_evicted_total", "tcptrace_output_queue_bytes"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	for name, c := range map[string]float64{
		"retransmits":          testutil.ToFloat64(m.retransmits),
		"rtos":                 testutil.ToFloat64(m.rtos),
		"keepalive probes":     testutil.ToFloat64(m.keepaliveProbes),
		"zero-window probes":   testutil.ToFloat64(m.zeroWindowProbes),
		"findings":             testutil.ToFloat64(m.findings),
		"TIME_WAIT age series": float64(testutil.CollectAndCount(m.timewaitAge)),
	} {
		if c != 1 {
			t.Errorf("%s: %v, want 1", name, c)
		}
	}
}

func TestCommLabel(t *testing.T) {
	m := observed([]string{"comm"})
	const want = `
# HELP tcptrace_timewait_sockets TIME_WAIT sockets alive now by substate (TIME_WAIT, or FIN_WAIT2 until the peer closes), of those seen start or existing when tracing began.
# TYPE tcptrace_timewait_sockets gauge
tcptrace_timewait_sockets{comm="curl",netns="4026531840",substate="FIN_WAIT2"} 0
tcptrace_timewait_sockets{comm="curl",netns="4026531840",substate="TIME_WAIT"} 0
tcptrace_timewait_sockets{comm="",netns="4026531840",substate="TIME_WAIT"} 0
tcptrace_timewait_sockets{comm="nginx",netns="4026531840",substate="TIME_WAIT"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tcptrace_timewait_sockets"); err != nil {
		t.Error(err)
	}
	if _, err := ParseLabels([]string{"pid"}); err == nil {
		t.Error("ParseLabels(pid): no error")
	}
}

// TestContainerPodLabels: --metrics-labels container,pod label each series
// by the owner's container id, pod and pod namespace, from its cgroup; a
// socket whose owner is not known, or runs in no container, gets "".
func TestContainerPodLabels(t *testing.T) {
	web := &events.Cgroup{Path: "/kubepods.slice/kubepods-pod1.slice/cri-containerd-3f4e.scope", ContainerID: "3f4e", Runtime: "containerd",
		PodUID: "1", Pod: "web-1", PodNamespace: "shop"}
	inPod := header(1, "nginx")
	inPod.Owner.Cgroup = web
	onHost := header(2, "curl")
	onHost.Owner.Cgroup = &events.Cgroup{Path: "/user.slice"}
	labels, err := ParseLabels([]string{"pod", "Container", "pod"})
	if err != nil || !slices.Equal(labels, []string{"container", "pod"}) {
		t.Fatalf("ParseLabels(pod, Container, pod): %v, %v; want container, pod", labels, err)
	}
	m := New(labels)
	for _, ev := range []events.Event{
		&events.KeepaliveProbe{Header: inPod},
		&events.KeepaliveProbe{Header: inPod},
		&events.KeepaliveProbe{Header: onHost},
		&events.KeepaliveProbe{Header: header(3, "")},
	} {
		m.Observe(ev)
	}
	const want = `
# HELP tcptrace_keepalive_probes_total Keepalive probes sent by the keepalive timer.
# TYPE tcptrace_keepalive_probes_total counter
tcptrace_keepalive_probes_total{container_id="",netns="4026531840",pod="",pod_namespace=""} 2
tcptrace_keepalive_probes_total{container_id="3f4e",netns="4026531840",pod="web-1",pod_namespace="shop"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tcptrace_keepalive_probes_total"); err != nil {
		t.Error(err)
	}
	if _, err := ParseLabels([]string{"container", "pod_uid"}); err == nil || !strings.Contains(err.Error(), `unknown label "pod_uid" (known: comm, container, pod)`) {
		t.Errorf("ParseLabels(container, pod_uid): %v, want one error naming pod_uid and the known labels", err)
	}
}

// TestPromtool: promtool, Prometheus's own linter, accepts the exposition
// (names, units, HELP text).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (make deps installs it)")
	}
	families, err := observed([]string{"comm", "container", "pod"}).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "tcptrace_") {
			if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &text
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
