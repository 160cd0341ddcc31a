package explain

import (
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Keepalive resolves the keepalive settings in force on a socket: its own
// options (own) where it set them, else its namespace's sysctls (snap).
func Keepalive(own events.KeepaliveSettings, snap sysctl.Snapshot) events.ResolvedKeepalive {
	r := events.ResolvedKeepalive{UserTimeout: own.UserTimeout}
	fromSocket := 0
	seconds := func(socket time.Duration, name sysctl.Name) time.Duration {
		if socket > 0 {
			fromSocket++
			return socket
		}
		v, _ := snap.Int(name)
		return time.Duration(v) * time.Second
	}
	r.Idle = seconds(own.Idle, sysctl.KeepaliveTime)
	r.Interval = seconds(own.Interval, sysctl.KeepaliveIntvl)
	if own.Probes > 0 {
		fromSocket++
		r.Probes = own.Probes
	} else {
		v, _ := snap.Int(sysctl.KeepaliveProbes)
		r.Probes = int(v)
	}
	switch fromSocket {
	case 0:
		r.Source = "sysctl"
	case 3:
		r.Source = "socket"
	default:
		r.Source = "mixed"
	}
	return r
}
