package report

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
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
	for _, want := range []string{`default-src 'none'`, `"timewait_syn_reuse","The TIME_WAIT socket`, `"names":[`, `"TIME_WAIT"`, `<title>seed 003</title>`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The SVG namespace is a name, not a place to load from, and url(#id)
	// names an element of the page.
	html = strings.ReplaceAll(html, `"http://www.w3.org/2000/svg"`, "")
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|https?://|@import|url\([^#]`).FindString(html); m != "" {
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
		c := &collector{start: t0, sockets: map[uint64]*Socket{}, used: map[string][]string{}}
		if err := c.Event(tt.ev); err != nil {
			t.Fatal(err)
		}
		evs := c.sockets[7].Events
		if tt.kind == "" {
			if len(evs) != 1 || evs[0].Label != "" {
				t.Errorf("%T: events %+v, want one with no mark", tt.ev, evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Type != tt.kind || evs[0].Label != tt.label || evs[0].At != 1500 {
			t.Errorf("%T: events %+v, want one %s marked %q at 1500 ms", tt.ev, evs, tt.kind, tt.label)
		}
	}
}

// synthetic makes a recording of n sockets, each connecting, closing and
// being destroyed, every other one then living 60 s as a TIME_WAIT socket,
// to see the page hold many.
func synthetic(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "many.rec.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const established, synSent, finWait1, finWait2, timeWait, closed = 1, 2, 4, 5, 6, 7
	w, err := record.NewWriter(f, record.Header{Created: time.Unix(1000, 0), BootUnixNs: time.Unix(1000, 0).UnixNano(),
		Kernel: "synthetic", RecordSize: decode.RecordSize,
		Names: decode.Names{HZ: 1000, States: map[uint8]events.State{1: "ESTABLISHED", 2: "SYN_SENT", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE"}}}, 0)
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
	type step struct {
		ms         int
		typ        layout.TcptraceEventType
		old, state uint8
	}
	var expiries []layout.TcptraceEvent // due, in time order: recorded once the sockets reach their time
	for i := range n {
		base := layout.TcptraceEvent{Cookie: uint64(i + 1), Family: 4, Pid: 42, Comm: [16]int8{'a', 'p', 'p'},
			Saddr: [16]uint8{10, 0, 0, 1}, Daddr: [16]uint8{10, 0, 0, 2}, Sport: uint16(10000 + i), Dport: 80,
			Flags: uint8(layout.TcptraceEventFlagEVENT_FLAG_OWNER_KNOWN)}
		steps := []step{{0, layout.TcptraceEventTypeEVENT_STATE, closed, synSent}, {1, layout.TcptraceEventTypeEVENT_STATE, synSent, established},
			{5, layout.TcptraceEventTypeEVENT_STATE, established, finWait1}}
		if i%2 == 0 {
			steps = append(steps, step{6, layout.TcptraceEventTypeEVENT_STATE, finWait1, finWait2},
				step{7, layout.TcptraceEventTypeEVENT_TW_START, 0, timeWait}, step{7, layout.TcptraceEventTypeEVENT_STATE, finWait2, closed})
		} else {
			steps = append(steps, step{6, layout.TcptraceEventTypeEVENT_STATE, finWait1, closed})
		}
		for _, s := range steps {
			e := base
			e.TsNs, e.Type, e.OldState, e.State = uint64((i*10+s.ms)*int(time.Millisecond)), uint8(s.typ), s.old, s.state
			if s.typ == layout.TcptraceEventTypeEVENT_TW_START {
				e.Substate, e.TimerJiffies = timeWait, 60000
			}
			add(e)
		}
		e := base
		e.TsNs, e.Type, e.State = uint64((i*10+7)*int(time.Millisecond)), uint8(layout.TcptraceEventTypeEVENT_DESTROY), closed
		add(e)
		if i%2 == 0 {
			e.Type, e.Substate, e.State = uint8(layout.TcptraceEventTypeEVENT_TW_EXPIRE), timeWait, timeWait
			e.TsNs += uint64(60 * time.Second)
			expiries = append(expiries, e)
		}
		for len(expiries) > 0 && expiries[0].TsNs <= e.TsNs {
			add(expiries[0])
			expiries = expiries[1:]
		}
	}
	for _, e := range expiries {
		add(e)
	}
	end := time.Duration(n)*10*time.Millisecond + 61*time.Second
	if err := w.Close(record.End{UnixNs: time.Unix(1000, 0).Add(end).UnixNano(), DurationNs: int64(end)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// The data cannot end its <script> element early, whatever a process
// name or a message holds, and says the same once parsed.
func TestScriptData(t *testing.T) {
	comm := "</script><script>alert(1)</script>"
	d := Data{Used: map[string][]string{}, Sockets: []*Socket{{Cookie: 1, Comm: comm, Findings: []Finding{{Kind: "k", Message: "a <!-- b"}}}}}
	b := d.script()
	if bytes.Contains(b, []byte("<")) {
		t.Errorf("data holds a '<': %s", b)
	}
	var parsed struct {
		Sockets [][]json.RawMessage `json:"sockets"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var got string
	if err := json.Unmarshal(parsed.Sockets[0][4], &got); err != nil || got != comm {
		t.Errorf("comm %q (%v), want %q", got, err, comm)
	}
}

// A recording cut short by --record-max-size says so at the top of its
// page.
func TestTruncated(t *testing.T) {
	rec, err := replay.Load(synthetic(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range rec.Items {
		if item.End != nil {
			item.End.Truncated = true
		}
	}
	var out bytes.Buffer
	if err := Write(&out, rec, "cut"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"cut":"the recording stopped at --record-max-size`) {
		t.Error("the page does not say the recording was cut")
	}
}
