package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tcptrace/tcptrace/internal/container"
	"github.com/tcptrace/tcptrace/internal/container/critest"
)

// TestContainer: clients moved into cgroups named as docker, as containerd
// and CRI-O under a kubelet's pods, and as podman name them: their sockets'
// events carry the container id, the runtime and the pod uid; --container
// with a prefix of one id keeps only that client's sockets, in the kernel.
// A CRI runtime (a real gRPC server of the CRI's RuntimeService) names the
// pods, not the kubelet's pod log directory, which names them otherwise; a
// tracer whose runtime endpoint has no socket names them from the pod log
// directory; each says on stderr which named them, and a replay of the
// recording names them as the run did. --metrics-labels container,pod
// labels each client's series by its container and pod.
func TestContainer(t *testing.T) {
	requireTracing(t)
	mount, err := container.Mount()
	if err != nil {
		t.Skipf("containers need cgroup v2 (the kernel matrix's guests mount none): %v", err)
	}
	type client struct {
		cgroup, runtime, podUID string
		pod, podLogsPod         container.Pod // as the runtime names it, as the pod log directory does
	}
	base := filepath.Join(mount, fmt.Sprintf("tcptrace-e2e-%d", os.Getpid()))
	containerdPod, crioPod := "0b1c7a4e-6f3d-4e2a-9d1b-5c6e7f8a9b0c", "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9"
	kubepodsSlice := func(qos, uid string) string {
		return filepath.Join(base, "kubepods.slice", "kubepods-"+qos+".slice", "kubepods-"+qos+"-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	}
	dockerID, containerdID := strings.Repeat("d0c4e1", 10)+"abcd", strings.Repeat("c0ffee", 10)+"1234"
	crioID, podmanID := strings.Repeat("c210a0", 10)+"5678", strings.Repeat("9a1b0d", 10)+"9abc"
	clients := map[string]*client{ // by container id
		dockerID: {cgroup: filepath.Join(base, "system.slice", "docker-"+dockerID+".scope"), runtime: "docker"},
		containerdID: {cgroup: filepath.Join(kubepodsSlice("burstable", containerdPod), "cri-containerd-"+containerdID+".scope"), runtime: "containerd",
			podUID: containerdPod, pod: container.Pod{Name: "web-1", Namespace: "shop"}, podLogsPod: container.Pod{Name: "web-1-in-logs", Namespace: "shop"}},
		crioID: {cgroup: filepath.Join(kubepodsSlice("besteffort", crioPod), "crio-"+crioID+".scope"), runtime: "cri-o",
			podUID: crioPod, pod: container.Pod{Name: "db-0", Namespace: "store"}},
		podmanID: {cgroup: filepath.Join(base, "machine.slice", "libpod-"+podmanID+".scope"), runtime: "podman"},
	}
	// Removed after the actors in them are gone (cleanups run last first).
	t.Cleanup(func() {
		for _, c := range clients {
			for d := c.cgroup; d != mount && strings.HasPrefix(d, base); d = filepath.Dir(d) {
				os.Remove(d)
			}
		}
	})
	runtime := &fakeRuntime{}
	for _, c := range clients {
		if err := os.MkdirAll(c.cgroup, 0o755); err != nil {
			t.Fatal(err)
		}
		if c.podUID != "" {
			runtime.sandboxes = append(runtime.sandboxes, &runtimeapi.PodSandbox{Id: "sandbox-" + c.podUID,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: c.pod.Name, Namespace: c.pod.Namespace, Uid: c.podUID}})
		}
	}
	// As a kubelet keeps a pod's logs: <namespace>_<name>_<uid>. Only the
	// containerd pod's: without a runtime, the CRI-O pod has no name.
	podLogs := filepath.Join(container.PodLogs, "shop_web-1-in-logs_"+containerdPod)
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
	runtimeEndpoint := critest.Serve(t, runtime)
	recording := filepath.Join(t.TempDir(), "containers.rec.gz")
	all := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--metrics", metricsAddr, "--metrics-labels", "container,pod",
		"--runtime-endpoint", runtimeEndpoint, "--record", recording)
	// Each asks a runtime that is not there (no socket), whatever the node runs.
	noRuntime := "unix://" + filepath.Join(t.TempDir(), "absent.sock")
	only := map[string]*tracer{}
	for id := range clients {
		only[id] = startTracer(t, "--netns", fmt.Sprint(ns.inode), "--container", id[:12], "--runtime-endpoint", noRuntime)
	}
	srv := ns.listener(t, "127.0.0.1")
	actors := map[string]*actor{}
	for id, c := range clients {
		a := ns.startActor(t)
		if err := os.WriteFile(filepath.Join(c.cgroup, "cgroup.procs"), []byte(strconv.Itoa(a.pid)), 0); err != nil {
			t.Fatal(err)
		}
		a.port, _ = strconv.Atoi(a.do1("connect " + addr("127.0.0.1", srv.port)))
		srv.do("accept")
		closeClientFirst(a, srv)
		actors[id] = a
	}
	settle()
	m := scrape(t, metricsAddr)
	evs := all.stop()

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
	// Under the matrix's emulation the fake runtime cannot answer within the
	// resolver's 1 s: there the pods' names (not their cgroups) go unchecked.
	named := os.Getenv("TCPTRACE_GUEST_KERNEL") == ""
	for id, c := range clients {
		states := connects(evs, actors[id])
		if len(states) != 1 || states[0].ContainerID != id || states[0].Runtime != c.runtime || states[0].PodUID != c.podUID ||
			named && (states[0].Pod != c.pod.Name || states[0].PodNamespace != c.pod.Namespace) || !strings.HasSuffix(c.cgroup, states[0].Cgroup) {
			t.Errorf("connect() of the client in %s: %+v, want container %s, runtime %s, pod %q (%s/%s, from the runtime)", c.cgroup, states, id,
				c.runtime, c.podUID, c.pod.Namespace, c.pod.Name)
		}
		labels := []string{`container_id="` + id + `"`, `new_state="SYN_SENT"`}
		if named {
			labels = append(labels, `pod="`+c.pod.Name+`"`, `pod_namespace="`+c.pod.Namespace+`"`)
		}
		if got := m.sum("tcptrace_state_changes_total", labels...); got != 1 {
			t.Errorf("tcptrace_state_changes_total{%s} %v, want 1:\n%s", strings.Join(labels, ","), got, m.text)
		}
	}
	if want := "tcptrace: pods named by the CRI runtime fake 1.0 at " + runtimeEndpoint + "\n"; named && !strings.Contains(all.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, all.stderr.String())
	}
	// The recording keeps each cgroup as resolved, pods named by the
	// runtime: a replay, with no runtime and no such cgroups, shows the same.
	if all.golden != "" {
		recording = all.golden + ".rec.gz" // its --record came last
	}
	if stdout, stderr, code := runCommand(t, exec.Command(tracerBinary, "replay", recording, "-o", "json")); code != 0 || stdout != all.stdout.String() {
		t.Errorf("replay: exit %d, %s; the same output: %v", code, stderr, stdout == all.stdout.String())
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
	for id, c := range clients {
		mine := only[id].stop()
		states := connects(mine, actors[id])
		if len(states) != 1 {
			t.Errorf("--container %s: the %s client's connect() not seen", id[:12], c.runtime)
		} else if got := (container.Pod{Name: states[0].Pod, Namespace: states[0].PodNamespace}); got != c.podLogsPod {
			t.Errorf("--container %s, no runtime: pod %+v, want %+v from the pod log directory", id[:12], got, c.podLogsPod)
		}
		if want := "tcptrace: pods named by " + container.PodLogs + " (list the pods of the runtime at " + noRuntime; c.podUID != "" &&
			!strings.Contains(only[id].stderr.String(), want) {
			t.Errorf("--container %s: stderr does not say %q:\n%s", id[:12], want, only[id].stderr.String())
		}
		for _, e := range kernelEvents(mine) {
			if (e.Type == "state" || e.Type == "destroy") && e.ContainerID != id {
				t.Errorf("--container %s let through %+v", id[:12], e)
			}
		}
	}
}

// fakeRuntime serves the CRI's RuntimeService as a container runtime does,
// running these pod sandboxes.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	sandboxes []*runtimeapi.PodSandbox
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: f.sandboxes}, nil
}
