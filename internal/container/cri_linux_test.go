package container

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tcptrace/tcptrace/internal/container/critest"
	"github.com/tcptrace/tcptrace/internal/events"
)

// fakeRuntime is a CRI runtime that runs the pods it is given.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	pods map[string]Pod // by UID
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	resp := &runtimeapi.ListPodSandboxResponse{}
	for uid, p := range f.pods {
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{Id: "sandbox-" + uid,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: uid}})
	}
	return resp, nil
}

// podTree makes, below a stand-in cgroup2 mount, a containerd container's
// cgroup in each pod, and returns the mount and the cgroups' ids by pod UID.
func podTree(t *testing.T, uids ...string) (string, map[string]uint64) {
	t.Helper()
	mount := t.TempDir()
	ids := map[string]uint64{}
	for _, uid := range uids {
		dir := filepath.Join(mount, "kubepods.slice", "kubepods-pod"+strings.ReplaceAll(uid, "-", "_")+".slice", "cri-containerd-"+id+".scope")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ids[uid] = inode(t, dir)
	}
	return mount, ids
}

// podLogs makes a kubelet's pod log directories naming these pods.
func podLogs(t *testing.T, pods map[string]Pod) string {
	t.Helper()
	dir := t.TempDir()
	for uid, p := range pods {
		if err := os.Mkdir(filepath.Join(dir, p.Namespace+"_"+p.Name+"_"+uid), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const otherPodID = "9a8b7c6d-5e4f-4031-8293-a4b5c6d7e8f9"

func pod(cg *events.Cgroup) Pod {
	if cg == nil {
		return Pod{Name: "(not resolved)"}
	}
	return Pod{Name: cg.Pod, Namespace: cg.PodNamespace}
}

// A runtime that answers names the pods, not the pod logs (which name
// them otherwise here, to tell which answered); a pod made after the
// runtime was asked is named by asking again, once rewalkEvery has passed.
func TestResolverAsksTheRuntime(t *testing.T) {
	rt := &fakeRuntime{pods: map[string]Pod{podID: {Name: "cart-0", Namespace: "shop"}}}
	var runtimes []*CRIClient
	for _, endpoint := range []string{critest.Serve(t, &noCRI{}), critest.Serve(t, rt)} {
		cri, err := DialCRI(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		defer cri.Close()
		runtimes = append(runtimes, cri)
	}
	mount, ids := podTree(t, podID, otherPodID)
	logs := podLogs(t, map[string]Pod{podID: {Name: "stale", Namespace: "logs"}, otherPodID: {Name: "stale", Namespace: "logs"}})
	var told []string
	r := NewResolver(mount, PodSources{Runtimes: runtimes, Logs: logs, NamedBy: func(s string) { told = append(told, s) }}, nil)

	if got, want := pod(r.Resolve(ids[podID])), rt.pods[podID]; got != want {
		t.Errorf("pod %s: %+v, want %+v from the runtime", podID, got, want)
	}
	rt.pods[otherPodID] = Pod{Name: "web-1", Namespace: "front"}
	if got := pod(r.Resolve(ids[otherPodID])); got != (Pod{}) {
		t.Errorf("pod %s before the runtime could be asked again: %+v, want none", otherPodID, got)
	}
	delete(r.resolved, ids[otherPodID])
	r.podsRead = time.Now().Add(-rewalkEvery)
	if got, want := pod(r.Resolve(ids[otherPodID])), rt.pods[otherPodID]; got != want {
		t.Errorf("pod %s, asked again: %+v, want %+v", otherPodID, got, want)
	}
	if want := []string{"the CRI runtime fake 1.0 at " + runtimes[1].Endpoint}; !slices.Equal(told, want) {
		t.Errorf("NamedBy was told %q, want %q", told, want)
	}
}

// noCRI is a containerd without its CRI plugin, as Docker runs it.
type noCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

// With no runtime at the endpoint (its socket absent), the pod logs name
// the pods.
func TestResolverWithoutRuntime(t *testing.T) {
	cri, err := DialCRI("unix://" + filepath.Join(t.TempDir(), "absent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer cri.Close()
	mount, ids := podTree(t, podID)
	want := Pod{Name: "cart-0", Namespace: "shop"}
	logs := podLogs(t, map[string]Pod{podID: want})
	var told []string
	r := NewResolver(mount, PodSources{Runtimes: []*CRIClient{cri}, Logs: logs, NamedBy: func(s string) { told = append(told, s) }}, nil)
	if got := pod(r.Resolve(ids[podID])); got != want {
		t.Errorf("pod %s: %+v, want %+v from the pod logs", podID, got, want)
	}
	if len(told) != 1 || !strings.HasPrefix(told[0], logs+" (") || !strings.Contains(told[0], "absent.sock") {
		t.Errorf("NamedBy was told %q, want once the pod logs, and why not the runtime at %s", told, cri.Endpoint)
	}
}

// hungRuntime is a runtime that takes the question and never answers it,
// as a deadlocked one would.
type hungRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (hungRuntime) ListPodSandbox(ctx context.Context, _ *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	<-ctx.Done() // the question given up, or the server stopped
	return nil, ctx.Err()
}

// serveSilence takes connections on a unix socket and never says a word,
// not even gRPC's preface; it returns its endpoint.
func serveSilence(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "silent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	return "unix://" + sock
}

// A runtime that never answers costs one criTimeout; the pod logs name
// the pods, and until criBackoff has passed the runtime is not asked
// again: resolving goes on at once.
func TestResolverRuntimeHangs(t *testing.T) {
	for name, serve := range map[string]func(*testing.T) string{
		"runtime never answers": func(t *testing.T) string { return critest.Serve(t, hungRuntime{}) },
		"socket never speaks":   serveSilence,
	} {
		t.Run(name, func(t *testing.T) { testRuntimeHangs(t, serve(t)) })
	}
}

func testRuntimeHangs(t *testing.T, endpoint string) {
	cri, err := DialCRI(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cri.Close()
	mount, ids := podTree(t, podID, otherPodID)
	pods := map[string]Pod{podID: {Name: "cart-0", Namespace: "shop"}, otherPodID: {Name: "web-1", Namespace: "front"}}
	logs := podLogs(t, map[string]Pod{podID: pods[podID]})
	r := NewResolver(mount, PodSources{Runtimes: []*CRIClient{cri}, Logs: logs}, nil)

	start := time.Now()
	got := pod(r.Resolve(ids[podID]))
	if took := time.Since(start); took < criTimeout || took > criTimeout+time.Second {
		t.Errorf("the first pod took %v to resolve, want about criTimeout (%v)", took, criTimeout)
	}
	if got != pods[podID] {
		t.Errorf("pod %s: %+v, want %+v from the pod logs", podID, got, pods[podID])
	}
	// A pod the logs did not name yet: the pods are read again.
	if err := os.Mkdir(filepath.Join(logs, "front_web-1_"+otherPodID), 0o755); err != nil {
		t.Fatal(err)
	}
	r.podsRead = time.Now().Add(-rewalkEvery)
	start = time.Now()
	got = pod(r.Resolve(ids[otherPodID]))
	if took := time.Since(start); took > criTimeout/4 {
		t.Errorf("the second pod took %v to resolve: the hung runtime was asked again within criBackoff", took)
	}
	if got != pods[otherPodID] {
		t.Errorf("pod %s: %+v, want %+v from the pod logs", otherPodID, got, pods[otherPodID])
	}
}

func TestRuntimeSocket(t *testing.T) {
	for endpoint, want := range map[string]string{"unix:///run/crio/crio.sock": "/run/crio/crio.sock", "/run/x.sock": "/run/x.sock",
		"tcp://localhost:1234": "", "unix://run/x.sock": "", "x.sock": ""} {
		got, err := RuntimeSocket(endpoint)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("RuntimeSocket(%q) = %q, %v; want %q", endpoint, got, err, want)
		}
	}
}

// Only sockets are runtimes: a file or nothing at the path is none.
func TestFindRuntimeEndpoints(t *testing.T) {
	dir := t.TempDir()
	file, sock := filepath.Join(dir, "file.sock"), filepath.Join(dir, "runtime.sock")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	defaults := RuntimeEndpoints
	t.Cleanup(func() { RuntimeEndpoints = defaults })
	RuntimeEndpoints = []string{"unix://" + filepath.Join(dir, "absent.sock"), "unix://" + file, "unix://" + sock}
	if got, want := FindRuntimeEndpoints(), RuntimeEndpoints[2:]; !slices.Equal(got, want) {
		t.Errorf("FindRuntimeEndpoints() = %q, want %q", got, want)
	}
}
