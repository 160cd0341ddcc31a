// Package layout is the record layout tcptrace's BPF programs write to the
// ring buffer: struct event and its enums from bpf/event.h, as bpf2go
// generates them, copied out of package bpf by layoutgen (`make generate`).
// Unlike package bpf it holds no loader and no object, links no
// cilium/ebpf and builds on every GOARCH, so that decoding and everything
// after it is pure Go.
//
// Records are little-endian whatever the host: the object is built for
// bpfel.
package layout
