//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
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
		if !strings.HasPrefix(line, v.Name+" ") || !strings.Contains(line, sysctlValueText(v)) || !strings.HasSuffix(line, v.Description) {
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

func TestRunSysctlUsageErrors(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--pid", "abc"}, `invalid --pid "abc": must be a process id`},
		{[]string{"--pid", "0"}, `invalid --pid "0": must be a process id`},
		{[]string{"--pid="}, `invalid --pid "": must be a process id`},
		{[]string{"--pid", "999999999"}, "invalid --pid 999999999: no such process"},
		{[]string{"--pid", "1", "--netns", "/run/netns/x"}, "--pid and --netns exclude each other"},
		{[]string{"--netns", "/nonexistent/netns"}, "--netns /nonexistent/netns: no such file"},
		{[]string{"--netns", regular}, "is not a network namespace file"},
		{[]string{"--netns", "/proc/self/ns/uts"}, "is not a network namespace file"},
		{[]string{"--netns", "1"}, "--netns 1: no process or /run/netns file is in that network namespace"},
		{[]string{"-o", "yaml"}, `invalid --output "yaml": use text or json`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		err := runSysctl(tt.args, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.msg, tt.want) || strings.Contains(ue.msg, "\n") {
			t.Errorf("runSysctl(%q) = %v, want a one-line usage error with %q", tt.args, err, tt.want)
		}
	}
}

// tcptrace's own namespace needs no privileges, so this runs anywhere.
func TestRunSysctlOwnNetns(t *testing.T) {
	var text bytes.Buffer
	if err := runSysctl(nil, &text); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(text.String(), "\n"), 2+len(sysctl.Known); got != want {
		t.Errorf("%d lines, want %d (namespace, header, one per sysctl):\n%s", got, want, text.String())
	}
	if !strings.Contains(text.String(), "net.ipv4.tcp_tw_recycle") || !strings.Contains(text.String(), "absent (removed in Linux 4.12)") {
		t.Errorf("tcp_tw_recycle is not reported as removed:\n%s", text.String())
	}

	var out bytes.Buffer
	if err := runSysctl([]string{"-o", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type   string
		Netns  uint64
		Values map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got.Type != "sysctls" || got.Netns == 0 || len(got.Values) != len(sysctl.Known) {
		t.Errorf("unexpected JSON: %s", out.String())
	}
	if v, ok := got.Values["net.ipv4.tcp_tw_recycle"]; !ok || v != nil {
		t.Errorf("tcp_tw_recycle = %v, want null", v)
	}
	if _, ok := got.Values["net.ipv4.tcp_fin_timeout"].(float64); !ok {
		t.Errorf("tcp_fin_timeout = %v, want a number", got.Values["net.ipv4.tcp_fin_timeout"])
	}
}

func TestRunSysctlHelp(t *testing.T) {
	var out bytes.Buffer
	if err := runSysctl([]string{"--help"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tcptrace sysctl [--pid PID | --netns NS]") || !strings.Contains(out.String(), "--netns") {
		t.Errorf("help lacks the usage line or flags:\n%s", out.String())
	}
}
