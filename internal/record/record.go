// Package record writes and reads tcptrace recordings: everything a live
// run saw and asked (kernel records, the answers of the system, the passing
// of time), so that a replay runs the same pipeline to the same output.
// docs/record.md documents the format.
package record

import (
	"bufio"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Format and Version name the format in every recording's first line.
const (
	Format  = "tcptrace-record"
	Version = 2
)

// Header is a recording's first line.
type Header struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Created    time.Time `json:"created"`
	Kernel     string    `json:"kernel"`
	BootUnixNs int64     `json:"boot_unix_ns"` // when the kernel's monotonic clock read zero
	RecordSize int       `json:"record_size"`
	// The kernel's enum names and tick rate: "hz", "states",
	// "reset_reasons", "tw_verdicts".
	decode.Names
	Hooks []Hook   `json:"hooks"`
	Args  []string `json:"args"` // the command line
	// The run's port filters (--port, --lport, --rport), which a replay
	// applies too: the kernel passes some events of other ports (see
	// pipeline.Filter).
	Ports       []uint16 `json:"ports,omitempty"`
	LocalPorts  []uint16 `json:"local_ports,omitempty"`
	RemotePorts []uint16 `json:"remote_ports,omitempty"`
}

// Hook is one kernel hook of the recording run and how it was attached.
type Hook struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Program string `json:"program,omitempty"`
	Error   string `json:"error,omitempty"`
}

// line is every other line: exactly one field is set.
type line struct {
	Rec       []byte     `json:"rec,omitempty"`  // a ring-buffer record (bpf/event.h, little-endian)
	Tick      int64      `json:"tick,omitempty"` // time passed: Unix ns
	Sysctls   *Sysctls   `json:"sysctls,omitempty"`
	NetnsGone *NetnsGone `json:"netns_gone,omitempty"`
	Cgroup    *Cgroup    `json:"cgroup,omitempty"`
	Lost      uint64     `json:"lost,omitempty"` // records lost so far
	End       *End       `json:"end,omitempty"`
}

// Sysctls is a namespace's sysctls as the run read them.
type Sysctls struct {
	Netns  uint32             `json:"netns"`
	Values map[string]*string `json:"values"` // nil: the kernel has no such sysctl
}

// NetnsGone is the run's answer to whether a namespace was gone.
type NetnsGone struct {
	Netns uint32 `json:"netns"`
	Gone  bool   `json:"gone"`
}

