package probe

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestTimerListHZ(t *testing.T) {
	timerList := func(nowNs, jiffies uint64) string {
		return fmt.Sprintf("Timer List Version: v0.10\nnow at %d nsecs\n\ncpu: 0\njiffies: %d\ncpu: 1\njiffies: 1\n", nowNs, jiffies)
	}
	tests := []struct {
		name string
		text string
		want int
	}{
		{"this machine, 250 Hz, 39 min up", timerList(2327690357327, 4295474156), 250},
		{"1000 Hz, 10 s after boot", timerList(10e9, 1<<32-290*1000+3), 1000},
		{"100 Hz, a day up", timerList(86400e9, 1<<32+(86400-300)*100), 100},
		{"300 Hz", timerList(1000e9, 1<<32+700*300), 300},
		{"no jiffies", "now at 5 nsecs\n", 0},
		{"exactly 300 s: no way to tell", timerList(300e9, 1<<32), 0},
		{"nonsense", timerList(1000e9, 1<<32+700*77), 0},
	}
	for _, tt := range tests {
		if got := timerListHZ(tt.text); got != tt.want {
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
