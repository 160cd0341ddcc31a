// Package container tells from a cgroup v2 path which container and pod a
// process ran in, and (on Linux) resolves the kernel's cgroup ids to those
// paths. Parse is pure: it reads only the path.
package container

import (
	"slices"
	"strings"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Runtimes, as events.Cgroup.Runtime names them.
const (
	Docker     = "docker"
	Containerd = "containerd"
	CRIO       = "cri-o"
	Podman     = "podman"
	// CRI is a kubelet's container whose cgroup does not name the runtime
	// (the cgroupfs driver with containerd: /kubepods/<qos>/pod<uid>/<id>).
	CRI = "cri"
)

// scopePrefixes are the runtimes' names for a container's own cgroup
// (systemd scopes, or the same names without .scope under cgroupfs).
// A runtime's conmon cgroup (crio-conmon-, libpod-conmon-) holds the
// monitor, not the container: its id is not 64 hex digits after the prefix.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"docker-", Docker},
	{"cri-containerd-", Containerd},
	{"crio-", CRIO},
	{"libpod-", Podman},
}

// Parse reads a cgroup v2 path (below the cgroup2 mount) into the container
// it names, if any: the deepest directory that looks like a container's own
// cgroup (a container may nest cgroups of its own below it), and the pod of
// a kubelet's cgroup tree above it.
func Parse(path string) events.Cgroup {
	cg := events.Cgroup{Path: path}
	dirs := strings.Split(strings.Trim(path, "/"), "/")
	at := -1
	for i := len(dirs) - 1; i >= 0 && at < 0; i-- {
		name := strings.TrimSuffix(dirs[i], ".scope")
		for _, p := range scopePrefixes {
			if id, ok := strings.CutPrefix(name, p.prefix); ok && isContainerID(id) {
				cg.ContainerID, cg.Runtime, at = id, p.runtime, i
				break
			}
		}
		if at < 0 && isContainerID(name) && i > 0 {
			// A bare id: docker's cgroupfs tree, and CRI runtimes' under a
			// kubelet's pod.
			switch parent := dirs[i-1]; {
			case parent == "docker":
				cg.ContainerID, cg.Runtime, at = name, Docker, i
			case podUID(parent) != "":
				cg.ContainerID, cg.Runtime, at = name, CRI, i
			}
		}
	}
	if at < 0 {
		return cg
	}
	for i := at - 1; i >= 0; i-- {
		if uid := podUID(dirs[i]); uid != "" && underKubepods(dirs[:i]) {
			cg.PodUID = uid
			break
		}
	}
	return cg
}

// podUID reads a kubelet's pod cgroup name: pod<uid> (cgroupfs driver) or
// kubepods[-<qos>]-pod<uid with _ for ->.slice (systemd driver). "" if it
// is none.
func podUID(dir string) string {
	name, slice := strings.CutSuffix(dir, ".slice")
	if slice {
		i := strings.LastIndex(name, "-pod")
		if i < 0 || !strings.HasPrefix(name, "kubepods") {
			return ""
		}
		name = strings.ReplaceAll(name[i+len("-pod"):], "_", "-")
	} else if name, _ = strings.CutPrefix(name, "pod"); name == dir {
		return ""
	}
	if !isPodUID(name) {
		return ""
	}
	return name
}

// underKubepods tells whether a kubelet made these cgroups: the pods' root
// is kubepods (cgroupfs) or kubepods.slice (systemd), below any prefix the
// node gives it.
func underKubepods(dirs []string) bool {
	for _, d := range dirs {
		if d == "kubepods" || d == "kubepods.slice" {
			return true
		}
	}
	return false
}

// isContainerID tells whether s is a container id as runtimes write it in
// cgroup names: 64 lowercase hex digits.
func isContainerID(s string) bool {
	return len(s) == 64 && isLowerHex(s, false)
}

// isPodUID tells whether s is a pod's UID: a UUID (36 characters), or the
// 32 hex digits kubelet gives static pods.
func isPodUID(s string) bool {
	switch len(s) {
	case 32:
		return isLowerHex(s, false)
	case 36:
		return isLowerHex(s, true) && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-'
	}
	return false
}

func isLowerHex(s string, dashes bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (!dashes || c != '-') {
			return false
		}
	}
	return true
}

// Selector picks cgroups by path (a cgroup and those below it) and by the
// id of the container they name (a prefix of it). Both given, both must
// hold; the values of one are alternatives.
type Selector struct {
	Paths             []string // below the cgroup2 mount, each starting with "/"
	ContainerPrefixes []string
}

// Empty tells whether the selector picks every cgroup.
func (s Selector) Empty() bool { return len(s.Paths) == 0 && len(s.ContainerPrefixes) == 0 }

// Selects tells whether the selector picks cg.
func (s Selector) Selects(cg events.Cgroup) bool {
	if len(s.Paths) > 0 && !slices.ContainsFunc(s.Paths, func(p string) bool {
		return p == "/" || cg.Path == p || strings.HasPrefix(cg.Path, p+"/")
	}) {
		return false
	}
	if len(s.ContainerPrefixes) > 0 && (cg.ContainerID == "" || !slices.ContainsFunc(s.ContainerPrefixes, func(p string) bool {
		return strings.HasPrefix(cg.ContainerID, p)
	})) {
		return false
	}
	return true
}