// Cgroup is what the run resolved a cgroup id to: its path, and the pod
// the node named (the rest is read from the path again).
type Cgroup struct {
	ID           uint64 `json:"id"`
	Path         string `json:"path"`
	Pod          string `json:"pod,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
}

// End is the last line of a recording that ended cleanly.
type End struct {
	UnixNs     int64  `json:"unix_ns"` // when tracing ended
	DurationNs int64  `json:"duration_ns"`
	Lost       uint64 `json:"lost"`
	// Lost by kind of record and by CPU, where the recording says.
	LostByKind map[string]uint64 `json:"lost_by_kind,omitempty"`
	LostByCPU  []uint64          `json:"lost_by_cpu,omitempty"`
	Truncated  bool              `json:"truncated,omitempty"`        // --record-max-size stopped the recording early
	Rotated    bool              `json:"rotated,omitempty"`          // the size limit ended this file, and the recording went on in a new one
	QueuePeak  int64             `json:"queue_peak_bytes,omitempty"` // how far behind the output was at most
}

// Writer writes a recording. Not safe for concurrent use.
type Writer struct {
	counted *countingWriter
	gz      *gzip.Writer
	bw      *bufio.Writer
	maxSize int64
	full    bool
	buf     []byte

	// A recording to a file that rotates (Create with keep > 0) starts a
	// new file at the size limit, with the header again and the answers
	// that later records need: the newest sysctls of each namespace, the
	// cgroups resolved, the records lost so far.
	file      *os.File // nil: the caller's writer, never rotated
	path      string
	keep      int
	header    Header
	rotations int
	sysctls   map[uint32][]byte // the newest sysctls line of each namespace
	cgroups   map[uint64][]byte // every cgroup line
	lost      uint64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewWriter starts a recording on w, stopping it once about maxSize bytes
// are written (0: no limit).
func NewWriter(w io.Writer, h Header, maxSize int64) (*Writer, error) {
	rw := &Writer{maxSize: maxSize, sysctls: map[uint32][]byte{}, cgroups: map[uint64][]byte{}}
	h.Format, h.Version = Format, Version
	rw.header = h
	rw.start(w)
	if err := rw.writeJSON(h); err != nil {
		return nil, err
	}
	return rw, nil
}

// Create starts a recording in the file at path. Once about maxSize bytes
// are written (0: no limit) it stops, or with keep > 0 rotates: path
// becomes path.1 (path.1 path.2, and so on up to path.<keep>, the oldest
// removed), each a whole recording that replays on its own, and the
// recording goes on in a new file at path.
func Create(path string, h Header, maxSize int64, keep int) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, h, maxSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file, w.path, w.keep = f, path, keep
	return w, nil
}

// start begins the compressed stream on w.
func (w *Writer) start(out io.Writer) {
	w.counted = &countingWriter{w: out}
	if w.gz == nil {
		w.gz = gzip.NewWriter(w.counted)
		w.bw = bufio.NewWriterSize(w.gz, 256<<10)
		return
	}
	w.gz.Reset(w.counted)
	w.bw.Reset(w.gz)
}

// Rotations tells how many times the recording moved to a new file.
func (w *Writer) Rotations() int { return w.rotations }

// Full tells whether the size limit stopped the recording.
func (w *Writer) Full() bool { return w.full }

// Rec records one ring-buffer record.
func (w *Writer) Rec(rec []byte) error {
	if w.full {
		return nil
	}
	b := append(w.buf[:0], `{"rec":"`...)
	b = base64.StdEncoding.AppendEncode(b, rec)
	b = append(b, "\"}\n"...)
	w.buf = b
	_, err := w.bw.Write(b)
	return err
}

// Tick records that the pipeline was told the time.
func (w *Writer) Tick(now time.Time) error {
	return w.writeLine(line{Tick: now.UnixNano()})
}

// Sysctls records a namespace's sysctls as the pipeline got them.
func (w *Writer) Sysctls(netns uint32, snap sysctl.Snapshot) error {
	values := map[string]*string{}
	for _, v := range snap.Values {
		if v.Present {
			raw := v.Raw
			values[string(v.Name)] = &raw
		} else {
			values[string(v.Name)] = nil
		}
	}
	b, err := json.Marshal(line{Sysctls: &Sysctls{Netns: netns, Values: values}})
	if err != nil {
		return err
	}
	w.sysctls[netns] = b
	return w.writeRaw(b)
}

// NetnsGone records the answer to whether a namespace was gone.
func (w *Writer) NetnsGone(netns uint32, gone bool) error {
	return w.writeLine(line{NetnsGone: &NetnsGone{Netns: netns, Gone: gone}})
}

// Cgroup records what a cgroup id resolved to.
func (w *Writer) Cgroup(c Cgroup) error {
	b, err := json.Marshal(line{Cgroup: &c})
	if err != nil {
		return err
	}
	w.cgroups[c.ID] = b
	return w.writeRaw(b)
}

// Lost records the count of lost records when it grows.
func (w *Writer) Lost(n uint64) error {
	w.lost = n
	return w.writeLine(line{Lost: n})
}

// Sync makes what was recorded so far readable, should the run crash. At
// the size limit it stops the recording, or rotates it; now is the time
// the rotated file ends and the new one begins.
func (w *Writer) Sync(now time.Time) error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.gz.Flush(); err != nil {
		return err
	}
	if w.maxSize == 0 || w.counted.n < w.maxSize || w.full {
		return nil
	}
	if w.keep == 0 || w.file == nil {
		w.full = true
		return nil
	}
	if err := w.rotate(now); err != nil {
		return fmt.Errorf("rotate %s: %w", w.path, err)
	}
	return nil
}

// rotate ends the file at path as a whole recording, moves it to path.1
// (and the older ones up), and starts a new recording at path.
func (w *Writer) rotate(now time.Time) error {
	end := End{UnixNs: now.UnixNano(), DurationNs: int64(now.Sub(w.header.Created)), Lost: w.lost, Rotated: true}
	if err := w.closeStream(end); err != nil {
		return err
	}
	if err := w.file.Close(); err != nil {
		return err
	}
	for i := w.keep - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return err
	}
	f, err := os.Create(w.path)
	if err != nil {
		return err
	}
	w.file = f
	w.rotations++
	w.start(f)
	w.header.Created = now
	if err := w.writeJSON(w.header); err != nil {
		return err
	}
	// What a replay of this file alone needs to answer as the run was
	// answered: the cgroups, the sysctls in force, the loss so far.
	for _, id := range slices.Sorted(maps.Keys(w.cgroups)) {
		if err := w.writeRaw(w.cgroups[id]); err != nil {
			return err
		}
	}
	for _, netns := range slices.Sorted(maps.Keys(w.sysctls)) {
		if err := w.writeRaw(w.sysctls[netns]); err != nil {
			return err
		}
	}
	if w.lost > 0 {
		return w.writeLine(line{Lost: w.lost})
	}
	return nil
}

