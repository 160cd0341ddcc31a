//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package decode

// hostLittleEndian says that this host does not share the records' byte
// order: it decodes them field by field.
const hostLittleEndian = false
