// Package bpf holds tcptrace's BPF programs and the Go bindings bpf2go
// generates from them. The generated files are committed so that building
// tcptrace needs no clang; `make generate` rebuilds them.
//
// Only the record layout (struct event and its enums) is generated as Go
// types, and layoutgen copies it into package layout, which pure Go reads
// records with on any GOARCH; this package, the loader, links cilium/ebpf
// and builds only where the embedded little-endian object runs.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -no-global-types -type event -type event_type -type record_tail -type record_length -type handshake_option -type tcp_handshake -type tcp_counters -type event_flag -type tcp_timer_kind -type tw_flag -type close_flag Tcptrace tcptrace.bpf.c
//go:generate go run ../scripts/layoutgen -o layout/tcptrace.go tcptrace_bpfel.go
//go:generate clang -O2 -g -fdebug-compilation-dir=. -Wall -Werror -target bpfel -c testdata/helpers.bpf.c -o testdata/helpers_bpfel.o
//go:generate llvm-strip -g testdata/helpers_bpfel.o
