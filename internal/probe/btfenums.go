package probe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// BTF type kinds (BTF_KIND_* in linux/btf.h).
const (
	btfKindInt = iota + 1
	btfKindPtr
	btfKindArray
	btfKindStruct
	btfKindUnion
	btfKindEnum
	btfKindFwd
	btfKindTypedef
	btfKindVolatile
	btfKindConst
	btfKindRestrict
	btfKindFunc
	btfKindFuncProto
	btfKindVar
	btfKindDatasec
	btfKindFloat
	btfKindDeclTag
	btfKindTypeTag
	btfKindEnum64
)

// btfMagic opens raw BTF, in the byte order of the machine that wrote it.
const btfMagic = 0xeb9f

// fileAnonymousEnums is anonymousEnums on the BTF in the file at path: raw
// BTF, as /sys/kernel/btf/vmlinux is, or a vmlinux ELF image's .BTF section.
// The kernel's own BTF is mapped, not copied, where the kernel allows it
// (copying its 5 MB costs some 7 ms).
func fileAnonymousEnums(path string, enumerators ...string) (map[string][]btf.EnumValue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	raw, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err == nil {
		defer unix.Munmap(raw)
	} else if raw, err = os.ReadFile(path); err != nil {
		return nil, err
	}
	if bytes.HasPrefix(raw, []byte(elf.ELFMAG)) {
		image, err := elf.NewFile(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		section := image.Section(".BTF")
		if section == nil {
			return nil, errors.New("ELF file without a .BTF section")
		}
		if raw, err = section.Data(); err != nil {
			return nil, fmt.Errorf("read .BTF section: %w", err)
		}
	}
	return anonymousEnums(raw, enumerators...)
}

// anonymousEnums finds in raw BTF the anonymous enums that hold the named
// enumerators, and returns each enum's values by the enumerator named. Such
// enums have no name to look them up by, and decoding every type to find
// them (btf.Spec.All) costs 20-30 ms of start-up; this walk over the raw
// type records, reading only anonymous enums, about 1 ms.
func anonymousEnums(raw []byte, enumerators ...string) (map[string][]btf.EnumValue, error) {
	bo := binary.NativeEndian
	const headerLen = 24 // magic, version, flags, hdr_len, then offsets and lengths of types and strings
	if len(raw) < headerLen || bo.Uint16(raw) != btfMagic {
		return nil, errors.New("not raw BTF in this machine's byte order")
	}
	section := func(off, length uint32) ([]byte, error) {
		start := uint64(bo.Uint32(raw[4:])) + uint64(off)
		if start+uint64(length) > uint64(len(raw)) {
			return nil, errors.New("BTF section out of bounds")
		}
		return raw[start : start+uint64(length)], nil
	}
	types, err := section(bo.Uint32(raw[8:]), bo.Uint32(raw[12:]))
	if err != nil {
		return nil, err
	}
	strs, err := section(bo.Uint32(raw[16:]), bo.Uint32(raw[20:]))
	if err != nil {
		return nil, err
	}
	name := func(off uint32) ([]byte, error) {
		if off >= uint32(len(strs)) {
			return nil, fmt.Errorf("BTF string offset %d out of bounds", off)
		}
		s := strs[off:]
		if end := bytes.IndexByte(s, 0); end >= 0 {
			return s[:end], nil
		}
		return nil, fmt.Errorf("BTF string at %d not terminated", off)
	}

	found := map[string][]btf.EnumValue{}
	for off := 0; off < len(types) && len(found) < len(enumerators); {
		// struct btf_type: name_off, info (vlen, kind, kind_flag), size or type.
		if off+12 > len(types) {
			return nil, errors.New("BTF type truncated")
		}
		nameOff, info := bo.Uint32(types[off:]), bo.Uint32(types[off+4:])
		kind, vlen, kindFlag := info>>24&0x1f, int(info&0xffff), info>>31 == 1
		off += 12
		// What follows the record: a fixed part, then vlen entries.
		fixed, entry := 0, 0
		switch kind {
		case btfKindInt, btfKindVar, btfKindDeclTag:
			fixed = 4
		case btfKindArray:
			fixed = 12
		case btfKindStruct, btfKindUnion, btfKindDatasec, btfKindEnum64:
			entry = 12
		case btfKindEnum, btfKindFuncProto:
			entry = 8
		case btfKindPtr, btfKindFwd, btfKindTypedef, btfKindVolatile, btfKindConst, btfKindRestrict,
			btfKindFunc, btfKindFloat, btfKindTypeTag:
		default:
			return nil, fmt.Errorf("unknown BTF kind %d", kind)
		}
		end := off + fixed + entry*vlen
		if end > len(types) {
			return nil, errors.New("BTF type truncated")
		}
		if (kind == btfKindEnum || kind == btfKindEnum64) && nameOff == 0 {
			entries := types[off:end]
			// Names are compared as bytes first: most anonymous enums are
			// not wanted, and making strings of all their names costs.
			var wanted []string
			for e := entries; len(e) > 0; e = e[entry:] {
				n, err := name(bo.Uint32(e))
				if err != nil {
					return nil, err
				}
				if i := slices.IndexFunc(enumerators, func(s string) bool { return string(n) == s }); i >= 0 {
					wanted = append(wanted, enumerators[i])
				}
			}
			if len(wanted) > 0 {
				values := make([]btf.EnumValue, 0, vlen)
				for e := entries; len(e) > 0; e = e[entry:] {
					n, _ := name(bo.Uint32(e)) // checked above
					v := btf.EnumValue{Name: string(n), Value: uint64(bo.Uint32(e[4:]))}
					if kind == btfKindEnum64 {
						v.Value |= uint64(bo.Uint32(e[8:])) << 32
					} else if kindFlag {
						v.Value = uint64(int32(v.Value)) // signed: sign-extended, as package btf does
					}
					values = append(values, v)
				}
				for _, w := range wanted {
					found[w] = values
				}
			}
		}
		off = end
	}
	return found, nil
}
