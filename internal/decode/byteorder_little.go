//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package decode

// hostLittleEndian says that this host shares the records' byte order (the
// GOARCHes are those of bpf2go's bpfel target), so it reads them in place.
const hostLittleEndian = true
