// Command tcptrace shows what the Linux kernel does to TCP connections: every
// state change, retransmission and reset, attributed to the owning process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	// Events are many and short-lived, the live heap small: collect less
	// often than Go's default, for less CPU taken from the traced machine.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the trace could not run
	exitUsage = 2 // bad command line
)

// usageError marks errors in what the user typed.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run runs the command line args and returns the exit code. Every failure
// is one line on stderr, said once, behind one "tcptrace: ".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newCommandTree(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "tcptrace: "+explain(err))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

// explain turns the failures a user can fix into one sentence that says what
// to do; anything else is shown with its context.
func explain(err error) string {
	if sentence, ok := explainLive(err); ok {
		return sentence
	}
	return err.Error()
}

// detail is err's message without sentinel's words, for a sentence that
// already says them.
func detail(err, sentinel error) string {
	return strings.ReplaceAll(err.Error(), sentinel.Error()+": ", "")
}
