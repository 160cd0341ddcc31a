package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/events"
)

// PodLogs is where a kubelet makes one directory per pod,
// <namespace>_<name>_<uid>: the one place on a node that names a pod by its
// UID without asking the API server or the runtime.
const PodLogs = "/var/log/pods"

// Mount returns where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup,
// or /sys/fs/cgroup/unified on a host with the hybrid v1/v2 layout.
func Mount() (string, error) {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// Walk calls fn for every cgroup below mount (and mount itself), with its
// path below mount ("/" for the root) and its id: the kernel's cgroup v2 id
// is the directory's inode number on cgroup2fs. Cgroups removed while it
// walks are skipped.
func Walk(mount string, fn func(path string, id uint64)) error {
	return filepath.WalkDir(mount, func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no inode number", dir)
		}
		fn("/"+strings.TrimPrefix(strings.TrimPrefix(dir, mount), "/"), st.Ino)
		return nil
	})
}

// Pods reads the pods a kubelet keeps logs for in dir (PodLogs), by UID;
// none if there is no such directory.
func Pods(dir string) (map[string]Pod, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod log directories: %w", err)
	}
	pods := map[string]Pod{}
	for _, e := range entries {
		// Namespaces and pod names are DNS labels and subdomains: no "_".
		parts := strings.Split(e.Name(), "_")
		if len(parts) == 3 && e.IsDir() {
			pods[parts[2]] = Pod{Name: parts[1], Namespace: parts[0]}
		}
	}
	return pods, nil
}

// rewalkEvery is how often a cgroup id not found sends the resolver over
// the tree again, and a pod UID not known has it read the pods again: a
// busy node makes containers all the time, and every socket of a cgroup
// made after the last walk misses until the next.
const rewalkEvery = time.Second

// criBackoff is how long a runtime that did not answer is left alone, the
// pods named by the pod log directories meanwhile: each question to a
// runtime that hangs holds the pipeline for criTimeout.
const criBackoff = 30 * time.Second

// PodSources are where a node names its pods.
type PodSources struct {
	// Runtimes are asked in turn, as crictl tries its default endpoints:
	// the first that answers names the pods. A node's containerd may run
	// without its CRI plugin (Docker's does), next to cri-dockerd.
	Runtimes []*CRIClient
	Logs     string // a kubelet's pod log directories (PodLogs), when no runtime answers
	// NamedBy, if set, is told which source names the pods, whenever it
	// changes: an event does not say.
	NamedBy func(source string)
}

// Resolver turns the kernel's cgroup ids into cgroups, walking the tree
// once when first asked and again (at most every rewalkEvery) on a miss.
// Not safe for concurrent use.
type Resolver struct {
	mount      string
	paths      map[uint64]string
	walked     time.Time
	resolved   map[uint64]*events.Cgroup
	podSources PodSources
	pods       map[string]Pod
	podsRead   time.Time
	namedBy    string                   // the source of the pods last read
	criRetry   map[*CRIClient]time.Time // a runtime that did not answer is not asked before then
	onResolved func(id uint64, cg *events.Cgroup)
}

// NewResolver resolves the ids of the cgroups below mount, naming pods from
// pods; onResolved, if set, sees each id the first time it resolves.
func NewResolver(mount string, pods PodSources, onResolved func(id uint64, cg *events.Cgroup)) *Resolver {
	return &Resolver{mount: mount, podSources: pods, resolved: map[uint64]*events.Cgroup{}, criRetry: map[*CRIClient]time.Time{},
		onResolved: onResolved}
}

// Resolve returns the cgroup with this id, nil if it cannot be found (it
// was removed before a walk saw it). Every call for one id returns the
// same value.
func (r *Resolver) Resolve(id uint64) *events.Cgroup {
	if cg, ok := r.resolved[id]; ok {
		return cg
	}
	path, ok := r.paths[id]
	if !ok && time.Since(r.walked) >= rewalkEvery {
		r.rewalk()
		path, ok = r.paths[id]
	}
	if !ok {
		return nil
	}
	cg := Parse(path)
	if cg.PodUID != "" {
		pod, ok := r.pods[cg.PodUID]
		if !ok && time.Since(r.podsRead) >= rewalkEvery {
			r.readPods()
			pod = r.pods[cg.PodUID]
		}
		cg.Pod, cg.PodNamespace = pod.Name, pod.Namespace
	}
	r.resolved[id] = &cg
	if r.onResolved != nil {
		r.onResolved(id, &cg)
	}
	return &cg
}

// rewalk reads the tree again. If it cannot be read, it stays as it was:
// attribution is best effort, and the events go on without it.
func (r *Resolver) rewalk() {
	r.walked = time.Now()
	paths := map[uint64]string{}
	if err := Walk(r.mount, func(path string, id uint64) { paths[id] = path }); err == nil {
		r.paths = paths
	}
}

// readPods reads the pods again: from a runtime, which knows them as
// soon as they are made, or if none answers from the pod log directories,
// which the kubelet makes when it starts a container.
func (r *Resolver) readPods() {
	r.podsRead = time.Now()
	var unanswered []error
	for _, rt := range r.podSources.Runtimes {
		if r.podsRead.Before(r.criRetry[rt]) {
			continue
		}
		pods, err := rt.Pods(context.Background())
		if err == nil {
			r.pods = pods
			r.tell(rt.Endpoint, func() string { return "the CRI runtime " + rt.Describe(context.Background()) })
			return
		}
		r.criRetry[rt] = time.Now().Add(criBackoff)
		unanswered = append(unanswered, err)
	}
	if pods, err := Pods(r.podSources.Logs); err == nil {
		r.pods = pods
	}
	r.tell(r.podSources.Logs, func() string {
		if len(unanswered) == 0 {
			return r.podSources.Logs + " (no CRI runtime to ask)"
		}
		return fmt.Sprintf("%s (%v; asked again in %v)", r.podSources.Logs, errors.Join(unanswered...), criBackoff)
	})
}

// tell tells NamedBy the source of pods, described, if it is another than
// before. Sources are their endpoint or directory.
func (r *Resolver) tell(source string, describe func() string) {
	if source != r.namedBy && r.podSources.NamedBy != nil {
		r.podSources.NamedBy(describe())
	}
	r.namedBy = source
}

// Select returns the ids of the cgroups below mount that s picks.
func Select(mount string, s Selector) ([]uint64, error) {
	var ids []uint64
	err := Walk(mount, func(path string, id uint64) {
		if s.Selects(Parse(path)) {
			ids = append(ids, id)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("walk the cgroup tree: %w", err)
	}
	return ids, nil
}
