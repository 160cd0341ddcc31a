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
	"time"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

// Format and Version name the format in every recording's first line.
const (
	Format  = "tcptrace-record"
	Version = 1
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
	cw := &countingWriter{w: w}
	gz := gzip.NewWriter(cw)
	rw := &Writer{counted: cw, gz: gz, bw: bufio.NewWriterSize(gz, 256<<10), maxSize: maxSize}
	h.Format, h.Version = Format, Version
	if err := rw.writeJSON(h); err != nil {
		return nil, err
	}
	return rw, nil
}

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
	return w.writeLine(line{Sysctls: &Sysctls{Netns: netns, Values: values}})
}

// NetnsGone records the answer to whether a namespace was gone.
func (w *Writer) NetnsGone(netns uint32, gone bool) error {
	return w.writeLine(line{NetnsGone: &NetnsGone{Netns: netns, Gone: gone}})
}

// Cgroup records what a cgroup id resolved to.
func (w *Writer) Cgroup(c Cgroup) error { return w.writeLine(line{Cgroup: &c}) }

// Lost records the count of lost records when it grows.
func (w *Writer) Lost(n uint64) error { return w.writeLine(line{Lost: n}) }

// Sync makes what was recorded so far readable, should the run crash, and
// stops the recording when it has reached its size limit.
func (w *Writer) Sync() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.gz.Flush(); err != nil {
		return err
	}
	if w.maxSize > 0 && w.counted.n >= w.maxSize {
		w.full = true
	}
	return nil
}

// Close writes the end line and closes the compressed stream (not w's file).
func (w *Writer) Close(end End) error {
	end.Truncated = w.full
	w.full = false
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
