// Package sysctl reads and explains the TCP sysctls that decide how long
// connections linger in TIME_WAIT and FIN_WAIT2, how keepalives and
// retransmissions are timed, and when the kernel gives a connection up.
//
// Most of them are per network namespace, so ReadNetns reads them as
// another namespace sees them.
package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ProcSys is where the kernel shows its sysctls. Its net/ subtree shows the
// network namespace of the thread that reads it.
const ProcSys = "/proc/sys"

// Name is a sysctl's dotted name, as sysctl(8) spells it.
type Name string

// The sysctls tcptrace explains.
const (
	TWReuse         Name = "net.ipv4.tcp_tw_reuse"
	TWReuseDelay    Name = "net.ipv4.tcp_tw_reuse_delay"
	MaxTWBuckets    Name = "net.ipv4.tcp_max_tw_buckets"
	FinTimeout      Name = "net.ipv4.tcp_fin_timeout"
	RFC1337         Name = "net.ipv4.tcp_rfc1337"
	Timestamps      Name = "net.ipv4.tcp_timestamps"
	TWRecycle       Name = "net.ipv4.tcp_tw_recycle"
	KeepaliveTime   Name = "net.ipv4.tcp_keepalive_time"
	KeepaliveIntvl  Name = "net.ipv4.tcp_keepalive_intvl"
	KeepaliveProbes Name = "net.ipv4.tcp_keepalive_probes"
	Retries1        Name = "net.ipv4.tcp_retries1"
	Retries2        Name = "net.ipv4.tcp_retries2"
	OrphanRetries   Name = "net.ipv4.tcp_orphan_retries"
	SynRetries      Name = "net.ipv4.tcp_syn_retries"
	SynackRetries   Name = "net.ipv4.tcp_synack_retries"
	RTOMaxMs        Name = "net.ipv4.tcp_rto_max_ms"
)

// Sysctl is one kernel setting tcptrace explains.
type Sysctl struct {
	Name        Name
	Description string // one line of plain English
	RemovedIn   string // the Linux version that removed it ("4.12"); "" if mainline still has it
}

// Known lists the sysctls tcptrace explains: TIME_WAIT and FIN_WAIT2 first,
// then keepalive, then retransmission limits.
var Known = []Sysctl{
	{Name: TWReuse, Description: "whether connect() may take over the address pair of a TIME_WAIT socket when timestamps make it safe: 0 never, 1 always, 2 loopback only (default)"},
	{Name: TWReuseDelay, Description: "how old (ms) a TIME_WAIT socket must be before tcp_tw_reuse lets connect() take it over (Linux 6.14+, default 1000)"},
	{Name: MaxTWBuckets, Description: "most TIME_WAIT sockets this namespace holds at once; beyond it a closing socket skips TIME_WAIT (counted in TCPTimeWaitOverflow)"},
	{Name: FinTimeout, Description: "seconds an orphaned socket waits in FIN_WAIT2 for the peer's FIN (default 60); it does not change TIME_WAIT, which is fixed at 60 s"},
	{Name: RFC1337, Description: "1: an RST that reaches a TIME_WAIT socket is ignored (RFC 1337); 0 (default): such an RST ends TIME_WAIT at once"},
	{Name: Timestamps, Description: "TCP timestamps (RFC 7323), which PAWS and tcp_tw_reuse rely on: 0 off, 1 on with a random offset per connection (default), 2 on without offsets"},
	{Name: TWRecycle, Description: "fast TIME_WAIT recycling keyed on per-host timestamps; it broke clients behind NAT and was removed in Linux 4.12", RemovedIn: "4.12"},
	{Name: KeepaliveTime, Description: "seconds a connection with SO_KEEPALIVE may be idle before the first keepalive probe (default 7200; TCP_KEEPIDLE sets it per socket)"},
	{Name: KeepaliveIntvl, Description: "seconds between keepalive probes while they go unanswered (default 75; TCP_KEEPINTVL sets it per socket)"},
	{Name: KeepaliveProbes, Description: "unanswered keepalive probes after which the kernel resets the connection and reports ETIMEDOUT (default 9; TCP_KEEPCNT sets it per socket)"},
	{Name: Retries1, Description: "RTO retransmissions after which the kernel suspects the path: it asks for a fresh route and tries MTU probing (default 3)"},
	{Name: Retries2, Description: "RTO retransmissions of unacknowledged data (as a time budget, about 15 min at the default 15), or unanswered zero-window probes, before the connection is aborted with ETIMEDOUT"},
	{Name: OrphanRetries, Description: "the tcp_retries2 limit for sockets their application has already closed (orphans); 0 (the default) means 8"},
	{Name: SynRetries, Description: "times connect() retransmits an unanswered SYN before failing with ETIMEDOUT (default 6, about 127 s)"},
	{Name: SynackRetries, Description: "times a listener retransmits the SYN-ACK of an unfinished handshake before dropping it (default 5, about 63 s)"},
	{Name: RTOMaxMs, Description: "ceiling (ms) on the retransmission timeout and its exponential backoff, zero-window probes included (Linux 6.15+, default 120000; fixed 120 s before)"},
}

