// Package bpf holds tcptrace's BPF programs and the Go bindings bpf2go
// generates from them. The generated files are committed so that building
// tcptrace needs no clang; `make generate` rebuilds them.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event Tcptrace tcptrace.bpf.c
