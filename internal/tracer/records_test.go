//go:build linux

package tracer

import (
	"slices"
	"testing"

	"github.com/tcptrace/tcptrace/internal/decode"
)

// Records laid end to end are passed one by one, a tail included where the
// record says it has one; bytes too short for a record are passed too (to be
// counted as undecodable), never dropped.
func TestEachRecord(t *testing.T) {
	plain := make([]byte, decode.RecordSize)
	tailed := make([]byte, decode.RecordSize)
	tailed[decode.RecordSizeBeforeTails] = 2 // TAIL_COUNTERS
	tailed = append(tailed, make([]byte, decode.Size(tailed)-decode.RecordSize)...)
	recs := slices.Concat(plain, tailed, plain, []byte{1, 2, 3})
	var sizes []int
	if err := eachRecord(recs, func(rec []byte) error { sizes = append(sizes, len(rec)); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int{decode.RecordSize, len(tailed), decode.RecordSize, 3}; !slices.Equal(sizes, want) || len(tailed) == decode.RecordSize {
		t.Errorf("records of %v bytes, want %v", sizes, want)
	}
}
