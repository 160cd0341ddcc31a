//go:build linux

package main

import "testing"

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
