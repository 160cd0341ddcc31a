package probe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Capability is one capability a full trace needs, and what for.
type Capability struct {
	Name string // as capabilities(7) names it
	bit  uint
	Why  string
}

// Capabilities are what a full trace needs and no more: what a container
// or a service unit should grant tcptrace (deploy/ does). Root without
// them traces less or not at all; no other capability is used.
var Capabilities = []Capability{
	{"CAP_BPF", unix.CAP_BPF, "load the BPF programs and maps, read the ring buffer"},
	{"CAP_PERFMON", unix.CAP_PERFMON, "attach the tracing programs and iterators"},
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, "enter other network namespaces: the sockets open there at start, their owners, their sysctls"},
	{"CAP_SYS_PTRACE", unix.CAP_SYS_PTRACE, "open other users' processes' network namespaces (/proc/PID/ns/net)"},
	{"CAP_SYSLOG", unix.CAP_SYSLOG, "see the kernel's function addresses (kptr_restrict): the timer hooks (keepalive, retransmission, TIME_WAIT)"},
}

// HeldCapabilities tells, for each of Capabilities by name, whether the
// process has it (effective).
func HeldCapabilities() (map[string]bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	held := map[string]bool{}
	for _, c := range Capabilities {
		held[c.Name] = data[c.bit/32].Effective&(1<<(c.bit%32)) != 0
	}
	return held, nil
}
