package replay

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/render"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // the goldens were recorded in UTC
	os.Exit(m.Run())
}

// The golden recordings are real runs of the privileged scenarios (make
// golden records them again): replaying each must print exactly what the
// live run printed, and tell the story the scenario is about.
func TestGoldenReplays(t *testing.T) {
	stories := map[string][]string{
		"TestKeepalive":                        {`"keepalive_probe"`, `"keepalive_ack"`, `"kind":"keepalive_timeout"`},
		"TestZeroWindow_TCP_USER_TIMEOUT_0":    {`"zero_window_probe"`, `"kind":"zero_window_not_keepalive"`},
		"TestZeroWindow_TCP_USER_TIMEOUT_3000": {`"zero_window_probe"`, `"kind":"user_timeout"`},
		"TestTimewaitSynAccepted":              {`"cause":"syn_accepted"`, `"kind":"timewait_syn_reuse"`},
		"TestTimewaitConnectReuse":             {`"cause":"connect_reuse"`, `"kind":"timewait_connect_reuse"`},
		"TestTimewaitRST_tcp_rfc1337_0":        {`"cause":"rst"`, `"kind":"timewait_rst_kill"`, `"kind":"late_segment_in_timewait"`},
		"TestTimewaitRST_tcp_rfc1337_1":        {`"type":"timewait_enter"`},
		"TestResets_ipv6_SO_LINGER_0_close":    {`"reset_sent"`, `"reset_received"`},
		"TestRetransmitTimeout":                {`"type":"rto"`, `"kind":"retransmit_timeout"`},
		"TestCloseShapes_three_segments":       {`"shape":"three_segment"`},
		"TestCloseShapes_four_segments_seen":   {`"shape":"four_segment"`, `"type":"timewait_substate"`},
		"TestCloseShapes_simultaneous":         {`"shape":"simultaneous"`},
		"TestCloseShapes_peer_first":           {`"shape":"peer_first"`},
		// Recorded under --port: its replay drops the destroys of other
		// sockets the kernel let through, as the live run did.
		"TestAbortiveCloses_SO_LINGER_0_with_--port":            {`"rule":"so_linger_zero"`, `"kind":"abortive_close"`},
		"TestAbortiveCloses_close_with_unread_data":             {`"rule":"unread_data"`, `"shape":"reset_by_peer"`},
		"TestAbortiveCloses_TCP_LINGER2_-1_shutdown_then_close": {`"rule":"linger2_negative"`},
	}
	files, _ := filepath.Glob("testdata/*.rec.gz")
	if len(files) < len(stories) {
		t.Fatalf("%d recordings in testdata, want at least %d", len(files), len(stories))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".rec.gz")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".rec.gz") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if err := Run(Config{File: file, Format: "json", Stdout: &out, Stderr: &errOut}); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(want) {
				gotLines, wantLines := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gotLines), len(wantLines)) {
					if gotLines[i] != wantLines[i] {
						t.Fatalf("line %d:\nreplay %s\nlive   %s", i+1, gotLines[i], wantLines[i])
					}
				}
				t.Fatalf("replay has %d lines, the live run %d", len(gotLines), len(wantLines))
			}
			for _, s := range stories[name] {
				if !strings.Contains(string(want), s) {
					t.Errorf("the recording does not tell %s", s)
				}
			}
		})
	}
}

