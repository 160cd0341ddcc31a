//go:build linux

// Package netns finds network namespaces and runs code inside one, on a
// thread of its own, without moving the rest of the process.
package netns

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotNetns means a file given as a network namespace is something else.
	ErrNotNetns = errors.New("not a network namespace file")
	// ErrNotFound means Find found no file for a namespace inode.
	ErrNotFound = errors.New("no process or /run/netns file is in this network namespace")
)

// nsGetNsType is the NS_GET_NSTYPE ioctl (_IO(0xb7, 0x3) in linux/nsfs.h,
// Linux 4.11+), which golang.org/x/sys/unix does not define.
const nsGetNsType = 0xb703

// ForPID returns the file of process pid's network namespace.
func ForPID(pid int) string {
	return fmt.Sprintf("/proc/%d/ns/net", pid)
}

// candidates are the files that can name a network namespace: /run/netns
// entries (as `ip netns add` makes) and every process's /proc/PID/ns/net.
func candidates() []string {
	// Glob fails only on a malformed pattern, and these are constant.
	named, _ := filepath.Glob("/run/netns/*")
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	return append(named, procs...)
}

func ownDev() (uint64, error) {
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		return 0, fmt.Errorf("stat own network namespace: %w", err)
	}
	return own.Dev, nil
}

// Find returns a file that refers to the network namespace with this inode.
// Without root only the caller's own processes can be looked at.
func Find(inode uint64) (string, error) {
	dev, err := ownDev()
	if err != nil {
		return "", err
	}
	for _, path := range candidates() {
		var st unix.Stat_t
		// Every namespace lives on the one nsfs device, so comparing it too
		// rules out an unrelated file that happens to have this inode number.
		// Files that vanish or deny access while we look are skipped.
		if unix.Stat(path, &st) == nil && st.Dev == dev && st.Ino == inode {
			return path, nil
		}
	}
	return "", fmt.Errorf("network namespace %d: %w", inode, ErrNotFound)
}

// All returns one file for each network namespace that a process or a
// /run/netns entry holds, by inode.
func All() (map[uint64]string, error) {
	dev, err := ownDev()
	if err != nil {
		return nil, err
	}
	found := map[uint64]string{}
	for _, path := range candidates() {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && st.Dev == dev {
			if _, ok := found[st.Ino]; !ok {
				found[st.Ino] = path
			}
		}
	}
	return found, nil
}

// Paths returns the file of the network namespace with inode only, or with
// only 0 one file for each namespace there is, sorted.
func Paths(only uint32) ([]string, error) {
	if only != 0 {
		path, err := Find(uint64(only))
		if err != nil {
			return nil, err
		}
		return []string{path}, nil
	}
	all, err := All()
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Values(all)), nil
}

// Inode returns the inode of the network namespace behind path; ErrNotNetns
// when path is another kind of file.
func Inode(path string) (uint64, error) {
	fd, st, err := open(path)
	if err != nil {
		return 0, err
	}
	unix.Close(fd)
	return st.Ino, nil
}

// Run calls f on a thread moved into the network namespace behind path
// (/proc/PID/ns/net, /run/netns/NAME), and returns its inode. Entering
// another namespace needs CAP_SYS_ADMIN; in the caller's own, f just runs.
func Run(path string, f func() error) (uint64, error) {
	target, targetStat, err := open(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	// A goroutine of its own, because its thread may have to die with it.
	go func() { done <- runIn(target, targetStat, f) }()
	if err := <-done; err != nil {
		return 0, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return targetStat.Ino, nil
}

// open opens a namespace file and checks that it is a network namespace.
func open(path string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, fmt.Errorf("open %s: %w", path, err)
	}
	nsType, err := unix.IoctlRetInt(fd, nsGetNsType)
	if err != nil || nsType != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, st, fmt.Errorf("%s: %w", path, ErrNotNetns)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, fmt.Errorf("stat %s: %w", path, err)
	}
	return fd, st, nil
}

// runIn moves its own thread into target, calls f, and moves back. The
// thread stays locked to the goroutine, and if it cannot return it stays
// locked, so the runtime ends the thread with the goroutine instead of
// running other goroutines in the wrong namespace. (A locked thread is also
// never the one the runtime clones new threads from.) What depends on the
// thread's namespace: /proc/sys/net, /proc/thread-self/net, new sockets, and
// BPF iterators opened there.
func runIn(target int, targetStat unix.Stat_t, f func() error) error {
	runtime.LockOSThread()
	stranded := false
	defer func() {
		if !stranded {
			runtime.UnlockOSThread()
		}
	}()

	// Opened before switching: the way back.
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(own)
	var ownStat unix.Stat_t
	if err := unix.Fstat(own, &ownStat); err != nil {
		return fmt.Errorf("stat own network namespace: %w", err)
	}
	if ownStat.Dev == targetStat.Dev && ownStat.Ino == targetStat.Ino {
		return f() // already there: no switch, so no privileges needed
	}
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter: %w", err)
	}
	fErr := f()
	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		stranded = true
		return fmt.Errorf("return to own network namespace: %w", err)
	}
	return fErr
}
