//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/sysctl"
)

func fakeSnapshot() sysctl.Snapshot {
	return sysctl.Snapshot{Netns: 4026531840, Values: []sysctl.Value{
		{Sysctl: sysctl.Sysctl{Name: "net.ipv4.tcp_fin_timeout", Description: "FIN_WAIT2 wait"}, Raw: "60", Present: true},
		{Sysctl: sysctl.Sysctl{Name: "net.ipv4.tcp_tw_recycle", Description: "gone", RemovedIn: "4.12"}},
		{Sysctl: sysctl.Sysctl{Name: "net.ipv4.tcp_rto_max_ms", Description: "RTO cap"}},
		{Sysctl: sysctl.Sysctl{Name: "net.ipv4.tcp_odd", Description: "odd"}, Raw: "4096\t8192", Present: true},
	}}
}

func TestSysctlValueText(t *testing.T) {
	want := []string{"60", "absent (removed in Linux 4.12)", "absent on this kernel", "4096 8192"}
	for i, v := range fakeSnapshot().Values {
		if got := sysctlValueText(v); got != want[i] {
			t.Errorf("%s: %q, want %q", v.Name, got, want[i])
		}
	}
}

func TestWriteSysctlsText(t *testing.T) {
	var out bytes.Buffer
	if err := writeSysctlsText(&out, fakeSnapshot()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if lines[0] != "network namespace 4026531840" || !strings.HasPrefix(lines[1], "SYSCTL") {
		t.Fatalf("output does not start with the namespace and a header:\n%s", out.String())
	}
	for i, v := range fakeSnapshot().Values {
		line := lines[2+i]
		if !strings.HasPrefix(line, string(v.Name)+" ") || !strings.Contains(line, sysctlValueText(v)) || !strings.HasSuffix(line, v.Description) {
			t.Errorf("line %q, want name, value and description of %s", line, v.Name)
		}
	}
}

func TestWriteSysctlsJSON(t *testing.T) {
	var out bytes.Buffer
	if err := writeSysctlsJSON(&out, fakeSnapshot()); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"sysctls","netns":4026531840,"values":{"net.ipv4.tcp_fin_timeout":60,"net.ipv4.tcp_odd":"4096\t8192","net.ipv4.tcp_rto_max_ms":null,"net.ipv4.tcp_tw_recycle":null}}` + "\n"
	if out.String() != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}
}

func TestSysctlUsageErrors(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--pid", "abc"}, `invalid --pid "abc": must be a process id`},
		{[]string{"-p", "0"}, `invalid --pid "0": must be a process id`},
		{[]string{"--pid="}, `invalid --pid "": must be a process id`},
		{[]string{"--pid", "999999999"}, "invalid --pid 999999999: no such process"},
		{[]string{"--pid", "1", "--netns", "/run/netns/x"}, "--pid and --netns exclude each other"},
		{[]string{"--netns", "/nonexistent/netns"}, "--netns /nonexistent/netns: no such file"},
		{[]string{"--netns", regular}, "is not a network namespace file"},
		{[]string{"--netns", "/proc/self/ns/uts"}, "is not a network namespace file"},
		{[]string{"--netns", "1"}, "--netns 1: no process or /run/netns file is in that network namespace"},
		{[]string{"-o", "yaml"}, `invalid --output "yaml": use text or json`},
		{[]string{"extra"}, `sysctl takes no arguments, got "extra"`},
		{[]string{"--bogus"}, "unknown flag: --bogus (see tcptrace sysctl --help)"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runCLI(t, append([]string{"sysctl"}, tt.args...)...)
		if code != exitUsage || !strings.HasPrefix(stderr, "tcptrace: ") || !strings.Contains(stderr, tt.want) ||
			strings.Count(stderr, "\n") != 1 || stdout != "" {
			t.Errorf("sysctl %q: exit %d, stderr %q; want exit %d and one line with %q", tt.args, code, stderr, exitUsage, tt.want)
		}
	}
}

// tcptrace's own namespace needs no privileges, so this runs anywhere.
func TestSysctlOwnNetns(t *testing.T) {
	text, stderr, code := runCLI(t, "sysctl")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, want := strings.Count(text, "\n"), 2+len(sysctl.Known); got != want {
		t.Errorf("%d lines, want %d (namespace, header, one per sysctl):\n%s", got, want, text)
	}
	if !strings.Contains(text, "net.ipv4.tcp_tw_recycle") || !strings.Contains(text, "absent (removed in Linux 4.12)") {
		t.Errorf("tcp_tw_recycle is not reported as removed:\n%s", text)
	}

	out, stderr, code := runCLI(t, "sysctl", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Type   string
		Netns  uint64
		Values map[string]any
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Type != "sysctls" || got.Netns == 0 || len(got.Values) != len(sysctl.Known) {
		t.Errorf("unexpected JSON: %s", out)
	}
	if v, ok := got.Values["net.ipv4.tcp_tw_recycle"]; !ok || v != nil {
		t.Errorf("tcp_tw_recycle = %v, want null", v)
	}
	if _, ok := got.Values["net.ipv4.tcp_fin_timeout"].(float64); !ok {
		t.Errorf("tcp_fin_timeout = %v, want a number", got.Values["net.ipv4.tcp_fin_timeout"])
	}
}
