package bpf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestEventLayoutMatchesObject checks that the committed Go event struct and
// the committed BPF object agree on every field's name, offset and size, so a
// stale generated file cannot silently misread records.
func TestEventLayoutMatchesObject(t *testing.T) {
	spec, err := LoadTcptrace()
	if err != nil {
		t.Fatal(err)
	}
	var cEvent *btf.Struct
	if err := spec.Types.TypeByName("event", &cEvent); err != nil {
		t.Fatalf("object has no struct event: %v", err)
	}
	goEvent := reflect.TypeFor[TcptraceEvent]()
	if uintptr(cEvent.Size) != goEvent.Size() {
		t.Fatalf("struct event is %d bytes in C, %d in Go", cEvent.Size, goEvent.Size())
	}
	var goFields []reflect.StructField
	for f := range goEvent.Fields() {
		if f.Name != "_" {
			goFields = append(goFields, f)
		}
	}
	if len(goFields) != len(cEvent.Members) {
		t.Fatalf("struct event has %d members in C, %d in Go", len(cEvent.Members), len(goFields))
	}
	for i, m := range cEvent.Members {
		f := goFields[i]
		if want := camel(m.Name); f.Name != want {
			t.Errorf("member %d: C %s, Go %s (want %s)", i, m.Name, f.Name, want)
		}
		if off := m.Offset.Bytes(); uintptr(off) != f.Offset {
			t.Errorf("%s: offset %d in C, %d in Go", m.Name, off, f.Offset)
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if uintptr(size) != f.Type.Size() {
			t.Errorf("%s: %d bytes in C, %d in Go", m.Name, size, f.Type.Size())
		}
	}
}

// camel converts a C member name the way bpf2go does: ts_ns -> TsNs.
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}
