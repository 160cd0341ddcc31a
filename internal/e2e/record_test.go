package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/rollup"
)

// TestRecordReplay: a recording of a real run, replayed by an unprivileged
// user, prints the live JSON line for line.
func TestRecordReplay(t *testing.T) {
	ns := newNetns(t)
	file := filepath.Join(tracerDir, fmt.Sprintf("replay-%d.rec.gz", os.Getpid()))
	t.Cleanup(func() { os.Remove(file) })
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--record", file)
	srv, cli := ns.connected(t, "127.0.0.1")
	closeClientFirst(cli, srv) // TIME_WAIT on the client
	port := freePort()
	a := ns.clientFrom(t, port, srv)
	closeClientFirst(a, srv)
	b := ns.clientFrom(t, port, srv) // takes a's TIME_WAIT over
	b.do("linger0", "close")         // an RST
	settle()
	tr.stop()
	live := tr.stdout.String()
	if !strings.Contains(live, `"finding"`) || !strings.Contains(live, `"timewait_end"`) {
		t.Fatalf("the live run has no TIME_WAIT story to replay:\n%s", live)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}

	replay := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		"--bounding-set=-all", tracerBinary, "replay", file, "-o", "json")
	stdout, stderr, code := runCommand(t, replay)
	if code != 0 {
		t.Fatalf("replay as nobody: exit %d: %s", code, stderr)
	}
	liveLines, replayLines := strings.Split(live, "\n"), strings.Split(stdout, "\n")
	for i := range max(len(liveLines), len(replayLines)) {
		var l, r string
		if i < len(liveLines) {
			l = liveLines[i]
		}
		if i < len(replayLines) {
			r = replayLines[i]
		}
		if l != r {
			t.Fatalf("line %d differs:\nlive   %s\nreplay %s", i+1, l, r)
		}
	}

	// A recording cut short (a crash) replays up to the cut, with a warning.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := file + ".cut"
	if err := os.WriteFile(cut, data[:len(data)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cut)
	stdout, stderr, code = runCommand(t, exec.Command(tracerBinary, "replay", cut, "-o", "json"))
	if code != 0 || !strings.Contains(stderr, "ends early") || len(stdout) == 0 || !strings.HasPrefix(live, firstLine(stdout)) {
		t.Errorf("cut recording: exit %d, stderr %q, %d bytes out", code, stderr, len(stdout))
	}
	// Not a recording at all: one sentence.
	_, stderr, code = runCommand(t, exec.Command(tracerBinary, "replay", tracerBinary))
	if code == 0 || !strings.Contains(stderr, "is not a tcptrace recording") || strings.Count(stderr, "not a tcptrace recording") != 1 ||
		strings.Count(stderr, "\n") != 1 {
		t.Errorf("foreign file: exit %d, %q", code, stderr)
	}
}