// Close writes the end line and closes the compressed stream, and the
// file if Create made it.
func (w *Writer) Close(end End) error {
	end.Truncated = w.full
	w.full = false
	if err := w.closeStream(end); err != nil {
		return err
	}
	if w.file != nil {
		return w.file.Close()
	}
	return nil
}

// closeStream writes the end line and closes the compressed stream.
func (w *Writer) closeStream(end End) error {
	if err := w.writeLine(line{End: &end}); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.gz.Close()
}

func (w *Writer) writeLine(l line) error {
	if w.full {
		return nil
	}
	return w.writeJSON(l)
}

func (w *Writer) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.bw.Write(append(b, '\n')); err != nil {
		return err
	}
	return nil
}

// writeRaw writes a line already encoded, unless the recording is full.
func (w *Writer) writeRaw(b []byte) error {
	if w.full {
		return nil
	}
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	return w.bw.WriteByte('\n')
}

// Item is one thing a recording holds after its header, in order.
type Item struct {
	Rec       []byte
	Tick      time.Time
	Sysctls   *Sysctls
	NetnsGone *NetnsGone
	Cgroup    *Cgroup
	Lost      uint64
	End       *End
}

// Recording is a whole recording read back.
type Recording struct {
	Header Header
	Items  []Item
	// Partial: the recording stops without its end line (the run was
	// killed, or the file was cut); Items hold all its complete lines.
	Partial bool
}

// ErrNotRecording is returned for a file that is no tcptrace recording.
var ErrNotRecording = errors.New("not a tcptrace recording")

// Read reads a recording, up to its last complete line.
func Read(r io.Reader) (*Recording, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w (not gzip-compressed: %w)", ErrNotRecording, err)
	}
	gz.Multistream(false)
	br := bufio.NewReaderSize(gz, 256<<10)
	first, err := br.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("%w (no header line: %w)", ErrNotRecording, err)
	}
	rec := &Recording{}
	err = json.Unmarshal(first, &rec.Header)
	if rec.Header.Format != Format {
		return nil, fmt.Errorf("%w (its first line is no tcptrace header)", ErrNotRecording)
	}
	if err != nil { // a table of the kernel's names that is not one
		return nil, fmt.Errorf("header: %w", err)
	}
	if rec.Header.Version > Version {
		return nil, fmt.Errorf("the recording's format version %d is newer than this tcptrace reads (%d): use a newer tcptrace",
			rec.Header.Version, Version)
	}
	for {
		text, err := br.ReadBytes('\n')
		if len(text) > 0 && text[len(text)-1] == '\n' {
			item, perr := parseLine(text)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", len(rec.Items)+2, perr)
			}
			rec.Items = append(rec.Items, item)
			if item.End != nil {
				return rec, nil
			}
		}
		if err != nil {
			// io.EOF before the end line, or a cut compressed stream.
			rec.Partial = true
			return rec, nil
		}
	}
}

func parseLine(text []byte) (Item, error) {
	var l line
	if err := json.Unmarshal(text, &l); err != nil {
		return Item{}, fmt.Errorf("not a recording line: %w", err)
	}
	item := Item{Rec: l.Rec, Sysctls: l.Sysctls, NetnsGone: l.NetnsGone, Cgroup: l.Cgroup, Lost: l.Lost, End: l.End}
	if l.Tick != 0 {
		item.Tick = time.Unix(0, l.Tick)
	}
	set := 0
	for _, b := range []bool{l.Rec != nil, l.Tick != 0, l.Sysctls != nil, l.NetnsGone != nil, l.Cgroup != nil, l.Lost != 0, l.End != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return Item{}, fmt.Errorf("a recording line holds exactly one thing, this one %d", set)
	}
	return item, nil
}

// Snapshot turns recorded sysctls back into a snapshot.
func (s *Sysctls) Snapshot() sysctl.Snapshot {
	snap := sysctl.Snapshot{Netns: uint64(s.Netns)}
	for _, known := range sysctl.Known {
		v := sysctl.Value{Sysctl: known}
		if raw, ok := s.Values[string(known.Name)]; ok && raw != nil {
			v.Raw, v.Present = *raw, true
		}
		snap.Values = append(snap.Values, v)
	}
	return snap
}
