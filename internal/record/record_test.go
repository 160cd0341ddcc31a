package record

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

func sample(t *testing.T) ([]byte, []Item) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Kernel: "6.18", Names: decode.Names{HZ: 250, States: map[uint8]events.State{1: "ESTABLISHED"}}, RecordSize: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	snap := sysctl.Snapshot{Values: []sysctl.Value{{Sysctl: sysctl.Known[0], Raw: "2", Present: true}, {Sysctl: sysctl.Known[1]}}}
	tick := time.Unix(100, 5)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Rec([]byte{1, 2, 3, 4}))
	must(w.Sysctls(7, snap))
	must(w.Tick(tick))
	must(w.NetnsGone(7, true))
	must(w.Lost(3))
	must(w.Rec([]byte{5, 6, 7, 8}))
	must(w.Sync(tick))
	must(w.Close(End{UnixNs: 200, DurationNs: 100, Lost: 3}))
	raw := "2"
	want := []Item{
		{Rec: []byte{1, 2, 3, 4}},
		{Sysctls: &Sysctls{Netns: 7, Values: map[string]*string{string(sysctl.Known[0].Name): &raw, string(sysctl.Known[1].Name): nil}}},
		{Tick: tick},
		{NetnsGone: &NetnsGone{Netns: 7, Gone: true}},
		{Lost: 3},
		{Rec: []byte{5, 6, 7, 8}},
		{End: &End{UnixNs: 200, DurationNs: 100, Lost: 3}},
	}
	return buf.Bytes(), want
}

func TestRoundTrip(t *testing.T) {
	data, want := sample(t)
	rec, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Partial || rec.Header.Format != Format || rec.Header.Version != Version || rec.Header.HZ != 250 {
		t.Errorf("header %+v, partial %v", rec.Header, rec.Partial)
	}
	if !reflect.DeepEqual(rec.Items, want) {
		t.Errorf("items\n%+v\nwant\n%+v", rec.Items, want)
	}
	snap := rec.Items[1].Sysctls.Snapshot()
	if v, _ := snap.Lookup(sysctl.Known[0].Name); !v.Present || v.Raw != "2" {
		t.Errorf("snapshot %+v", v)
	}
	if v, _ := snap.Lookup(sysctl.Known[1].Name); v.Present {
		t.Errorf("absent sysctl came back present: %+v", v)
	}
}

// A recording cut anywhere (a crash, a full disk) reads up to its last
// complete line, never fails and never invents.
func TestTruncated(t *testing.T) {
	data, want := sample(t)
	readable := false // once the header is in, every longer cut reads
	for cut := 0; cut < len(data); cut++ {
		rec, err := Read(bytes.NewReader(data[:cut]))
		if err != nil {
			if readable || !errors.Is(err, ErrNotRecording) {
				t.Fatalf("cut at %d of %d: %v", cut, len(data), err)
			}
			continue
		}
		readable = true
		if len(rec.Items) > 0 && !reflect.DeepEqual(rec.Items, want[:len(rec.Items)]) {
			t.Fatalf("cut at %d: items %+v are no prefix of the recording", cut, rec.Items)
		}
		if !rec.Partial && len(rec.Items) != len(want) {
			t.Fatalf("cut at %d: not partial, yet %d of %d items", cut, len(rec.Items), len(want))
		}
	}
}

func TestForeign(t *testing.T) {
	gz := func(text string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(text))
		w.Close()
		return b.Bytes()
	}
	for name, data := range map[string][]byte{
		"plain text":      []byte("hello\n"),
		"empty":           nil,
		"gzip, not ours":  gz("{\"format\":\"other\"}\n"),
		"gzip, not JSON":  gz("PK\x03\x04\n"),
		"gzip, no header": gz(""),
	} {
		if _, err := Read(bytes.NewReader(data)); !errors.Is(err, ErrNotRecording) {
			t.Errorf("%s: %v, want ErrNotRecording", name, err)
		}
	}
	newer := gz(`{"format":"tcptrace-record","version":99}` + "\n")
	if _, err := Read(bytes.NewReader(newer)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer version: %v", err)
	}
	// The kernel's names are read back as the decoder takes them, or the
	// recording is refused, saying why.
	for _, table := range []string{`"states":{"ESTABLISHED":"1"}`, `"states":{"300":"CLOSE"}`, `"tw_verdicts":{"-1":"ACK"}`} {
		broken := gz(`{"format":"tcptrace-record","version":1,` + table + "}\n")
		if _, err := Read(bytes.NewReader(broken)); err == nil || errors.Is(err, ErrNotRecording) || !strings.HasPrefix(err.Error(), "header: ") {
			t.Errorf("header with %s: %v, want a header error", table, err)
		}
	}
	bad := gz(`{"format":"tcptrace-record","version":1}` + "\n" + `{"rec":"AQ==","tick":5}` + "\n")
	if _, err := Read(bytes.NewReader(bad)); err == nil {
		t.Error("a line with two things in it was accepted")
	}
}

