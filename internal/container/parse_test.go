package container

import (
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/events"
)

const (
	id     = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899"
	podID  = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	podIDu = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		path                string
		runtime, id, poduid string
	}{
		{"/system.slice/docker-" + id + ".scope", Docker, id, ""},
		{"/docker/" + id, Docker, id, ""},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope", Containerd, id, podID},
		{"/kubepods.slice/kubepods-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope", Containerd, id, podID},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podIDu + ".slice/crio-" + id + ".scope", CRIO, id, podID},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podIDu + ".slice/docker-" + id + ".scope", Docker, id, podID},
		{"/kubepods/burstable/pod" + podID + "/" + id, CRI, id, podID},
		{"/kubepods/pod" + podID + "/" + id, CRI, id, podID},
		{"/kubepods/burstable/pod" + podID + "/crio-" + id, CRIO, id, podID},
		// A kind node: the kubelet's tree below the node container's.
		{"/system.slice/docker-" + strings.Repeat("a", 64) + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope", Containerd, id, ""},
		{"/kubelet.slice/kubelet-kubepods.slice/kubepods.slice/kubepods-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope", Containerd, id, podID},
		// A static pod's UID: 32 hex digits.
		{"/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + id, CRI, id, "0123456789abcdef0123456789abcdef"},
		{"/machine.slice/libpod-" + id + ".scope", Podman, id, ""},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", Podman, id, ""},
		// podman with its own cgroup namespace nests the processes.
		{"/machine.slice/libpod-" + id + ".scope/container", Podman, id, ""},
		{"/libpod_parent/libpod-" + id, Podman, id, ""},
		// The monitors, not containers.
		{"/machine.slice/libpod-conmon-" + id + ".scope", "", "", ""},
		{"/kubepods.slice/kubepods-pod" + podIDu + ".slice/crio-conmon-" + id + ".scope", "", "", ""},
		// A pod's own cgroup (its pause process sits in a container).
		{"/kubepods.slice/kubepods-pod" + podIDu + ".slice", "", "", ""},
		{"/", "", "", ""},
		{"", "", "", ""},
		{"/user.slice/user-1000.slice/session-2.scope", "", "", ""},
		{"/system.slice/docker.service", "", "", ""},
		{"/system.slice/docker-" + id[:63] + ".scope", "", "", ""},
		{"/system.slice/docker-" + strings.ToUpper(id) + ".scope", "", "", ""},
		// A bare id needs a parent that says whose.
		{"/" + id, "", "", ""},
		{"/elsewhere/" + id, "", "", ""},
	} {
		got := Parse(tc.path)
		want := events.Cgroup{Path: tc.path, Runtime: tc.runtime, ContainerID: tc.id, PodUID: tc.poduid}
		if got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.path, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("/system.slice/docker-" + id + ".scope")
	f.Add("/kubepods/burstable/pod" + podID + "/" + id)
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope")
	f.Add("/machine.slice/libpod-" + id + ".scope/container")
	f.Fuzz(func(t *testing.T, path string) {
		cg := Parse(path)
		if cg.Path != path {
			t.Fatalf("Path %q, want %q", cg.Path, path)
		}
		if (cg.ContainerID == "") != (cg.Runtime == "") {
			t.Fatalf("%q: container id %q with runtime %q", path, cg.ContainerID, cg.Runtime)
		}
		if cg.ContainerID != "" && (!isContainerID(cg.ContainerID) || !strings.Contains(path, cg.ContainerID)) {
			t.Fatalf("%q: container id %q is not 64 hex digits of the path", path, cg.ContainerID)
		}
		if cg.PodUID != "" && (cg.ContainerID == "" || !isPodUID(cg.PodUID)) {
			t.Fatalf("%q: pod uid %q without a container, or malformed", path, cg.PodUID)
		}
	})
}

func TestSelector(t *testing.T) {
	docker := Parse("/system.slice/docker-" + id + ".scope")
	nested := Parse("/machine.slice/libpod-" + id + ".scope/container")
	session := Parse("/user.slice/user-1000.slice/session-2.scope")
	for _, tc := range []struct {
		sel  Selector
		cg   events.Cgroup
		want bool
	}{
		{Selector{}, session, true},
		{Selector{Paths: []string{"/system.slice"}}, docker, true},
		{Selector{Paths: []string{"/system"}}, docker, false}, // a path, not a string prefix
		{Selector{Paths: []string{docker.Path}}, docker, true},
		{Selector{Paths: []string{"/"}}, session, true},
		{Selector{Paths: []string{"/user.slice", "/system.slice"}}, docker, true},
		{Selector{ContainerPrefixes: []string{id[:12]}}, docker, true},
		{Selector{ContainerPrefixes: []string{id[:12]}}, nested, true},
		{Selector{ContainerPrefixes: []string{"ffff", id[:3]}}, docker, true},
		{Selector{ContainerPrefixes: []string{"ffff"}}, docker, false},
		{Selector{ContainerPrefixes: []string{id[:12]}}, session, false},
		{Selector{Paths: []string{"/user.slice"}, ContainerPrefixes: []string{id[:12]}}, docker, false},
		{Selector{Paths: []string{"/machine.slice"}, ContainerPrefixes: []string{id[:12]}}, nested, true},
	} {
		if got := tc.sel.Selects(tc.cg); got != tc.want {
			t.Errorf("%+v selects %s: %v, want %v", tc.sel, tc.cg.Path, got, tc.want)
		}
	}
}
