// Package rollup keeps repeated findings short. On a busy server the same
// finding comes for thousands of sockets, each with the same paragraph and
// sysctl table: the first of a network namespace is written in full, the
// next ones like it name it (see, count) and keep only their own facts, and
// every Interval of trace time a finding_summary counts each kind. It works
// on the findings the pipeline writes, after explain, so a replay writes
// what the live run wrote.
package rollup

import (
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/tcptrace/tcptrace/internal/events"
)

// Interval is how much trace time a finding_summary counts.
const Interval = 10 * time.Second

// maxRepeatable bounds the findings remembered as told in full: past it (on
// a host that makes network namespaces without end) all are forgotten, and
// the next of each is told in full again. A variable for the tests.
var maxRepeatable = 1 << 14

// Rollup numbers findings, makes repeats short, and counts them. Not safe
// for concurrent use.
type Rollup struct {
	full   bool
	lastID uint64
	kinds  map[namespaceKind]*kindState
	// told is how many findings all kinds' told maps hold.
	told int
	// The interval being counted, [start, end), and the kinds with
	// findings in it, in the order of their first.
	start, end time.Time
	counted    []*kindState
	// Scratch space: a finding's words, and the addresses they mask.
	words, local, remote []byte
}

type namespaceKind struct {
	netns uint32
	kind  events.FindingKind
}

// kindState is what the findings of one kind in one namespace left.
type kindState struct {
	namespaceKind
	// told holds the findings told in full, by their words with the
	// socket's own facts masked (see appendWords).
	told map[string]*toldFinding
	// In the interval being counted: how many, and the first one's socket.
	count         uint64
	exampleCookie uint64
}

// toldFinding is a finding told in full, and how many like it came since.
type toldFinding struct {
	id      uint64
	count   uint64
	sysctls map[string]any
}

// New returns a roll-up; full numbers the findings but leaves them whole,
// and counts nothing.
func New(full bool) *Rollup {
	return &Rollup{full: full, kinds: map[namespaceKind]*kindState{}}
}

// Finding numbers f and, when it repeats a finding told in full, makes it
// short, in place: See and Count set, Message and Sysctls left out. It
// repeats one when it has the same kind, namespace and sysctl values, and
// the same words but for its own addresses and numbers. A finding whose
// sysctls differ from those of the last one told in full is told in full
// again: the settings in force changed.
func (r *Rollup) Finding(f *events.Finding) {
	r.lastID++
	f.ID = r.lastID
	if r.full {
		return
	}
	ks := r.kindState(f.Netns, f.Kind)
	if ks.count == 0 {
		ks.exampleCookie = f.Cookie
		r.counted = append(r.counted, ks)
	}
	ks.count++

	r.local = f.Local.Addr().AppendTo(r.local[:0])
	r.remote = f.Remote.Addr().AppendTo(r.remote[:0])
	r.words = appendWords(r.words[:0], f.Message, r.local, r.remote)
	told, ok := ks.told[string(r.words)]
	if ok && maps.EqualFunc(told.sysctls, f.Sysctls, reflect.DeepEqual) {
		told.count++
		f.See, f.Count, f.Message, f.Sysctls = told.id, told.count, "", nil
		return
	}
	if !ok {
		if r.told == maxRepeatable {
			r.forget()
		}
		told = &toldFinding{}
		ks.told[string(r.words)] = told
		r.told++
	}
	*told = toldFinding{id: f.ID, count: 1, sysctls: f.Sysctls}
}

// forget drops the findings told in full, and the kinds with none counted
// in this interval.
func (r *Rollup) forget() {
	for key, ks := range r.kinds {
		if ks.count == 0 {
			delete(r.kinds, key)
		} else {
			clear(ks.told)
		}
	}
	r.told = 0
}

func (r *Rollup) kindState(netns uint32, kind events.FindingKind) *kindState {
	key := namespaceKind{netns, kind}
	ks, ok := r.kinds[key]
	if !ok {
		ks = &kindState{namespaceKind: key, told: map[string]*toldFinding{}}
		r.kinds[key] = ks
	}
	return ks
}

