package bpf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tcptrace/tcptrace/bpf/layout"
)

// TestEventLayoutMatchesObject checks that the Go event struct the decoder
// reads records with and the committed BPF object agree on every field's
// name, offset and size, nested structs included, so that a stale generated
// file cannot silently misread records.
func TestEventLayoutMatchesObject(t *testing.T) {
	spec, err := LoadTcptrace()
	if err != nil {
		t.Fatal(err)
	}
	for name, goType := range map[string]reflect.Type{
		"event":         reflect.TypeFor[layout.TcptraceEvent](),
		"tcp_handshake": reflect.TypeFor[layout.TcptraceTcpHandshake](),
		"tcp_counters":  reflect.TypeFor[layout.TcptraceTcpCounters](),
	} {
		var c *btf.Struct
		if err := spec.Types.TypeByName(name, &c); err != nil {
			t.Fatalf("object has no struct %s: %v", name, err)
		}
		compareStruct(t, name, c, goType)
	}
}

func compareStruct(t *testing.T, name string, c *btf.Struct, goType reflect.Type) {
	t.Helper()
	if uintptr(c.Size) != goType.Size() {
		t.Fatalf("struct %s is %d bytes in C, %d in Go", name, c.Size, goType.Size())
	}
	var goFields []reflect.StructField
	for f := range goType.Fields() {
		if f.Name != "_" {
			goFields = append(goFields, f)
		}
	}
	if len(goFields) != len(c.Members) {
		t.Fatalf("struct %s has %d members in C, %d in Go", name, len(c.Members), len(goFields))
	}
	for i, m := range c.Members {
		f := goFields[i]
		path := name + "." + m.Name
		if want := camel(m.Name); f.Name != want {
			t.Errorf("%s: member %d is %s in Go, want %s", name, i, f.Name, want)
		}
		if off := m.Offset.Bytes(); uintptr(off) != f.Offset {
			t.Errorf("%s: offset %d in C, %d in Go", path, off, f.Offset)
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if uintptr(size) != f.Type.Size() {
			t.Errorf("%s: %d bytes in C, %d in Go", path, size, f.Type.Size())
		}
		if nested, ok := btf.UnderlyingType(m.Type).(*btf.Struct); ok {
			compareStruct(t, path, nested, f.Type)
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
