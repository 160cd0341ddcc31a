package explain

import (
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

func TestKeepaliveSources(t *testing.T) {
	snap, _ := source(map[string]string{"net.ipv4.tcp_keepalive_time": "7200", "net.ipv4.tcp_keepalive_intvl": "75",
		"net.ipv4.tcp_keepalive_probes": "9"})(7)
	for _, tt := range []struct {
		own  events.KeepaliveSettings
		want events.ResolvedKeepalive
	}{
		{events.KeepaliveSettings{On: true}, events.ResolvedKeepalive{Idle: 2 * time.Hour, Interval: 75 * time.Second, Probes: 9, Source: "sysctl"}},
		{events.KeepaliveSettings{On: true, Idle: time.Second}, events.ResolvedKeepalive{Idle: time.Second, Interval: 75 * time.Second, Probes: 9, Source: "mixed"}},
		{events.KeepaliveSettings{On: true, Idle: time.Second, Interval: 2 * time.Second, Probes: 3, UserTimeout: time.Minute},
			events.ResolvedKeepalive{Idle: time.Second, Interval: 2 * time.Second, Probes: 3, UserTimeout: time.Minute, Source: "socket"}},
	} {
		if got := Keepalive(tt.own, snap); got != tt.want {
			t.Errorf("%+v: got %+v, want %+v", tt.own, got, tt.want)
		}
	}
}
