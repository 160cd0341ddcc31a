//go:build linux

package tracer

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/tcptrace/tcptrace/bpf/layout"
	"github.com/tcptrace/tcptrace/internal/decode"
)

// Records laid end to end are passed one by one, a tail included where the
// record says it has one; bytes too short for a record are passed too (to be
// counted as undecodable), never dropped.
func TestEachRecord(t *testing.T) {
	kind := func(typ, tail byte) []byte {
		rec := make([]byte, decode.MinRecordSize)
		rec[unsafe.Offsetof(layout.TcptraceEvent{}.Type)], rec[unsafe.Offsetof(layout.TcptraceEvent{}.Tail)] = typ, tail
		return append(rec, make([]byte, decode.Size(rec)-len(rec))...)
	}
	plain := kind(byte(layout.TcptraceEventTypeEVENT_RETRANSMIT), 0)
	state := kind(byte(layout.TcptraceEventTypeEVENT_STATE), 0)
	tailed := kind(byte(layout.TcptraceEventTypeEVENT_DESTROY), byte(layout.TcptraceRecordTailTAIL_COUNTERS))
	recs := slices.Concat(plain, tailed, state, plain, []byte{1, 2, 3})
	var sizes []int
	if err := eachRecord(recs, func(rec []byte) error { sizes = append(sizes, len(rec)); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int{len(plain), len(tailed), len(state), len(plain), 3}; !slices.Equal(sizes, want) || len(tailed) == len(plain) || len(state) == len(plain) {
		t.Errorf("records of %v bytes, want %v", sizes, want)
	}
}
