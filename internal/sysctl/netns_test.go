package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/netns"
	"github.com/tcptrace/tcptrace/internal/privtest"
)

func TestForPID(t *testing.T) {
	if got := netns.ForPID(42); got != "/proc/42/ns/net" {
		t.Errorf("netns.ForPID(42) = %q", got)
	}
}

func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Reading one's own namespace needs no privileges and matches /proc/sys.
func TestReadNetnsOwn(t *testing.T) {
	want, err := Read(ProcSys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadNetns("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if ino := netnsInode(t, "/proc/self/ns/net"); got.Netns != ino {
		t.Errorf("Netns = %d, want %d", got.Netns, ino)
	}
	for i := range want.Values {
		if got.Values[i] != want.Values[i] {
			t.Errorf("ReadNetns: %+v, Read: %+v", got.Values[i], want.Values[i])
		}
	}
}

func TestReadNetnsBadFile(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{"/proc/self/ns/uts", netns.ErrNotNetns}, // a namespace, of another kind
		{regular, netns.ErrNotNetns},
		{t.TempDir(), netns.ErrNotNetns},
		{"/nonexistent/netns", fs.ErrNotExist},
	}
	for _, tt := range tests {
		if _, err := ReadNetns(tt.path); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("ReadNetns(%s) = %v, want %v naming the path", tt.path, err, tt.want)
		}
	}
}

func TestFindNetns(t *testing.T) {
	own := netnsInode(t, "/proc/self/ns/net")
	path, err := netns.Find(own)
	if err != nil {
		t.Fatal(err)
	}
	if got := netnsInode(t, path); got != own {
		t.Errorf("netns.Find(%d) = %s, whose inode is %d", own, path, got)
	}
	if path, err := netns.Find(1); !errors.Is(err, netns.ErrNotFound) {
		t.Errorf("netns.Find(1) = %q, %v; want netns.ErrNotFound", path, err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	privtest.RequireRoot(t)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func intValue(t *testing.T, snap Snapshot, name Name) int64 {
	t.Helper()
	v, ok := snap.Lookup(name)
	if !ok {
		t.Fatalf("%s missing from the snapshot", name)
	}
	n, err := v.Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReadNetnsOther changes sysctls in a throwaway namespace and reads them
// from outside, checking that the host's values and every thread's namespace
// are left as they were.
func TestReadNetnsOther(t *testing.T) {
	requireRoot(t)
	const finTimeout, maxTWBuckets = 7, 3
	host, err := Read(ProcSys)
	if err != nil {
		t.Fatal(err)
	}
	if intValue(t, host, "net.ipv4.tcp_fin_timeout") == finTimeout || intValue(t, host, "net.ipv4.tcp_max_tw_buckets") == maxTWBuckets {
		t.Fatalf("the host already has tcp_fin_timeout %d or tcp_max_tw_buckets %d: the test could not tell the namespaces apart", finTimeout, maxTWBuckets)
	}

	name := fmt.Sprintf("tcptrace-sysctl-test-%d", os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { run(t, "ip", "netns", "del", name) })
	run(t, "ip", "netns", "exec", name, "sysctl", "-q", "-w",
		fmt.Sprintf("net.ipv4.tcp_fin_timeout=%d", finTimeout),
		fmt.Sprintf("net.ipv4.tcp_max_tw_buckets=%d", maxTWBuckets))
	named := "/run/netns/" + name
	namedIno := netnsInode(t, named)

	// A process inside, to reach the namespace through ForPID too. ip netns
	// exec enters the namespace and then execs sleep, under the same pid.
	sleeper := exec.Command("ip", "netns", "exec", name, "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	inside := netns.ForPID(sleeper.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); netnsInode(t, inside) != namedIno; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never entered network namespace %s", inside, name)
		}
	}

	// Concurrent reads, so that many threads switch namespaces and back.
	paths := []string{named, inside}
	snaps := make([]Snapshot, 16)
	errs := make([]error, len(snaps))
	var wg sync.WaitGroup
	for i := range snaps {
		wg.Go(func() { snaps[i], errs[i] = ReadNetns(paths[i%len(paths)]) })
	}
	wg.Wait()
	for i, snap := range snaps {
		path := paths[i%len(paths)]
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if snap.Netns != namedIno {
			t.Errorf("ReadNetns(%s).Netns = %d, want %d", path, snap.Netns, namedIno)
		}
		if got := intValue(t, snap, "net.ipv4.tcp_fin_timeout"); got != finTimeout {
			t.Errorf("ReadNetns(%s): tcp_fin_timeout = %d, want %d", path, got, finTimeout)
		}
		if got := intValue(t, snap, "net.ipv4.tcp_max_tw_buckets"); got != maxTWBuckets {
			t.Errorf("ReadNetns(%s): tcp_max_tw_buckets = %d, want %d", path, got, maxTWBuckets)
		}
	}

	after, err := Read(ProcSys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range host.Values {
		if after.Values[i] != host.Values[i] {
			t.Errorf("host changed: before %+v, after %+v", host.Values[i], after.Values[i])
		}
	}
	hostNetns := netnsInode(t, "/proc/self/ns/net")
	threads, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, thread := range threads {
		if got := netnsInode(t, thread); got != hostNetns {
			t.Errorf("%s is in network namespace %d, want the host's %d", thread, got, hostNetns)
		}
	}

	if got, err := netns.Find(namedIno); err != nil || got != named {
		t.Errorf("FindNetns = %q, %v; want %s", got, err, named)
	}
}
