package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/container"
)

// TestContainer: clients moved into cgroups named as docker and as
// containerd under a kubelet pod name them: their sockets' events carry the
// container id, the runtime and the pod uid; --container with a prefix of
// one id keeps only that client's sockets, in the kernel; the kubelet's pod
// log directory names the pod; --metrics-labels container,pod labels each
// one's series by its container and pod.
func TestContainer(t *testing.T) {
	requireTracing(t)
	mount, err := container.Mount()
	if err != nil {
		t.Skipf("containers need cgroup v2 (the kernel matrix's guests mount none): %v", err)
	}
	dockerID, containerdID := strings.Repeat("d0c4e1", 10)+"abcd", strings.Repeat("c0ffee", 10)+"1234"
	podUID := "0b1c7a4e-6f3d-4e2a-9d1b-5c6e7f8a9b0c"
	base := filepath.Join(mount, fmt.Sprintf("tcptrace-e2e-%d", os.Getpid()))
	cgroups := map[string]string{
		dockerID:     filepath.Join(base, "system.slice", "docker-"+dockerID+".scope"),
		containerdID: filepath.Join(base, "kubepods.slice", "kubepods-pod"+strings.ReplaceAll(podUID, "-", "_")+".slice", "cri-containerd-"+containerdID+".scope"),
	}
	// Removed after the actors in them are gone (cleanups run last first).
	t.Cleanup(func() {
		for _, dir := range cgroups {
			for d := dir; d != mount && strings.HasPrefix(d, base); d = filepath.Dir(d) {
				os.Remove(d)
			}
		}
	})
	for _, dir := range cgroups {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// As a kubelet keeps a pod's logs: <namespace>_<name>_<uid>.
	podLogs := filepath.Join(container.PodLogs, "shop_web-1_"+podUID)
	_, statErr := os.Stat(container.PodLogs)
	t.Cleanup(func() {
		os.Remove(podLogs)
		if statErr != nil {
			os.Remove(container.PodLogs) // made here
		}
	})
	if err := os.MkdirAll(podLogs, 0o755); err != nil {
		t.Fatal(err)
	}

	ns := newNetns(t)
	metricsAddr := freeAddr(t)
	all := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--metrics", metricsAddr, "--metrics-labels", "container,pod")
	docker := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--container", dockerID[:12])
	srv := ns.listener(t, "127.0.0.1")
	clients := map[string]*actor{}
	for id, dir := range cgroups {
		a := ns.startActor(t)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(a.pid)), 0); err != nil {
			t.Fatal(err)
		}
		a.port, _ = strconv.Atoi(a.do1("connect " + addr("127.0.0.1", srv.port)))
		srv.do("accept")
		closeClientFirst(a, srv)
		clients[id] = a
	}
	settle()
	m := scrape(t, metricsAddr)
	evs := all.stop()
	mine := docker.stop()

	want := map[string]struct{ runtime, podUID, pod, podNamespace string }{dockerID: {"docker", "", "", ""}, containerdID: {"containerd", podUID, "web-1", "shop"}}
	// connect() has no port yet at SYN_SENT: the socket is found by its
	// cookie, from its later events.
	connects := func(evs []event, a *actor) []event {
		var out []event
		for _, e := range socketWith(evs, func(e event) bool { return e.Sport == a.port }) {
			if e.Type == "state" && e.NewState == "SYN_SENT" {
				out = append(out, e)
			}
		}
		return out
	}
	for id, a := range clients {
		states := connects(evs, a)
		w := want[id]
		if len(states) != 1 || states[0].ContainerID != id || states[0].Runtime != w.runtime || states[0].PodUID != w.podUID ||
			states[0].Pod != w.pod || states[0].PodNamespace != w.podNamespace || !strings.HasSuffix(cgroups[id], states[0].Cgroup) {
			t.Errorf("connect() of the client in %s: %+v, want container %s, runtime %s, pod %q (%s/%s)", cgroups[id], states, id,
				w.runtime, w.podUID, w.podNamespace, w.pod)
		}
		labels := []string{`container_id="` + id + `"`, `pod="` + w.pod + `"`, `pod_namespace="` + w.podNamespace + `"`, `new_state="SYN_SENT"`}
		if got := m.sum("tcptrace_state_changes_total", labels...); got != 1 {
			t.Errorf("tcptrace_state_changes_total{%s} %v, want 1:\n%s", strings.Join(labels, ","), got, m.text)
		}
	}
	// The listener runs where the test does: in no container, as a rule.
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	ownID := container.Parse(strings.TrimSpace(strings.TrimPrefix(string(self), "0::"))).ContainerID
	if got := m.sum("tcptrace_state_changes_total", `container_id="`+ownID+`"`, `new_state="LISTEN"`); got != 1 {
		t.Errorf("the listener: tcptrace_state_changes_total{container_id=%q,new_state=LISTEN} %v, want 1", ownID, got)
	}
	if len(connects(mine, clients[dockerID])) != 1 {
		t.Errorf("--container %s: the docker client's connect() not seen", dockerID[:12])
	}
	for _, e := range kernelEvents(mine) {
		if (e.Type == "state" || e.Type == "destroy") && e.ContainerID != dockerID {
			t.Errorf("--container %s let through %+v", dockerID[:12], e)
		}
	}
}
