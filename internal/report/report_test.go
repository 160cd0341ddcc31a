package report

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/bpf/layout"
	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/replay"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	os.Exit(m.Run())
}

func golden(t *testing.T, name string) *record.Recording {
	t.Helper()
	rec, err := replay.Load(filepath.Join("../replay/testdata", name+".rec.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// The page holds its data and code, and may load nothing from anywhere.
func TestSelfContained(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, golden(t, "TestTimewaitSynAccepted"), "seed 003"); err != nil {
		t.Fatal(err)
	}
	html := out.String()
	for _, want := range []string{`default-src 'none'`, `"kind":"timewait_syn_reuse"`, `"timewait":true`, `<title>seed 003</title>`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|https?://|@import|url\(`).FindString(html); m != "" {
		t.Errorf("page refers to something outside it: %q", m)
	}
}

// TestMarks: what the precise hooks and the TIME_WAIT timer add to a
// socket's timeline.
func TestMarks(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := events.Header{Time: t0.Add(1500 * time.Millisecond), Cookie: 7}
	tests := []struct {
		ev    events.Event
		kind  string
		label string
	}{
		{&events.Segment{Header: h, State: events.StateFinWait2, Flags: 0x11}, "segment", "FIN,ACK in FIN_WAIT2"},
		{&events.Segment{Header: h, State: events.StateFinWait1, Flags: 0x18, OutOfWindow: true, DataAfterFIN: true},
			"segment", "PSH,ACK in FIN_WAIT1, out of window, data after FIN"},
		{&events.TimewaitSegment{Header: h, Flags: 0x02, Verdict: "SYN"}, "tw_segment", "SYN to TIME_WAIT: SYN"},
		{&events.TimewaitEnter{Header: h, Restart: true}, "timewait_restart", "TIME_WAIT timer restarted"},
		{&events.TimewaitEnter{Header: h}, "", ""},
	}
	for _, tt := range tests {
		c := &collector{start: t0, sockets: map[uint64]*Socket{}}
		if err := c.Event(tt.ev); err != nil {
			t.Fatal(err)
		}
		marks := c.sockets[7].Marks
		if tt.kind == "" {
			if len(marks) != 0 {
				t.Errorf("%T: marks %+v, want none", tt.ev, marks)
			}
			continue
		}
		if len(marks) != 1 || marks[0].Kind != tt.kind || marks[0].Label != tt.label || marks[0].At != 1500 {
			t.Errorf("%T: marks %+v, want one %s %q at 1500 ms", tt.ev, marks, tt.kind, tt.label)
		}
	}
}

// synthetic makes a recording of n sockets, each connecting, closing and
// being destroyed, to see the page hold many.
func synthetic(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "many.rec.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := record.NewWriter(f, record.Header{Created: time.Unix(1000, 0), BootUnixNs: time.Unix(1000, 0).UnixNano(),
		Kernel: "synthetic", RecordSize: decode.RecordSize,
		Names: decode.Names{States: map[uint8]events.State{1: "ESTABLISHED", 2: "SYN_SENT", 4: "FIN_WAIT1", 7: "CLOSE"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	add := func(e layout.TcptraceEvent) {
		rec, err := binary.Append(nil, binary.LittleEndian, &e) // as the BPF programs write it
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Rec(rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		base := layout.TcptraceEvent{Cookie: uint64(i + 1), Family: 4, Pid: 42, Comm: [16]int8{'a', 'p', 'p'},
			Saddr: [16]uint8{10, 0, 0, 1}, Daddr: [16]uint8{10, 0, 0, 2}, Sport: uint16(10000 + i), Dport: 80,
			Flags: uint8(layout.TcptraceEventFlagEVENT_FLAG_OWNER_KNOWN)}
		step := func(ms int, typ layout.TcptraceEventType, old, state uint8) {
			e := base
			e.TsNs, e.Type, e.OldState, e.State = uint64((i*10+ms)*int(time.Millisecond)), uint8(typ), old, state
			add(e)
		}
		step(0, layout.TcptraceEventTypeEVENT_STATE, 7, 2)
		step(1, layout.TcptraceEventTypeEVENT_STATE, 2, 1)
		step(5, layout.TcptraceEventTypeEVENT_STATE, 1, 4)
		step(6, layout.TcptraceEventTypeEVENT_STATE, 4, 7)
		step(6, layout.TcptraceEventTypeEVENT_DESTROY, 0, 7)
	}
	if err := w.Close(record.End{UnixNs: time.Unix(1000+int64(n)/100+1, 0).UnixNano(), DurationNs: int64(n) * 10 * int64(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// TestInBrowser opens reports in headless Chromium (Debian's chromium): the
// timeline is drawn, a thousand sockets are paged, a filter from the link
// applies, and a screenshot is taken for people to look at.
func TestInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium is needed (scripts/install-deps.sh installs it)")
		}
		t.Skip("no chromium")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1400,900"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}

	many := filepath.Join(dir, "many.html")
	f, _ := os.Create(many)
	rec, err := replay.Load(synthetic(t, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, rec, "many"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dom := run("--dump-dom", "file://"+many)
	if !strings.Contains(dom, "page 1 of 10 (1000 sockets)") || strings.Count(dom, `class="sock"`) != 100 {
		t.Errorf("1000 sockets: page says %q, %d rows drawn; want 10 pages of 100",
			regexp.MustCompile(`page \d+ of \d+ \(\d+ sockets\)`).FindString(dom), strings.Count(dom, `class="sock"`))
	}
	if strings.Count(dom, `class="band"`) < 300 {
		t.Errorf("%d state bands drawn, want 3 a socket", strings.Count(dom, `class="band"`))
	}

	story := filepath.Join(dir, "story.html")
	f, _ = os.Create(story)
	if err := Write(f, golden(t, "TestTimewaitSynAccepted"), "seed 003"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dom = run("--dump-dom", "file://"+story+"#filter=timewait_syn_reuse")
	if strings.Count(dom, `class="sock"`) != 1 || !strings.Contains(dom, `class="band tw"`) ||
		!strings.Contains(dom, "timewait_syn_reuse</b>") || !strings.Contains(dom, "net.ipv4.tcp_tw_reuse") {
		t.Errorf("filtered story page: %d rows; want the one socket with its TIME_WAIT band, its finding and the sysctls",
			strings.Count(dom, `class="sock"`))
	}
	shot := filepath.Join(os.TempDir(), "tcptrace-report.png")
	run("--screenshot="+shot, "file://"+story)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
}
