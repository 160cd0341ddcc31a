package sysctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnown(t *testing.T) {
	seen := map[Name]bool{}
	for _, s := range Known {
		if seen[s.Name] {
			t.Errorf("%s listed twice", s.Name)
		}
		seen[s.Name] = true
		if !strings.HasPrefix(string(s.Name), "net.ipv4.tcp_") {
			t.Errorf("%s: not a TCP sysctl name", s.Name)
		}
		if s.Description == "" || strings.Contains(s.Description, "\n") {
			t.Errorf("%s: description %q is not one line", s.Name, s.Description)
		}
	}
}

func TestValueInt(t *testing.T) {
	tests := []struct {
		name    string
		v       Value
		want    int64
		wantErr string
	}{
		{"seconds", Value{Raw: "60", Present: true}, 60, ""},
		{"zero", Value{Raw: "0", Present: true}, 0, ""},
		{"negative", Value{Raw: "-1", Present: true}, -1, ""},
		{"large", Value{Raw: "262144", Present: true}, 262144, ""},
		{"absent", Value{}, 0, "absent on this kernel"},
		{"empty", Value{Raw: "", Present: true}, 0, "as an integer"},
		{"word", Value{Raw: "abc", Present: true}, 0, "as an integer"},
		{"two numbers", Value{Raw: "4096\t131072", Present: true}, 0, "as an integer"},
		{"overflow", Value{Raw: "9223372036854775808", Present: true}, 0, "as an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.v.Name = "net.ipv4.tcp_test"
			got, err := tt.v.Int()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), string(tt.v.Name)) {
					t.Fatalf("Int() = %d, %v; want an error naming the sysctl and saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Int() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// writeTree makes a fake /proc/sys with these files (dotted name -> content).
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, strings.ReplaceAll(name, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRead(t *testing.T) {
	root := writeTree(t, map[string]string{
		"net.ipv4.tcp_tw_reuse":       "2\n",
		"net.ipv4.tcp_fin_timeout":    "30\n",
		"net.ipv4.tcp_keepalive_time": "  7200 \n",
		"net.ipv4.tcp_rfc1337":        "", // present but empty: not absent
		"net.ipv4.tcp_syncookies":     "1\n",
	})
	snap, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Netns != 0 {
		t.Errorf("Netns = %d, want 0 for a plain directory", snap.Netns)
	}
	if len(snap.Values) != len(Known) {
		t.Fatalf("%d values, want one per Known sysctl (%d)", len(snap.Values), len(Known))
	}
	for i, v := range snap.Values {
		if v.Sysctl != Known[i] {
			t.Errorf("value %d is %s, want %s (the order of Known)", i, v.Name, Known[i].Name)
		}
	}
	tests := []struct {
		name    Name
		raw     string
		present bool
	}{
		{"net.ipv4.tcp_tw_reuse", "2", true},
		{"net.ipv4.tcp_fin_timeout", "30", true},
		{"net.ipv4.tcp_keepalive_time", "7200", true},
		{"net.ipv4.tcp_rfc1337", "", true},
		{"net.ipv4.tcp_tw_recycle", "", false},
		{"net.ipv4.tcp_rto_max_ms", "", false},
	}
	for _, tt := range tests {
		v, ok := snap.Lookup(tt.name)
		if !ok || v.Raw != tt.raw || v.Present != tt.present {
			t.Errorf("Lookup(%s) = %+v, %v; want Raw %q, Present %v", tt.name, v, ok, tt.raw, tt.present)
		}
	}
	if _, ok := snap.Lookup("net.ipv4.tcp_syncookies"); ok {
		t.Error("Lookup found net.ipv4.tcp_syncookies, which is not in Known")
	}
}

func TestReadEmptyTree(t *testing.T) {
	snap, err := Read(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range snap.Values {
		if v.Present {
			t.Errorf("%s present in an empty tree", v.Name)
		}
	}
	// tcp_tw_recycle must read as gone, never as a value of 0.
	if v, _ := snap.Lookup("net.ipv4.tcp_tw_recycle"); v.RemovedIn != "4.12" {
		t.Errorf("tcp_tw_recycle: RemovedIn = %q, want 4.12", v.RemovedIn)
	}
}

func TestReadUnreadable(t *testing.T) {
	// A directory where a file should be fails even for root, unlike file modes.
	root := writeTree(t, map[string]string{"net.ipv4.tcp_fin_timeout.x": "1"})
	_, err := Read(root)
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.tcp_fin_timeout") {
		t.Fatalf("Read = %v, want an error naming net.ipv4.tcp_fin_timeout", err)
	}
}

func TestSnapshotIntAndNumber(t *testing.T) {
	snap := Snapshot{Values: []Value{
		{Sysctl: Sysctl{Name: RFC1337}, Raw: "1", Present: true},
		{Sysctl: Sysctl{Name: TWRecycle}},
		{Sysctl: Sysctl{Name: "net.ipv4.tcp_rmem"}, Raw: "4096\t131072\t6291456", Present: true},
	}}
	for _, tt := range []struct {
		name   Name
		n      int64
		ok     bool
		number any
	}{
		{RFC1337, 1, true, int64(1)},
		{TWRecycle, 0, false, nil},
		{"net.ipv4.tcp_rmem", 0, false, "4096\t131072\t6291456"},
		{FinTimeout, 0, false, nil}, // not in the snapshot at all
	} {
		if n, ok := snap.Int(tt.name); n != tt.n || ok != tt.ok {
			t.Errorf("Int(%s) = %d, %t; want %d, %t", tt.name, n, ok, tt.n, tt.ok)
		}
		if v, ok := snap.Lookup(tt.name); ok && v.Number() != tt.number {
			t.Errorf("%s: Number() = %#v, want %#v", tt.name, v.Number(), tt.number)
		}
	}
}