func FuzzRead(f *testing.F) {
	data, _ := sample(&testing.T{})
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte("not a recording"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Read(bytes.NewReader(data))
		if err == nil && rec == nil {
			t.Fatal("no recording and no error")
		}
	})
}

// TestRotate: at its size limit a recording with keep > 0 moves to .1 (the
// older ones up, the oldest past keep removed) and goes on in a new file;
// each file is a whole recording, and a later one holds, before its first
// record, the cgroups, sysctls and loss that its records need.
func TestRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.tcptrace.gz")
	start := time.Unix(1000, 0)
	w, err := Create(path, Header{Created: start, Kernel: "6.18", RecordSize: 4}, 1, 2) // 1 byte: every Sync rotates
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	snap := sysctl.Snapshot{Values: []sysctl.Value{{Sysctl: sysctl.Known[0], Raw: "2", Present: true}}}
	must(w.Cgroup(Cgroup{ID: 9, Path: "/system.slice/docker-abc.scope"}))
	must(w.Sysctls(7, snap))
	must(w.Lost(3))
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second) }
	for i := 1; i <= 3; i++ {
		must(w.Rec([]byte{byte(i), 0, 0, 0}))
		must(w.Sync(at(i)))
		if w.Rotations() != i {
			t.Fatalf("after %d syncs past the limit, %d rotations", i, w.Rotations())
		}
	}
	must(w.Rec([]byte{4, 0, 0, 0}))
	must(w.Close(End{UnixNs: at(4).UnixNano(), Lost: 3}))
	if _, err := os.Stat(path + ".3"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.3 kept with keep 2: %v", path, err)
	}
	for _, f := range []struct {
		suffix  string
		rec     byte
		created time.Time
		rotated bool
	}{{".2", 2, at(1), true}, {".1", 3, at(2), true}, {"", 4, at(3), false}} {
		file, err := os.Open(path + f.suffix)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Read(file)
		file.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.suffix, err)
		}
		items := rec.Items
		if rec.Partial || len(items) != 5 || !rec.Header.Created.Equal(f.created) || rec.Header.Kernel != "6.18" {
			t.Fatalf("file%s: partial %v, created %v, %d items %+v; want whole, created %v, 5 items", f.suffix, rec.Partial, rec.Header.Created, len(items), items, f.created)
		}
		if items[0].Cgroup == nil || items[0].Cgroup.ID != 9 || items[1].Sysctls == nil || items[1].Sysctls.Netns != 7 || items[2].Lost != 3 {
			t.Errorf("file%s does not start with the cgroup, sysctls and loss: %+v", f.suffix, items[:3])
		}
		if !bytes.Equal(items[3].Rec, []byte{f.rec, 0, 0, 0}) || items[4].End == nil || items[4].End.Rotated != f.rotated || items[4].End.Lost != 3 {
			t.Errorf("file%s: %+v %+v; want record %d and an end, rotated %v", f.suffix, items[3], items[4].End, f.rec, f.rotated)
		}
	}
}

// TestStopAtLimit: without keep, the size limit stops the recording and
// the end line says so.
func TestStopAtLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.tcptrace.gz")
	w, err := Create(path, Header{RecordSize: 4}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Rec([]byte{1, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(End{}); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	rec, err := Read(file)
	if err != nil || w.Rotations() != 0 || len(rec.Items) != 1 || rec.Items[0].End == nil || !rec.Items[0].End.Truncated {
		t.Errorf("read %v, items %+v; want only a truncated end", err, rec.Items)
	}
}