func TestReplayFilters(t *testing.T) {
	const file = "testdata/TestTimewaitConnectReuse.rec.gz"
	var all bytes.Buffer
	if err := Run(Config{File: file, Format: "json", Stdout: &all, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var first struct {
		TS    string `json:"ts"`
		Sport int    `json:"sport"`
		PID   uint32 `json:"pid"`
	}
	json.Unmarshal([]byte(strings.SplitN(all.String(), "\n", 2)[0]), &first)
	since, _ := time.Parse(time.RFC3339Nano, first.TS)
	for name, filter := range map[string]pipeline.Filter{
		"pid":   {PIDs: []uint32{first.PID}},
		"port":  {Ports: []uint16{uint16(first.Sport)}},
		"lport": {LocalPorts: []uint16{uint16(first.Sport)}},
		"rport": {RemotePorts: []uint16{uint16(first.Sport)}},
		"since": {Since: since.Add(time.Millisecond)},
	} {
		var out bytes.Buffer
		if err := Run(Config{File: file, Format: "json", Filter: filter, Stdout: &out, Stderr: io.Discard}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) < 2 || len(lines) >= len(strings.Split(strings.TrimSpace(all.String()), "\n")) {
			t.Errorf("%s: %d lines: want fewer than all, and some", name, len(lines))
		}
		for _, line := range lines[:len(lines)-1] {
			var e struct {
				TS           string
				PID          uint32
				Sport, Dport int
			}
			json.Unmarshal([]byte(line), &e)
			ts, _ := time.Parse(time.RFC3339Nano, e.TS)
			switch {
			case name == "pid" && e.PID != first.PID,
				name == "port" && e.Sport != first.Sport && e.Dport != first.Sport,
				name == "lport" && e.Sport != first.Sport,
				name == "rport" && e.Dport != first.Sport,
				name == "since" && ts.Before(filter.Since) && !strings.Contains(line, `"summary"`):
				t.Errorf("%s filter let through %s", name, line)
			}
		}
	}
}

// --until ends the replay there: nothing after it is shown, and a socket
// still open then ends as open.
func TestReplayUntil(t *testing.T) {
	const file = "testdata/TestTimewaitConnectReuse.rec.gz"
	var all bytes.Buffer
	if err := Run(Config{File: file, Format: "json", Stdout: &all, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var first struct { // the first connection established
		TS       string `json:"ts"`
		Cookie   uint64 `json:"cookie"`
		NewState string `json:"new_state"`
	}
	for _, line := range strings.Split(all.String(), "\n") {
		if json.Unmarshal([]byte(line), &first); first.NewState == "ESTABLISHED" {
			break
		}
	}
	start, _ := time.Parse(time.RFC3339Nano, first.TS)
	until := start.Add(time.Microsecond)
	var out bytes.Buffer
	if err := Run(Config{File: file, Format: "json", Filter: pipeline.Filter{Until: until}, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	open := false
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct {
			Type, TS, End string
			Cookie        uint64
		}
		json.Unmarshal([]byte(line), &e)
		ts, _ := time.Parse(time.RFC3339Nano, e.TS)
		switch {
		case e.Type == "stats":
		case ts.After(until):
			t.Errorf("shown after --until: %s", line)
		case e.Type == "summary" && e.Cookie == first.Cookie && e.End == "open":
			open = true
		}
	}
	if !open {
		t.Errorf("no summary ending open for cookie %d, open at --until:\n%s", first.Cookie, out.String())
	}
}

func TestNotARecording(t *testing.T) {
	err := Run(Config{File: "replay_test.go", Format: "json", Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "is not a tcptrace recording") || strings.Count(err.Error(), "not a tcptrace recording") != 1 {
		t.Errorf("%v", err)
	}
}

// A recording made before records had tails (176-byte records) still
// replays: the same lines as its live run printed, but for what summaries
// now tell (lifetime, close shape).
func TestReplayBeforeTails(t *testing.T) {
	const base = "testdata/before-tails/TestTimewaitSynAccepted"
	want, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run(Config{File: base + ".rec.gz", Format: "json", Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	told := regexp.MustCompile(`,"lifetime_ms":[0-9.]+|,"close":\{[^}]*\}`)
	if got := told.ReplaceAllString(out.String(), ""); got != string(want) {
		t.Errorf("replay of a recording before tails:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(out.String(), `"lifetime_ms"`) {
		t.Errorf("no lifetime in the summaries of a replay")
	}
}

// --summary-only writes each socket's summary and nothing else: in JSON the
// summary lines of the full replay, in text a table row each, with the
// bytes and the lifetime where they are known.
func TestSummaryOnly(t *testing.T) {
	const file = "testdata/TestTimewaitSynAccepted.rec.gz"
	var all, only, table bytes.Buffer
	for _, run := range []struct {
		out         *bytes.Buffer
		format      render.Format
		summaryOnly bool
	}{{&all, "json", false}, {&only, "json", true}, {&table, "text", true}} {
		if err := Run(Config{File: file, Format: run.format, SummaryOnly: run.summaryOnly, Stdout: run.out, Stderr: io.Discard}); err != nil {
			t.Fatal(err)
		}
	}
	var summaries []string
	for line := range strings.SplitSeq(all.String(), "\n") {
		if strings.Contains(line, `"type":"summary"`) {
			summaries = append(summaries, line)
		}
	}
	got := strings.Split(strings.TrimSuffix(only.String(), "\n"), "\n")
	// The stats line ends both.
	if len(summaries) == 0 || strings.Join(got[:len(got)-1], "\n") != strings.Join(summaries, "\n") {
		t.Errorf("--summary-only -o json:\n%s\nwant the summaries:\n%s", only.String(), strings.Join(summaries, "\n"))
	}
	rows := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(rows) != len(summaries)+1 || !strings.HasPrefix(rows[0], "TIME") || !strings.Contains(rows[0], "TX_KB") {
		t.Fatalf("--summary-only table:\n%s\nwant a header and %d rows", table.String(), len(summaries))
	}
	if !strings.Contains(rows[2], "timewait_syn_accepted") || strings.Contains(rows[2], " - ") {
		t.Errorf("row %q: want the TIME_WAIT story's end, its bytes and lifetime", rows[2])
	}
}