// TestLiveReport: --report writes, when tracing ends, the report of the
// events the run wrote: every socket of the report has the events the run
// wrote for it, the TIME_WAIT story's among them.
func TestLiveReport(t *testing.T) {
	ns := newNetns(t)
	page := filepath.Join(t.TempDir(), "report.html")
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--report", page)
	srv, cli := ns.connected(t, "127.0.0.1")
	closeClientFirst(cli, srv) // TIME_WAIT on the client
	port := freePort()
	a := ns.clientFrom(t, port, srv)
	closeClientFirst(a, srv)
	ns.clientFrom(t, port, srv) // takes a's TIME_WAIT over
	settle()
	evs := tr.stop()
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<script id="data" type="application/json">(.*?)</script>`).FindSubmatch(html)
	if m == nil {
		t.Fatalf("no data in the report (%d bytes)", len(html))
	}
	var data struct {
		Sockets [][]json.RawMessage `json:"sockets"`
	}
	if err := json.Unmarshal(m[1], &data); err != nil {
		t.Fatalf("the report's data: %v", err)
	}
	live := map[uint64]int{}
	for _, e := range evs {
		if e.Type != "finding_summary" {
			live[e.Cookie]++
		}
	}
	reported := map[uint64]bool{}
	for _, s := range data.Sockets {
		var cookie uint64
		var events []json.RawMessage
		if err := json.Unmarshal(s[0], &cookie); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(s[8], &events); err != nil {
			t.Fatal(err)
		}
		reported[cookie] = true
		if len(events) != live[cookie] {
			t.Errorf("socket %d: %d events in the report, the run wrote %d", cookie, len(events), live[cookie])
		}
	}
	ends := ofType(evs, "timewait_end")
	if len(ends) == 0 {
		t.Fatal("the run has no TIME_WAIT story")
	}
	for _, e := range ends {
		if !reported[e.Cookie] {
			t.Errorf("the TIME_WAIT story of socket %d is not in the report", e.Cookie)
		}
	}
	checkReportInBrowser(t, page, ends)
}

// checkReportInBrowser opens a report in headless Chromium, where there is
// one, with #selftest: its chart of TIME_WAIT ends counts the run's.
func checkReportInBrowser(t *testing.T, page string, ends []event) {
	t.Helper()
	if os.Getenv("TCPTRACE_GUEST_KERNEL") != "" {
		// A browser under the matrix's emulation takes minutes, and what it
		// checks is the page, not the kernel: the host's run opens it.
		t.Log("in an emulated kernel: the report is not opened")
		return
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("no chromium: the report is not opened")
		return
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+page+"#selftest")
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	m := regexp.MustCompile(`(?s)<pre id="selftest">(.*?)</pre>`).FindSubmatch(dom)
	var got struct {
		Charts map[string]struct {
			Counts map[string]int `json:"counts"`
		} `json:"charts"`
	}
	if m == nil || json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &got) != nil {
		t.Fatalf("no self-test results in the report")
	}
	want := map[string]int{}
	for _, e := range ends {
		want[e.Cause]++
	}
	if !maps.Equal(got.Charts["chart-ends"].Counts, want) {
		t.Errorf("the report's TIME_WAIT ends %v, the run's %v", got.Charts["chart-ends"].Counts, want)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestFindingRollup: TIME_WAIT sockets taken over one after another in a
// namespace each get a finding, the first in full and the others naming
// it; a finding_summary comes at the end of the interval (where nothing
// happens: a tick) and at the end; and the replay prints the same.
func TestFindingRollup(t *testing.T) {
	ns := newNetns(t)
	file := filepath.Join(tracerDir, fmt.Sprintf("rollup-%d.rec.gz", os.Getpid()))
	t.Cleanup(func() { os.Remove(file) })
	tr := startTracer(t, "--netns", fmt.Sprint(ns.inode), "--record", file)
	srv := ns.listener(t, "127.0.0.1")
	reuse := func() {
		port := freePort()
		cli := ns.clientFrom(t, port, srv)
		closeClientFirst(cli, srv)
		ns.clientFrom(t, port, srv) // takes cli's TIME_WAIT over
	}
	reuse()
	reuse()
	reuse()
	settle()
	time.Sleep(time.Until(time.Now().Truncate(rollup.Interval).Add(rollup.Interval + 300*time.Millisecond)))
	reuse() // in the next interval
	settle()
	evs := tr.stop()

	reused := map[uint64]bool{}
	for _, e := range ofType(evs, "timewait_end") {
		reused[e.Cookie] = e.Cause == "connect_reuse"
	}
	findings := ofType(evs, "finding")
	for i, f := range findings {
		if i == 0 && (f.FindingID != 1 || f.See != 0 || f.Message == "" || f.Sysctls == nil) ||
			i > 0 && (f.FindingID != uint64(i+1) || f.See != 1 || f.Count != uint64(i+1) || f.Message != "" || f.Sysctls != nil) ||
			f.Kind != "timewait_connect_reuse" || !reused[f.Cookie] {
			t.Errorf("finding %d: %+v, want the first in full, the others naming it", i+1, f)
		}
		delete(reused, f.Cookie)
	}
	for cookie, r := range reused {
		if r {
			t.Errorf("TIME_WAIT socket %d taken over without its finding", cookie)
		}
	}
	// One summary for each interval with findings, counting them, at the
	// interval's end (the last one's at the trace's end, within it). The
	// fourth finding is in a later interval than the first; the first three
	// fall in one or two, as the machine's speed has it.
	var intervals []time.Time
	counts := map[time.Time]uint64{}
	for _, f := range findings {
		at, _ := time.Parse(time.RFC3339Nano, f.TS)
		end := at.Truncate(rollup.Interval).Add(rollup.Interval)
		if counts[end] == 0 {
			intervals = append(intervals, end)
		}
		counts[end]++
	}
	sums := ofType(evs, "finding_summary")
	if len(findings) != 4 || len(intervals) < 2 || len(sums) != len(intervals) {
		dumpEvents(t, evs)
		t.Fatalf("%d findings in %d intervals, %d summaries: want 4 findings, a summary for each interval", len(findings), len(intervals), len(sums))
	}
	for i, s := range sums {
		at, _ := time.Parse(time.RFC3339Nano, s.TS)
		end := intervals[i]
		last := i == len(sums)-1
		if s.Count != counts[end] || !last && !at.Equal(end) || last && (at.After(end) || at.Before(end.Add(-rollup.Interval))) {
			t.Errorf("summary %d at %s counting %d: want %d, at the interval's end %s (the last within the interval)", i+1, s.TS, s.Count, counts[end], end)
		}
	}

	stdout, stderr, code := runCommand(t, exec.Command(tracerBinary, "replay", file, "-o", "json"))
	if code != 0 || stdout != tr.stdout.String() {
		t.Errorf("replay: exit %d, %s; the same output: %v", code, stderr, stdout == tr.stdout.String())
	}
}
