//go:build linux

package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/probe"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("load: %w", probe.ErrNotPrivileged), "run it with sudo"},
		{fmt.Errorf("%w: /sys/kernel/btf/vmlinux: missing", probe.ErrNoBTF), "CONFIG_DEBUG_INFO_BTF=y"},
		{fmt.Errorf("%w: map type", probe.ErrNoRingBuffer), "needs Linux 5.12 or newer"},
		{fmt.Errorf("hook x: %w: gone", probe.ErrHookMissing), "run 'tcptrace features'"},
		{fmt.Errorf("%w: no bpf_get_socket_cookie", probe.ErrKernelTooOld), "needs Linux 5.12 or newer"},
		{errors.New("something else"), "something else"},
	}
	for _, tt := range tests {
		if got := explain(tt.err); !strings.Contains(got, tt.want) || strings.Contains(got, "\n") {
			t.Errorf("explain(%v) = %q, want one line with %q", tt.err, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "512K": 512 << 10, "4M": 4 << 20, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "4T", "9999999G"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}
