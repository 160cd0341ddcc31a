package container

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

func inode(t *testing.T, dir string) uint64 {
	t.Helper()
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

// Any directory tree stands in for cgroup2fs: ids are inode numbers there.
func TestResolver(t *testing.T) {
	mount, logs := t.TempDir(), t.TempDir()
	pod := "kubepods.slice/kubepods-pod" + podIDu + ".slice/cri-containerd-" + id + ".scope"
	if err := os.MkdirAll(filepath.Join(mount, pod), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(logs, "shop_cart-7d9f_"+podID), 0o755); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	r := NewResolver(mount, PodSources{Logs: logs}, func(id uint64, _ *events.Cgroup) { seen = append(seen, id) })

	podCgroup := inode(t, filepath.Join(mount, pod))
	cg := r.Resolve(podCgroup)
	want := events.Cgroup{Path: "/" + pod, ContainerID: id, Runtime: Containerd, PodUID: podID, Pod: "cart-7d9f", PodNamespace: "shop"}
	if cg == nil || *cg != want {
		t.Fatalf("Resolve = %+v, want %+v", cg, want)
	}
	if again := r.Resolve(podCgroup); again != cg {
		t.Errorf("a second Resolve gave another value: %p, want %p", again, cg)
	}
	if root := r.Resolve(inode(t, mount)); root == nil || root.Path != "/" {
		t.Errorf("the root resolved to %+v, want path /", root)
	}

	// Made after the walk: not found until the next one is due.
	docker := filepath.Join(mount, "system.slice", "docker-"+id+".scope")
	if err := os.MkdirAll(docker, 0o755); err != nil {
		t.Fatal(err)
	}
	if cg := r.Resolve(inode(t, docker)); cg != nil {
		t.Errorf("resolved %+v before the next walk was due", cg)
	}
	r.walked = time.Now().Add(-rewalkEvery)
	if cg := r.Resolve(inode(t, docker)); cg == nil || cg.Runtime != Docker || cg.ContainerID != id {
		t.Errorf("after the next walk: %+v, want docker %s", cg, id)
	}
	if len(seen) != 3 {
		t.Errorf("onResolved saw %d ids, want 3 (each once)", len(seen))
	}
}

func TestPodsWithoutKubelet(t *testing.T) {
	pods, err := Pods(filepath.Join(t.TempDir(), "absent"))
	if err != nil || len(pods) != 0 {
		t.Errorf("Pods of a missing directory = %v, %v; want none, no error", pods, err)
	}
}
