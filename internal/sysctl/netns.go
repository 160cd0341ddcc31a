//go:build linux

package sysctl

import (
	"fmt"

	"github.com/tcptrace/tcptrace/internal/netns"
)

// ReadNetns reads every sysctl in Known as seen from the network namespace
// behind netnsPath (/proc/PID/ns/net, /run/netns/NAME): /proc/sys/net shows
// the namespace of the reading thread (checked on Linux 6.18), so the read
// runs on a thread moved there. Entering another namespace needs
// CAP_SYS_ADMIN; the caller's own namespace is read with no privileges.
func ReadNetns(netnsPath string) (Snapshot, error) {
	var snap Snapshot
	inode, err := netns.Run(netnsPath, func() error {
		var err error
		snap, err = Read(ProcSys)
		return err
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("read sysctls: %w", err)
	}
	snap.Netns = inode
	return snap, nil
}
