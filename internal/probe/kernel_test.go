package probe

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/bpf/layout"
)

func timerList(nowNs, jiffies uint64) string {
	return fmt.Sprintf("Timer List Version: v0.10\nnow at %d nsecs\n\ncpu: 0\njiffies: %d\ncpu: 1\njiffies: 1\n", nowNs, jiffies)
}

func TestHZSinceBoot(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"this machine, 250 Hz, 39 min up", timerList(2327690357327, 4295474156), 250},
		{"1000 Hz, 10 s after boot", timerList(10e9, 1<<32-290*1000+3), 1000},
		{"100 Hz, a day up", timerList(86400e9, 1<<32+(86400-300)*100), 100},
		{"300 Hz, jiffies 3 s late", timerList(1000e9, 1<<32+697*300), 300},
		{"near the wrap: two readings needed", timerList(330e9, 1<<32+30*250), 0},
		{"nonsense", timerList(1000e9, 1<<32+700*77), 0},
	}
	for _, tt := range tests {
		r, ok := parseTimerList(tt.text)
		if got := hzSinceBoot(r); !ok || got != tt.want {
			t.Errorf("%s: %d (parsed %v), want %d", tt.name, got, ok, tt.want)
		}
	}
}

func TestHZBetween(t *testing.T) {
	tests := []struct {
		name          string
		first, second string
		want          int
	}{
		{"this machine, 250 Hz", timerList(2327690357327, 4295474156), timerList(2327890357327, 4295474206), 250},
		{"250 Hz, a tick's rounding short", timerList(10e9, 5000), timerList(10.2e9, 5049), 250},
		{"300 Hz, a tick's rounding over", timerList(10e9, 5000), timerList(10.2e9, 5061), 300},
		// Jiffies started 3 s after the clock, and they wrap 5 min after
		// boot: the offset does not matter.
		{"1000 Hz, at 300 s of uptime", timerList(300e9, 1<<32-3000), timerList(300.2e9, 1<<32-2800), 1000},
		{"100 Hz", timerList(86400e9, 1<<32+100), timerList(86400.25e9, 1<<32+125), 100},
		{"too close together", timerList(10e9, 5000), timerList(10.01e9, 5003), 0},
		{"nonsense rate", timerList(10e9, 5000), timerList(10.2e9, 5031), 0},
		{"no jiffies", "now at 5 nsecs\n", timerList(10.2e9, 5031), 0},
	}
	for _, tt := range tests {
		first, ok1 := parseTimerList(tt.first)
		second, ok2 := parseTimerList(tt.second)
		got := 0
		if ok1 && ok2 {
			got = hzBetween(first, second)
		}
		if got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestConfigHZ(t *testing.T) {
	if got := configHZ(strings.NewReader("# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n")); got != 250 {
		t.Errorf("configHZ = %d, want 250", got)
	}
	if got := configHZ(strings.NewReader("CONFIG_X=y\n")); got != 0 {
		t.Errorf("configHZ without CONFIG_HZ = %d, want 0", got)
	}
}

func TestKallsyms(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		path := dir + "/kallsyms"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := write("ffffffff81243c71 t tw_timer_handler.cold\nffffffff82006870 t tw_timer_handler\nffffffffc0001000 t tw_timer_handler\t[somemod]\n")
	got, err := kallsyms(path, "tw_timer_handler")
	if err != nil || got["tw_timer_handler"] != 0xffffffff82006870 {
		t.Errorf("kallsyms = %x, %v", got, err)
	}
	if _, err := kallsyms(write("0000000000000000 t tw_timer_handler\n"), "tw_timer_handler"); err == nil || !strings.Contains(err.Error(), "no addresses") {
		t.Errorf("hidden addresses: %v", err)
	}
	if _, err := kallsyms(write("ffffffff82006870 t other\n"), "tw_timer_handler"); err == nil {
		t.Error("missing symbol: no error")
	}
}

// The kinds lost records are counted by are named from the BPF object's
// enum, every one of them.
func TestRecordKinds(t *testing.T) {
	names, err := recordKinds()
	if err != nil {
		t.Fatal(err)
	}
	count := int(layout.TcptraceEventTypeEVENT_TYPE_COUNT)
	for kind := 1; kind < count; kind++ {
		if names[kind] == "" || strings.ToLower(names[kind]) != names[kind] || strings.HasPrefix(names[kind], "event") {
			t.Errorf("kind %d named %q", kind, names[kind])
		}
	}
	if got := names[int(layout.TcptraceEventTypeEVENT_TW_START)]; got != "tw_start" {
		t.Errorf("EVENT_TW_START named %q, want tw_start", got)
	}
}

func TestPreexistingCapacity(t *testing.T) {
	for _, tt := range []struct {
		fileNr string
		want   uint32
	}{
		{"313\t0\t2466116\n", 8192},
		{"0\t0\t100\n", 4096},
		{"2048\t0\t100\n", 8192},
		{"2049\t0\t100\n", 16384},
		{"3000000\t0\t9000000\n", 1 << 20},
		{"", 1 << 20},
		{"many\t0\t0\n", 1 << 20},
		{"99999999999\t0\t0\n", 1 << 20},
	} {
		if got := preexistingCapacity(tt.fileNr, 1<<20); got != tt.want {
			t.Errorf("file-nr %q: %d, want %d", tt.fileNr, got, tt.want)
		}
	}
}
