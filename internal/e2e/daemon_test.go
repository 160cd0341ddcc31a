package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is tcptrace run as on a node: -o none, its own lines on stderr.
type daemon struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// startDaemon runs tcptrace -o none with args and waits until it is ready.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	requireTracing(t)
	ready := filepath.Join(t.TempDir(), "ready")
	d := &daemon{}
	d.cmd = exec.Command(tracerBinary, append([]string{"-o", "none", "--ready-file", ready}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcptrace not ready after 20s; stderr:\n%s", d.stderr.String())
		}
	}
}

// stop ends the daemon with sig and fails the test unless it exits 0.
func (d *daemon) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	d.cmd.Process.Signal(sig)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("tcptrace after %v: %v\n%s", sig, err, d.stderr.String())
	}
}

// stampedLine is a line of a daemon's stderr: the time, then the text.
var stampedLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$`)

// TestDaemon: tcptrace as a node's daemon. -o none writes no event; a
// --record at its --record-max-size rotates, keeping --record-keep files,
// each of which replays on its own to the end; SIGTERM ends the run as
// Ctrl-C does (the last file closed whole, the closing stats written); and
// every line on stderr, which is no terminal, starts with the time.
func TestDaemon(t *testing.T) {
	ns := newNetns(t)
	file := filepath.Join(t.TempDir(), "node.tcptrace.gz")
	d := startDaemon(t, "--netns", fmt.Sprint(ns.inode), "--record", file, "--record-max-size", "4K", "--record-keep", "2")
	a := ns.startActor(t)
	for range 5 {
		a.do("timewaits 100")
		time.Sleep(50 * time.Millisecond) // polls between, each may rotate
	}
	settle()
	d.stop(t, syscall.SIGTERM)

	if d.stdout.Len() != 0 {
		t.Errorf("-o none wrote %d bytes to stdout", d.stdout.Len())
	}
	var rotations, stats int
	for line := range strings.SplitSeq(strings.TrimSuffix(d.stderr.String(), "\n"), "\n") {
		m := stampedLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("stderr line without a time first: %q", line)
			continue
		}
		switch {
		case m[1] == fmt.Sprintf("tcptrace: %s reached --record-max-size: moved to %s.1, recording goes on in a new %s", file, file, file):
			rotations++
		case regexp.MustCompile(`^\d+ events in [0-9.]+m?s, 0 lost$`).MatchString(m[1]):
			stats++
		case strings.HasPrefix(m[1], "tcptrace: warning: ") && strings.Contains(m[1], " is not attached: "):
			// A hook this kernel refuses (tcptrace features).
		default:
			t.Errorf("unexpected stderr line %q", line)
		}
	}
	if rotations < 3 || stats != 1 {
		t.Fatalf("%d rotations and %d stats lines on stderr, want 3 or more (to drop a file) and 1:\n%s", rotations, stats, d.stderr.String())
	}
	if _, err := os.Stat(file + ".3"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.3 is there with --record-keep 2 (%v)", file, err)
	}
	// The newest file may have begun after the last connection.
	for _, f := range []string{file + ".2", file + ".1", file} {
		stdout, stderr, code := runCommand(t, exec.Command(tracerBinary, "replay", f, "-o", "json"))
		if code != 0 || stderr != "" || f != file && !strings.Contains(stdout, `"type":"state"`) || !strings.Contains(stdout, `"type":"stats"`) {
			t.Errorf("replay %s: exit %d, stderr %q, %d bytes out; want the events of a whole recording", f, code, stderr, len(stdout))
		}
	}
}
