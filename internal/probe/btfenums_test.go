package probe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tcptrace/tcptrace/internal/privtest"
)

func TestAnonymousEnums(t *testing.T) {
	u32 := &btf.Int{Name: "u32", Size: 4}
	states := &btf.Enum{Size: 4, Signed: true, Values: []btf.EnumValue{
		{Name: "TCP_ESTABLISHED", Value: 1}, {Name: "TCP_SYN_SENT", Value: 2}, {Name: "NEGATIVE", Value: 0xffffffffffffffff},
	}}
	wide := &btf.Enum{Size: 8, Values: []btf.EnumValue{{Name: "WIDE_LOW", Value: 1}, {Name: "WIDE_HIGH", Value: 1 << 40}}}
	proto := &btf.FuncProto{Return: u32, Params: []btf.FuncParam{{Name: "a", Type: u32}, {Name: "b", Type: u32}}}
	// Its tag is a type of its own (BTF_KIND_DECL_TAG).
	global := &btf.Var{Name: "global", Type: u32, Linkage: btf.GlobalVar, Tags: []string{"decl"}}
	// Every kind of type, so that the walk has to step over each; the named
	// enum also holds an enumerator asked for, and must be passed over.
	types := []btf.Type{
		u32,
		&btf.Pointer{Target: u32},
		&btf.Array{Index: u32, Type: u32, Nelems: 4},
		&btf.Struct{Name: "pair", Size: 8, Members: []btf.Member{{Name: "a", Type: u32}, {Name: "b", Type: u32, Offset: 32}}},
		&btf.Union{Name: "either", Size: 4, Members: []btf.Member{{Name: "a", Type: u32}, {Name: "b", Type: u32}}},
		&btf.Enum{Name: "named", Size: 4, Values: []btf.EnumValue{{Name: "TCP_ESTABLISHED", Value: 9}}},
		&btf.Fwd{Name: "later"},
		&btf.Typedef{Name: "u32_t", Type: u32},
		&btf.Volatile{Type: u32},
		&btf.Const{Type: u32},
		&btf.Restrict{Type: &btf.Pointer{Target: u32}},
		&btf.Func{Name: "f", Type: proto, Linkage: btf.GlobalFunc},
		global,
		&btf.Datasec{Name: ".data", Size: 4, Vars: []btf.VarSecinfo{{Type: global, Size: 4}}},
		&btf.Float{Name: "double", Size: 8},
		&btf.TypeTag{Value: "tag", Type: u32},
		states,
		wide,
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := anonymousEnums(raw, "TCP_ESTABLISHED", "WIDE_HIGH", "ABSENT")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]btf.EnumValue{"TCP_ESTABLISHED": states.Values, "WIDE_HIGH": wide.Values}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("anonymousEnums = %v, want %v", got, want)
	}

	// The same from a file, raw and as a vmlinux image's .BTF section.
	dir := t.TempDir()
	for name, content := range map[string][]byte{"raw": raw, "elf": elfWithBTF(t, raw)} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := fileAnonymousEnums(path, "TCP_ESTABLISHED", "WIDE_HIGH", "ABSENT")
		if err != nil {
			t.Errorf("%s file: %v", name, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s file: %v, want %v", name, got, want)
		}
	}

	if _, err := anonymousEnums([]byte("\x7fELF not BTF at all, but long enough")); err == nil {
		t.Error("not BTF: no error")
	}
	truncated := append([]byte(nil), raw...)
	truncated[12]++ // the type section runs one byte past the end of the types
	if _, err := anonymousEnums(truncated, "ABSENT"); err == nil {
		t.Error("truncated type: no error")
	}
}

// elfWithBTF makes a little-endian ELF file whose only section is .BTF.
func elfWithBTF(t *testing.T, raw []byte) []byte {
	const headerSize, sectionHeaderSize = 64, 64
	names := []byte("\x00.BTF\x00.shstrtab\x00")
	dataEnd := headerSize + len(raw) + len(names)
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_BPF), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(dataEnd), Ehsize: headerSize, Shentsize: sectionHeaderSize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: headerSize, Size: uint64(len(raw)), Addralign: 4},
		{Name: 6, Type: uint32(elf.SHT_STRTAB), Off: uint64(headerSize + len(raw)), Size: uint64(len(names)), Addralign: 1},
	}
	var b bytes.Buffer
	for _, part := range []any{&hdr, raw, names, sections} {
		if err := binary.Write(&b, binary.LittleEndian, part); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestKernelAnonymousEnums checks the raw walk against decoding every type
// of the running kernel's BTF.
func TestKernelAnonymousEnums(t *testing.T) {
	if _, err := os.Stat(DefaultBTFPath); err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("the full suite needs kernel BTF:", err)
		}
		t.Skip("no kernel BTF:", err)
	}
	enumerators := []string{"TCP_ESTABLISHED", "LINUX_MIB_TCPKEEPALIVE"}
	got, err := fileAnonymousEnums(DefaultBTFPath, enumerators...)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]btf.EnumValue{}
	for typ, err := range spec.All() {
		if err != nil {
			t.Fatal(err)
		}
		enum, ok := typ.(*btf.Enum)
		if !ok || enum.Name != "" {
			continue
		}
		for _, v := range enum.Values {
			for _, e := range enumerators {
				if v.Name == e {
					want[e] = enum.Values
				}
			}
		}
	}
	if len(want["TCP_ESTABLISHED"]) == 0 {
		t.Fatal("no anonymous enum with TCP_ESTABLISHED in kernel BTF")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("raw walk found %v, decoding %v", got, want)
	}
}

// TestKernelSymbols checks the BPF symbol lookup against /proc/kallsyms.
func TestKernelSymbols(t *testing.T) {
	privtest.RequireRoot(t)
	names := []string{"tw_timer_handler", "tcp_keepalive_timer", "tcp_write_timer"}
	got, err := lookupSymbols(names...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := kallsyms("/proc/kallsyms", names...)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lookupSymbols = %x, /proc/kallsyms %x", got, want)
	}
	if _, err := lookupSymbols("no_such_symbol_in_any_kernel"); err == nil {
		t.Error("missing symbol: no error")
	}
}
