// Package privtest holds what privileged tests share.
package privtest

import (
	"os"
	"testing"
)

// RequireRoot skips a test that needs root when not root (or in -short
// mode), except with TCPTRACE_REQUIRE_PRIVILEGED=1 (set by make test and CI),
// where a missing privilege fails the test instead of hiding it.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged test skipped in -short mode")
	}
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("TCPTRACE_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("privileged test run as non-root: run the suite with sudo")
	}
	t.Skip("needs root: run with sudo (make test)")
}