// Value is one sysctl as read from one namespace.
type Value struct {
	Sysctl
	Raw     string // the file's content without surrounding white space
	Present bool   // false when this kernel has no such sysctl
}

// Int parses the value as the single integer every sysctl in Known holds.
func (v Value) Int() (int64, error) {
	if !v.Present {
		return 0, fmt.Errorf("%s: absent on this kernel", v.Name)
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: parse %q as an integer: %w", v.Name, v.Raw, err)
	}
	return n, nil
}

// Number is the value as findings and JSON show it: the integer it holds,
// nil when the kernel has no such sysctl, else (should a kernel ever hold
// something else there) its raw text.
func (v Value) Number() any {
	if !v.Present {
		return nil
	}
	if n, err := v.Int(); err == nil {
		return n
	}
	return v.Raw
}

// Snapshot is every sysctl in Known, read from one network namespace.
type Snapshot struct {
	Netns  uint64  // inode of the network namespace read; 0 when not known (Read)
	Values []Value // in the order of Known
	// Gen tells snapshots of one namespace apart: whoever keeps them
	// gives a new one another Gen when a value changes.
	Gen uint64
}

// Same tells whether two snapshots hold the same values.
func (s Snapshot) Same(o Snapshot) bool {
	return slices.Equal(s.Values, o.Values)
}

// Int returns the integer the sysctl holds; false when the kernel has no
// such sysctl or it holds no integer.
func (s Snapshot) Int(name Name) (int64, bool) {
	v, ok := s.Lookup(name)
	if !ok {
		return 0, false
	}
	n, err := v.Int()
	return n, err == nil
}

// Lookup returns the value of the sysctl with this name.
func (s Snapshot) Lookup(name Name) (Value, bool) {
	for _, v := range s.Values {
		if v.Name == name {
			return v, true
		}
	}
	return Value{}, false
}

// Read reads every sysctl in Known under root, a directory laid out like
// /proc/sys. A missing file is an absent sysctl, not an error.
func Read(root string) (Snapshot, error) {
	snap := Snapshot{Values: make([]Value, 0, len(Known))}
	for _, s := range Known {
		b, err := os.ReadFile(filepath.Join(root, strings.ReplaceAll(string(s.Name), ".", "/")))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			snap.Values = append(snap.Values, Value{Sysctl: s})
		case err != nil:
			return Snapshot{}, fmt.Errorf("read sysctl %s: %w", s.Name, err)
		default:
			snap.Values = append(snap.Values, Value{Sysctl: s, Raw: strings.TrimSpace(string(b)), Present: true})
		}
	}
	return snap, nil
}
