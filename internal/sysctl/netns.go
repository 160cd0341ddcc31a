package sysctl

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotNetns means a file given as a network namespace is something else.
	ErrNotNetns = errors.New("not a network namespace file")
	// ErrNetnsNotFound means FindNetns found no file for a namespace inode.
	ErrNetnsNotFound = errors.New("no process or /run/netns file is in this network namespace")
)

// nsGetNsType is the NS_GET_NSTYPE ioctl (_IO(0xb7, 0x3) in linux/nsfs.h,
// Linux 4.11+), which golang.org/x/sys/unix does not define.
const nsGetNsType = 0xb703

// ForPID returns the file of process pid's network namespace.
func ForPID(pid int) string {
	return fmt.Sprintf("/proc/%d/ns/net", pid)
}

// FindNetns returns a file that refers to the network namespace with this
// inode: a /run/netns entry (as `ip netns add` makes) or else
// /proc/PID/ns/net of a process inside it. Without root only the caller's
// own processes can be looked at.
func FindNetns(inode uint64) (string, error) {
	var own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		return "", fmt.Errorf("stat own network namespace: %w", err)
	}
	// Glob fails only on a malformed pattern, and these are constant.
	named, _ := filepath.Glob("/run/netns/*")
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, path := range append(named, procs...) {
		var st unix.Stat_t
		// Every namespace lives on the one nsfs device, so comparing it too
		// rules out an unrelated file that happens to have this inode number.
		// Files that vanish or deny access while we look are skipped.
		if unix.Stat(path, &st) == nil && st.Dev == own.Dev && st.Ino == inode {
			return path, nil
		}
	}
	return "", fmt.Errorf("network namespace %d: %w", inode, ErrNetnsNotFound)
}

// ReadNetns reads every sysctl in Known as seen from the network namespace
// behind netnsPath (/proc/PID/ns/net, /run/netns/NAME). Entering another
// namespace needs CAP_SYS_ADMIN; the caller's own namespace is read as it
// is, with no privileges.
func ReadNetns(netnsPath string) (Snapshot, error) {
	target, targetStat, err := openNetns(netnsPath)
	if err != nil {
		return Snapshot{}, err
	}
	defer unix.Close(target)

	type result struct {
		snap Snapshot
		err  error
	}
	done := make(chan result, 1)
	// A goroutine of its own, because its thread may have to die with it.
	go func() {
		snap, err := readFromNetns(target, targetStat)
		done <- result{snap, err}
	}()
	r := <-done
	if r.err != nil {
		return Snapshot{}, fmt.Errorf("read sysctls of network namespace %s: %w", netnsPath, r.err)
	}
	r.snap.Netns = targetStat.Ino
	return r.snap, nil
}

// openNetns opens a namespace file and checks that it is a network namespace.
func openNetns(path string) (int, unix.Stat_t, error) {
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

// readFromNetns reads the sysctls from inside the namespace target. It
// relies on /proc/sys/net showing the namespace of the reading thread (not of
// the process, as /proc/net does; checked on Linux 6.18), so it moves only
// its own thread there and back. It must run on a goroutine of its own: the
// thread stays locked to it, and if it cannot return to its namespace it
// stays locked, so the runtime ends the thread with the goroutine instead of
// running other goroutines in the wrong namespace. (A locked thread is also
// never the one the runtime clones new threads from.)
func readFromNetns(target int, targetStat unix.Stat_t) (Snapshot, error) {
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
		return Snapshot{}, fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(own)
	var ownStat unix.Stat_t
	if err := unix.Fstat(own, &ownStat); err != nil {
		return Snapshot{}, fmt.Errorf("stat own network namespace: %w", err)
	}
	if ownStat.Dev == targetStat.Dev && ownStat.Ino == targetStat.Ino {
		// Already there: no switch, so no privileges needed.
		return Read(ProcSys)
	}

	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return Snapshot{}, fmt.Errorf("enter network namespace: %w", err)
	}
	snap, readErr := Read(ProcSys)
	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		stranded = true
		return Snapshot{}, fmt.Errorf("return to own network namespace: %w", err)
	}
	return snap, readErr
}
