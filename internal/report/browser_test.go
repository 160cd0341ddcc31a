package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/replay"
)

// browser runs Debian's chromium headless, each run with a profile of its
// own test.
type browser struct {
	t    *testing.T
	path string
	dir  string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium is needed (scripts/install-deps.sh installs it)")
		}
		t.Skip("no chromium")
	}
	return &browser{t: t, path: path, dir: t.TempDir()}
}

func (b *browser) run(args ...string) string {
	b.t.Helper()
	// The page's console goes to stderr. The page writes nothing there: a
	// message is an error thrown, or a request the page's Content Security
	// Policy refused (nothing may leave the page).
	cmd := exec.Command(b.path, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--enable-logging=stderr", "--v=0", "--user-data-dir=" + filepath.Join(b.dir, "profile")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("chromium %v: %v", args, err)
	}
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			b.t.Errorf("chromium %v: the page's console says %s", args, line)
		}
	}
	return string(out)
}

// selfTest is what the page writes into #selftest when opened with
// #selftest: what its charts and list drew, and how long that took.
type selfTest struct {
	OpenMs     float64 `json:"open_ms"`
	ReadMs     float64 `json:"read_ms"`
	ParsedMs   float64 `json:"parsed_ms"`
	PreparedMs float64 `json:"prepared_ms"`
	Charts     map[string]struct {
		Counts map[string]int `json:"counts"`
		Rects  int            `json:"rects"`
		Total  *int           `json:"total"`
	} `json:"charts"`
	Legend        [][2]string `json:"legend"`
	SysctlsFirst  []string    `json:"sysctls_first"`
	SysctlsFolded int         `json:"sysctls_folded"`
	Click         *struct {
		Filter string `json:"filter"`
		Shown  int    `json:"shown"`
	} `json:"click"`
	Filters []struct {
		Q     string  `json:"q"`
		Ms    float64 `json:"ms"`
		Shown int     `json:"shown"`
		Rows  int     `json:"rows"`
	} `json:"filters"`
	RowsInDOM int `json:"rows_in_dom"`
	Scrolled  struct {
		Want, Got string
		Rows      int
	} `json:"scrolled"`
	TW *struct {
		Cookie     uint64     `json:"cookie"`
		Before     [2]float64 `json:"before"`
		Zoomed     [2]float64 `json:"zoomed"`
		Log        [2]float64 `json:"log"`
		Wheeled    [2]float64 `json:"wheeled"`
		Dragged    [2]float64 `json:"dragged"`
		EndEvent   string     `json:"end_event"`
		Hatch      string     `json:"hatch"`
		HatchColor string     `json:"hatch_color"`
	} `json:"tw"`
	Width     float64 `json:"width"`
	OverflowX float64 `json:"overflow_x"`
}

var selfTestElement = regexp.MustCompile(`(?s)<pre id="selftest">(.*?)</pre>`)

// selfTest opens a report with #selftest in a window this wide, and reads
// what the page found.
func (b *browser) selfTest(page string, width int) selfTest {
	b.t.Helper()
	dom := b.run(fmt.Sprintf("--window-size=%d,900", width), "--dump-dom", "file://"+page+"#selftest")
	m := selfTestElement.FindStringSubmatch(dom)
	if m == nil || m[1] == "" {
		b.t.Fatalf("%s: no self-test results in the page", page)
	}
	var st selfTest
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &st); err != nil {
		b.t.Fatalf("%s: self-test results %q: %v", page, m[1], err)
	}
	return st
}

func writeReport(t *testing.T, rec *record.Recording, path, title string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, rec, title); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// eachEvent is a renderer that passes each event a replay writes to a
// function, at once: the pipeline may reuse an event once it is rendered.
type eachEvent func(events.Event)

func (f eachEvent) Event(ev events.Event) error { f(ev); return nil }
func (f eachEvent) Stats(render.Stats) error    { return nil }
func (f eachEvent) Flush() error                { return nil }