// Due tells whether Advance(now) would return summaries.
func (r *Rollup) Due(now time.Time) bool { return len(r.counted) > 0 && !now.Before(r.end) }

// Advance lets trace time pass: at an interval's end the summaries of the
// findings written in it, one per namespace and kind that had any.
func (r *Rollup) Advance(now time.Time) []*events.FindingSummary {
	if r.end.IsZero() { // the first time seen starts the first interval
		r.start, r.end = now, now.Truncate(Interval).Add(Interval)
	}
	if now.Before(r.end) {
		return nil
	}
	sums := r.summaries(r.end)
	r.start = now.Truncate(Interval)
	r.end = r.start.Add(Interval)
	return sums
}

// Finish returns the summaries of the findings written since the last,
// at the end of the trace.
func (r *Rollup) Finish(now time.Time) []*events.FindingSummary {
	return append(r.Advance(now), r.summaries(now)...)
}

// summaries counts the interval's findings up to at, and starts over.
func (r *Rollup) summaries(at time.Time) []*events.FindingSummary {
	if len(r.counted) == 0 {
		return nil
	}
	sums := make([]*events.FindingSummary, 0, len(r.counted))
	for _, ks := range r.counted {
		sums = append(sums, &events.FindingSummary{Header: events.Header{Time: at, Netns: ks.netns}, Kind: ks.kind,
			Since: r.start, Count: ks.count, ExampleCookie: ks.exampleCookie})
		ks.count = 0
	}
	r.counted = r.counted[:0]
	return sums
}

// appendWords appends msg with the socket's own facts masked: its
// addresses (local, remote: in whatever form the message writes them, with
// or without the port) by '@', each number, and a duration's unit with it
// ("13ms", "1.5s", "416 ms"), by '#'. Two findings of a kind with the same
// words then say the same but for their sockets' facts, which their
// evidence holds.
func appendWords(dst []byte, msg string, local, remote []byte) []byte {
	for i := 0; i < len(msg); {
		switch {
		case hasPrefix(msg[i:], local):
			dst, i = append(dst, '@'), i+len(local)
		case hasPrefix(msg[i:], remote):
			dst, i = append(dst, '@'), i+len(remote)
		case isDigit(msg[i]):
			dst, i = append(dst, '#'), numberEnd(msg, i)
		default: // up to where a number or an address may start
			j := i + 1
			for j < len(msg) && !isDigit(msg[j]) && !startsWith(local, msg[j]) && !startsWith(remote, msg[j]) {
				j++
			}
			dst, i = append(dst, msg[i:j]...), j
		}
	}
	return dst
}

func hasPrefix(s string, prefix []byte) bool {
	return len(prefix) > 0 && len(s) >= len(prefix) && s[:len(prefix)] == string(prefix)
}

func startsWith(b []byte, c byte) bool { return len(b) > 0 && b[0] == c }

// durationUnits are the units Go's and tcptrace's durations are written
// with, those with a space (HumanDuration) and the longer first.
var durationUnits = []string{" ms", " s", "ns", "us", "µs", "ms", "s", "m", "h"}

// numberEnd returns where the number starting at msg[i] ends, with its
// decimals and a duration's units ("1m0.5s").
func numberEnd(msg string, i int) int {
	for i < len(msg) {
		switch c := msg[i]; {
		case isDigit(c):
			i++
		case c == '.' && i+1 < len(msg) && isDigit(msg[i+1]):
			i++
		default:
			unit := unitAt(msg[i:])
			if unit == 0 {
				return i
			}
			i += unit
		}
	}
	return i
}

// unitAt returns the length of the duration unit s starts with, a whole
// word's end, or 0.
func unitAt(s string) int {
	for _, u := range durationUnits {
		if strings.HasPrefix(s, u) && (len(s) == len(u) || !isLetter(s[len(u)])) {
			return len(u)
		}
	}
	return 0
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
