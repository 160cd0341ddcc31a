package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// tcpInfoFacts is what the test actor's tcp-info command reads with
// getsockopt(TCP_INFO).
type tcpInfoFacts struct {
	SndMSS        uint32 `json:"snd_mss"`
	AdvMSS        uint32 `json:"advmss"`
	Options       uint8  `json:"options"`
	SndWscale     uint8  `json:"snd_wscale"`
	RcvWscale     uint8  `json:"rcv_wscale"`
	BytesAcked    uint64 `json:"bytes_acked"`
	BytesReceived uint64 `json:"bytes_received"`
	SegsOut       uint32 `json:"segs_out"`
	SegsIn        uint32 `json:"segs_in"`
	MinRTT        uint32 `json:"min_rtt"`
	TotalRetrans  uint32 `json:"total_retrans"`
}

// handshakeFacts and counterFacts are the handshake and counters objects
// of the JSON output.
type handshakeFacts struct {
	MSS           uint32  `json:"mss"`
	MSSAdvertised uint32  `json:"mss_advertised"`
	MSSReceived   uint32  `json:"mss_received"`
	WindowScaling bool    `json:"window_scaling"`
	SendWscale    uint8   `json:"send_wscale"`
	ReceiveWscale uint8   `json:"receive_wscale"`
	SACK          bool    `json:"sack"`
	Timestamps    bool    `json:"timestamps"`
	ECN           bool    `json:"ecn"`
	RTTMs         float64 `json:"rtt_ms"`
}

type counterFacts struct {
	BytesAcked    uint64  `json:"bytes_acked"`
	BytesReceived uint64  `json:"bytes_received"`
	SegsOut       uint32  `json:"segs_out"`
	SegsIn        uint32  `json:"segs_in"`
	Retransmits   uint32  `json:"retransmits"`
	RTTMs         float64 `json:"rtt_ms"`
	MinRTTMs      float64 `json:"min_rtt_ms"`
}

// TestHandshakeAndCounters: the ESTABLISHED event carries the terms the
// handshake settled and the summary the socket's counters, as
// getsockopt(TCP_INFO) tells them just before close (the FIN exchange
// adds a segment or two and the FIN's byte, both ways).
func TestHandshakeAndCounters(t *testing.T) {
	requireTracing(t)
	ns := newNetns(t)
	ns.sysctl(t, "net.ipv4.tcp_ecn", "1") // both ends ask for ECN: it is negotiated
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode))
	srv, cli := ns.connected(t, "127.0.0.1")
	cli.do("write 50000")
	srv.do("write 3000")
	var info tcpInfoFacts
	if err := json.Unmarshal([]byte(cli.do1("tcp-info")), &info); err != nil {
		t.Fatal(err)
	}
	cli.do("shutdown-write")
	srv.do("read-eof", "close")
	cli.do("read-eof", "close")
	settle()
	tr.stop()

	var est, sum struct {
		Type      string          `json:"type"`
		Sport     int             `json:"sport"`
		NewState  string          `json:"new_state"`
		Handshake *handshakeFacts `json:"handshake"`
		Counters  *counterFacts   `json:"counters"`
		Lifetime  *float64        `json:"lifetime_ms"`
	}
	for _, line := range strings.Split(tr.stdout.String(), "\n") {
		var e = est
		if json.Unmarshal([]byte(line), &e) != nil || e.Sport != cli.port {
			continue
		}
		switch {
		case e.Type == "state" && e.NewState == "ESTABLISHED":
			est = e
		case e.Type == "summary":
			sum = e
		}
	}
	const (
		optTimestamps = 1
		optSACK       = 2
		optWscale     = 4
		optECN        = 8
	)
	hs := est.Handshake
	// The MSS in use may grow after the handshake (loopback's MTU). The
	// peer, on the same loopback, announced what this side did, which is
	// advmss but for the timestamps option's 12 bytes.
	if hs == nil || hs.MSS == 0 || hs.MSS > info.SndMSS || hs.MSSAdvertised != info.AdvMSS ||
		hs.MSSReceived != info.AdvMSS+map[bool]uint32{true: 12}[info.Options&optTimestamps != 0] ||
		hs.Timestamps != (info.Options&optTimestamps != 0) || hs.SACK != (info.Options&optSACK != 0) ||
		hs.WindowScaling != (info.Options&optWscale != 0) || hs.SendWscale != info.SndWscale ||
		hs.ReceiveWscale != info.RcvWscale || !hs.ECN || info.Options&optECN == 0 || hs.RTTMs <= 0 {
		t.Errorf("handshake %+v, TCP_INFO %+v", hs, info)
	}
	if sum.Handshake == nil || *sum.Handshake != *hs {
		t.Errorf("summary handshake %+v, want the ESTABLISHED event's %+v", sum.Handshake, hs)
	}
	c := sum.Counters
	if c == nil || c.BytesAcked < info.BytesAcked || c.BytesAcked > info.BytesAcked+1 ||
		c.BytesReceived < info.BytesReceived || c.BytesReceived > info.BytesReceived+1 ||
		c.SegsOut < info.SegsOut || c.SegsOut > info.SegsOut+3 || c.SegsIn < info.SegsIn || c.SegsIn > info.SegsIn+3 ||
		c.Retransmits != info.TotalRetrans || c.RTTMs <= 0 || c.MinRTTMs*1000 > float64(info.MinRTT)+1 {
		t.Errorf("summary counters %+v, TCP_INFO before close %+v", c, info)
	}
	if c != nil && c.BytesAcked < 50000 {
		t.Errorf("bytes_acked %d, the client sent 50000", c.BytesAcked)
	}
	if sum.Lifetime == nil || *sum.Lifetime <= 0 {
		t.Errorf("summary lifetime %v", sum.Lifetime)
	}
}