func replayEach(t *testing.T, rec *record.Recording, f func(events.Event)) {
	t.Helper()
	if err := replay.Play(rec, replay.Config{Renderer: eachEvent(f), FullFindings: true, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
}

// The TIME_WAIT age histogram's bins, as the page labels them: decades of
// milliseconds, up to the 60 s TIME_WAIT lasts.
var ageBins = []struct {
	label string
	below float64
}{{"<0.1 ms", 0.1}, {"0.1-1 ms", 1}, {"1-10 ms", 10}, {"10-100 ms", 100},
	{"0.1-1 s", 1000}, {"1-10 s", 10000}, {"10-60 s", 60000}, {">=60 s", math.Inf(1)}}

// overview is what the overview charts must count, worked out here from
// the events a replay of the recording writes.
type overview struct {
	socketsIn  map[string]int // by state, "tw:" before a TIME_WAIT socket's substates
	twSockets  int
	ends       map[string]int // TIME_WAIT ends by cause
	ages       map[string]int // by ageBins label
	findings   map[string]int // by kind
	withKind   map[string]int // sockets with a finding of the kind
	legend     []string       // the kinds drawn: states and marks
	twCookie   uint64         // a socket whose TIME_WAIT ended, and its cause
	twCause    string
	keepalives uint64          // a socket that sent keepalive probes
	twSocket   uint64          // a socket that had a TIME_WAIT socket
	quoted     map[string]bool // the sysctls findings quoted
}

func expectOverview(t *testing.T, rec *record.Recording) overview {
	t.Helper()
	o := overview{socketsIn: map[string]int{}, ends: map[string]int{}, ages: map[string]int{}, findings: map[string]int{}, withKind: map[string]int{}, quoted: map[string]bool{}}
	for _, b := range ageBins {
		o.ages[b.label] = 0
	}
	states, marks := map[uint64]map[string]bool{}, map[string]bool{}
	kinds := map[uint64]map[string]bool{}
	tw := map[uint64]bool{}
	replayEach(t, rec, func(ev events.Event) {
		cookie := ev.Head().Cookie
		if markLabel(ev) != "" {
			marks[string(ev.Type())] = true
		}
		switch e := ev.(type) {
		case *events.Summary:
			for _, p := range e.History {
				key := string(p.State)
				if p.Timewait {
					key, tw[cookie], o.twSocket = "tw:"+key, true, cookie
				}
				if states[cookie] == nil {
					states[cookie] = map[string]bool{}
				}
				states[cookie][key] = true
			}
		case *events.TimewaitEnd:
			o.ends[string(e.Cause)]++
			if o.twCookie == 0 {
				o.twCookie, o.twCause = cookie, string(e.Cause)
			}
			if e.AgeKnown {
				age := float64(e.Age.Microseconds()) / 1000
				for _, b := range ageBins {
					if age < b.below {
						o.ages[b.label]++
						break
					}
				}
			}
		case *events.Finding:
			o.findings[string(e.Kind)]++
			if kinds[cookie] == nil {
				kinds[cookie] = map[string]bool{}
			}
			kinds[cookie][string(e.Kind)] = true
			for name := range e.Sysctls {
				o.quoted[name] = true
			}
		case *events.KeepaliveProbe:
			o.keepalives = cookie
		}
	})
	for _, keys := range states {
		for k := range keys {
			o.socketsIn[k]++
		}
	}
	for _, ks := range kinds {
		for k := range ks {
			o.withKind[k]++
		}
	}
	o.twSockets = len(tw)
	present := map[string]bool{}
	for _, keys := range states {
		maps.Copy(present, keys)
	}
	maps.Copy(present, marks)
	o.legend = slices.Sorted(maps.Keys(present))
	return o
}

// legendKind turns a legend entry's words back into its kind.
func legendKind(words string) string {
	if sub, ok := strings.CutSuffix(words, " (TIME_WAIT socket)"); ok {
		return "tw:" + sub
	}
	return words
}

// TestInBrowser opens reports of recordings in headless Chromium: the
// overview charts count what the recording holds (worked out here from a
// replay's events), a chart's bar filters the list, zoom narrows a
// TIME_WAIT story's timeline, its event list tells how its TIME_WAIT
// ended, the TIME_WAIT band is hatched, the legend has the kinds present
// only, each in its own colour, nothing widens the page, and the page
// neither throws nor makes a request (its console stays empty). Then it
// takes the screenshots people look at: set TCPTRACE_REPORT_SCREENSHOTS to
// keep them in that directory.
func TestInBrowser(t *testing.T) {
	b := newBrowser(t)
	dir := t.TempDir()
	for _, name := range []string{"TestTimewaitSynAccepted", "TestTimewaitConnectReuse", "TestTimewaitRST_tcp_rfc1337_0",
		"TestKeepalive", "TestCloseShapes_four_segments_seen", "TestZeroWindow_TCP_USER_TIMEOUT_3000"} {
		t.Run(name, func(t *testing.T) {
			b.t = t
			rec := golden(t, name)
			want := expectOverview(t, rec)
			page := filepath.Join(dir, name+".html")
			writeReport(t, rec, page, name)
			got := b.selfTest(page, 1400)
			checkOverview(t, got, want)
			checkLegend(t, got, want)
			for name := range want.quoted {
				if !slices.Contains(got.SysctlsFirst, name) {
					t.Errorf("%s, quoted by a finding, is not among the first sysctls %v", name, got.SysctlsFirst)
				}
			}
			if len(got.SysctlsFirst) > 0 && got.SysctlsFolded == 0 {
				t.Errorf("no sysctls folded away; all came first: %v", got.SysctlsFirst)
			}
			if got.OverflowX != 0 {
				t.Errorf("the page is %v px wider than the window: a horizontal scrollbar", got.OverflowX)
			}
			if got.RowsInDOM == 0 {
				t.Error("no socket rows drawn")
			}
			if want.twCookie != 0 {
				checkTimewaitStory(t, got, want)
			}
			if narrow := b.selfTest(page, 800); narrow.OverflowX != 0 || narrow.Width > 800 {
				t.Errorf("in a window 800 px wide, the page is %v px wide and %v px wider", narrow.Width, narrow.OverflowX)
			}
		})
	}

	shots := os.Getenv("TCPTRACE_REPORT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	b.t = t
	story := filepath.Join(dir, "TestTimewaitSynAccepted.html")
	twStory := expectOverview(t, golden(t, "TestTimewaitSynAccepted"))
	keepalive := expectOverview(t, golden(t, "TestKeepalive"))
	substates := expectOverview(t, golden(t, "TestCloseShapes_four_segments_seen"))
	for _, shot := range []struct{ file, url string }{
		{"overview.png", "file://" + story},
		{"timewait-story.png", fmt.Sprintf("file://%s#socket=%d&log=1&zoom=1.5&at=0.2&event=timewait_end", story, twStory.twCookie)},
		{"keepalive.png", fmt.Sprintf("file://%s#socket=%d", filepath.Join(dir, "TestKeepalive.html"), keepalive.keepalives)},
		{"timewait-substates.png", fmt.Sprintf("file://%s#socket=%d&log=1", filepath.Join(dir, "TestCloseShapes_four_segments_seen.html"), substates.twSocket)},
	} {
		path := filepath.Join(shots, shot.file)
		b.run("--window-size=1400,1600", "--screenshot="+path, shot.url)
		if st, err := os.Stat(path); err != nil || st.Size() < 10000 {
			t.Errorf("screenshot %s: %v", path, err)
		}
		t.Logf("screenshot: %s", path)
	}
	storyLink := fmt.Sprintf("file://%s#socket=%d&log=1&zoom=1.5&at=0.2&event=timewait_end", story, twStory.twCookie)
	dom := b.run("--window-size=1400,1600", "--dump-dom", storyLink+"&measure")
	var where struct{ Track [4]float64 }
	if m := selfTestElement.FindStringSubmatch(dom); m == nil || json.Unmarshal([]byte(html.UnescapeString(m[1])), &where) != nil {
		t.Fatalf("%s: the track's place is not in the page", storyLink)
	}
	checkHatchPixels(t, filepath.Join(shots, "timewait-story.png"), where.Track)
}

func checkOverview(t *testing.T, got selfTest, want overview) {
	t.Helper()
	for id, counts := range map[string]map[string]int{"chart-states": want.socketsIn, "chart-ends": want.ends,
		"chart-findings": want.findings} {
		chart, ok := got.Charts[id]
		if !ok {
			t.Errorf("no %s chart", id)
			continue
		}
		if !maps.Equal(chart.Counts, counts) {
			t.Errorf("%s counts %v, the recording holds %v", id, chart.Counts, counts)
		}
		if len(counts) > 0 && chart.Rects == 0 {
			t.Errorf("%s draws no bars", id)
		}
	}
	if ages := got.Charts["chart-ages"].Counts; len(want.ends) > 0 && !maps.Equal(ages, want.ages) {
		t.Errorf("TIME_WAIT ages %v, the recording holds %v", ages, want.ages)
	}
	if tw := got.Charts["chart-tw"]; tw.Total == nil || *tw.Total != want.twSockets || (want.twSockets > 0 && tw.Rects == 0) {
		t.Errorf("TIME_WAIT sockets alive: %d bars, total %s; the recording has %d", tw.Rects, jsonText(tw.Total), want.twSockets)
	}
	if len(want.findings)+len(want.ends) > 0 {
		// The self-test clicked the first bar of the findings (else the
		// ends) chart: the list shows that bar's sockets.
		if got.Click == nil {
			t.Fatal("no bar clicked")
		}
		kind, isFinding := strings.CutPrefix(got.Click.Filter, "finding=")
		cause, isCause := strings.CutPrefix(got.Click.Filter, "cause=")
		switch {
		case isFinding && got.Click.Shown != want.withKind[kind]:
			t.Errorf("clicking %s lists %d sockets, %d have it", kind, got.Click.Shown, want.withKind[kind])
		case isCause && (got.Click.Shown == 0 || got.Click.Shown > want.ends[cause]):
			t.Errorf("clicking %s lists %d sockets, %d TIME_WAIT sockets ended so", cause, got.Click.Shown, want.ends[cause])
		case !isFinding && !isCause:
			t.Errorf("clicking a bar set the filter to %q", got.Click.Filter)
		}
	}
}

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

func checkLegend(t *testing.T, got selfTest, want overview) {
	t.Helper()
	var kinds []string
	colours := map[string]string{}
	for _, entry := range got.Legend {
		kind := legendKind(entry[0])
		kinds = append(kinds, kind)
		if other, ok := colours[entry[1]]; ok {
			t.Errorf("%s and %s share the colour %s", other, kind, entry[1])
		}
		colours[entry[1]] = kind
	}
	if slices.Sort(kinds); !slices.Equal(kinds, want.legend) {
		t.Errorf("legend %v, the recording has %v", kinds, want.legend)
	}
}

func checkTimewaitStory(t *testing.T, got selfTest, want overview) {
	t.Helper()
	tw := got.TW
	if tw == nil {
		t.Fatalf("no TIME_WAIT story opened; socket %d has one", want.twCookie)
	}
	span := func(r [2]float64) float64 { return r[1] - r[0] }
	if s := span(tw.Zoomed); math.Abs(s-span(tw.Before)/4) > span(tw.Before)*0.01 || tw.Zoomed[0] < tw.Before[0] || tw.Zoomed[1] > tw.Before[1] {
		t.Errorf("zoom by 4 shows %v of %v", tw.Zoomed, tw.Before)
	}
	if math.Abs(tw.Log[0]-tw.Zoomed[0]) > 1e-6*span(tw.Before)+1e-9 || math.Abs(tw.Log[1]-tw.Zoomed[1]) > 1e-6*span(tw.Before)+1e-9 {
		t.Errorf("log time shows %v, linear %v: the range should stay", tw.Log, tw.Zoomed)
	}
	// The wheel zooms in by 1.25 about the middle; dragging a tenth of the
	// track to the right shows what was a tenth of the range earlier.
	if s := span(tw.Wheeled); math.Abs(s-span(tw.Zoomed)/1.25) > span(tw.Zoomed)*0.01 {
		t.Errorf("the wheel shows %v of %v", tw.Wheeled, tw.Zoomed)
	}
	if shift := tw.Wheeled[0] - tw.Dragged[0]; math.Abs(shift-span(tw.Wheeled)/10) > span(tw.Wheeled)*0.01 || math.Abs(span(tw.Dragged)-span(tw.Wheeled)) > span(tw.Wheeled)*0.01 {
		t.Errorf("dragging a tenth of the track shows %v, before %v", tw.Dragged, tw.Wheeled)
	}
	if !strings.Contains(tw.EndEvent, "timewait_end") || !strings.Contains(tw.EndEvent, "cause\t"+want.twCause) {
		t.Errorf("the TIME_WAIT story's event list tells %q; want its end, cause %s", tw.EndEvent, want.twCause)
	}
	if !strings.Contains(tw.Hatch, "gradient") || tw.HatchColor == "" || tw.HatchColor == "rgba(0, 0, 0, 0)" {
		t.Errorf("TIME_WAIT band: background-image %q, colour %q; want hatching on its colour", tw.Hatch, tw.HatchColor)
	}
}

// checkHatchPixels finds the TIME_WAIT colour and its hatching's lighter
// stripes in a screenshot, within the socket's track (left, top, width,
// height): without the hatching the lighter one is absent.
func checkHatchPixels(t *testing.T, path string, track [4]float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// #393b79, and 60% white over it.
	base, stripe := [3]float64{0x39, 0x3b, 0x79}, [3]float64{}
	for i, c := range base {
		stripe[i] = 0.6*255 + 0.4*c
	}
	near := func(r, g, b uint32, c [3]float64) bool {
		return math.Abs(float64(r>>8)-c[0]) < 8 && math.Abs(float64(g>>8)-c[1]) < 8 && math.Abs(float64(b>>8)-c[2]) < 8
	}
	var bases, stripes int
	for y := int(track[1]); y < int(track[1]+track[3]); y++ {
		for x := int(track[0]); x < int(track[0]+track[2]); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, g, b, base) {
				bases++
			} else if near(r, g, b, stripe) {
				stripes++
			}
		}
	}
	if bases < 200 || stripes < 200 {
		t.Errorf("%s: in the track at %v, %d pixels of TIME_WAIT's colour, %d of its hatching; want both", path, track, bases, stripes)
	}
}

// TestInBrowserEmpty: a recording of no sockets makes a page that says so,
// without an error.
func TestInBrowserEmpty(t *testing.T) {
	b := newBrowser(t)
	rec, err := replay.Load(synthetic(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "empty.html")
	writeReport(t, rec, page, "empty")
	got := b.selfTest(page, 1400)
	checkOverview(t, got, expectOverview(t, rec))
	if got.RowsInDOM != 0 || got.OverflowX != 0 {
		t.Errorf("%d rows drawn, %v px too wide; want none, none", got.RowsInDOM, got.OverflowX)
	}
}

// TestInBrowserManySockets: a report of 100,000 sockets, half of them
// then TIME_WAIT sockets, opens, and filters, within a few seconds, keeps
// only the rows in sight in the page, and its overview counts them all.
func TestInBrowserManySockets(t *testing.T) {
	b := newBrowser(t)
	if testing.Short() {
		t.Skip("100,000 sockets take a while to make")
	}
	const n = 100000
	rec, err := replay.Load(synthetic(t, n))
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "many.html")
	start := time.Now()
	writeReport(t, rec, page, "many")
	st, err := os.Stat(page)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report of %d sockets: %.1f MB, written in %v", n, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	got := b.selfTest(page, 1400)
	t.Logf("opened in %.0f ms (read %.0f, data parsed %.0f, prepared %.0f); filters: %+v", got.OpenMs, got.ReadMs, got.ParsedMs, got.PreparedMs, got.Filters)
	if got.OpenMs > 5000 {
		t.Errorf("opening took %.0f ms, want < 5 s", got.OpenMs)
	}
	want := expectOverview(t, rec)
	if want.socketsIn["SYN_SENT"] != n || want.twSockets != n/2 {
		t.Fatalf("the synthetic recording has %d sockets, %d with TIME_WAIT; want %d, %d", want.socketsIn["SYN_SENT"], want.twSockets, n, n/2)
	}
	checkOverview(t, got, want)
	checkTimewaitStory(t, got, want)
	if len(got.Filters) != 3 || got.Filters[0].Shown == 0 || got.Filters[1].Shown == 0 || got.Filters[2].Shown != n {
		t.Errorf("filters %+v: want an address's socket, then those in its first state, then all", got.Filters)
	}
	if got.Scrolled.Got != got.Scrolled.Want || got.Scrolled.Rows > 100 {
		t.Errorf("scrolled to the middle, the first row in sight is socket %s of %d rows drawn, want socket %s", got.Scrolled.Got, got.Scrolled.Rows, got.Scrolled.Want)
	}
	for _, f := range got.Filters {
		if f.Ms > 2000 || got.OpenMs+f.Ms > 5000 {
			t.Errorf("filter %q took %.0f ms", f.Q, f.Ms)
		}
		if f.Rows > 100 {
			t.Errorf("filter %q: %d rows in the page; want only those in sight", f.Q, f.Rows)
		}
	}
}
