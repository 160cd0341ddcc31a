package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/replay"
	"github.com/tcptrace/tcptrace/internal/report"
)

const reportUsage = `tcptrace report makes one self-contained HTML page of a recording: a
timeline per socket (states, TIME_WAIT, probes, retransmits, resets), the
findings beside their sockets, a filter box and the sysctls. The page loads
nothing from the network; open it in any browser, attach it to a ticket.

Usage:
  tcptrace report FILE -o report.html

Flags:
`

func runReport(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("tcptrace report", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var output, title string
	fs.StringVarP(&output, "output", "o", "", "the HTML file to write (required)")
	fs.StringVar(&title, "title", "", "the page's title (default: tcptrace report of FILE)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprint(stdout, reportUsage+fs.FlagUsages())
			return nil
		}
		return usageError{err.Error() + " (see tcptrace report --help)"}
	}
	if fs.NArg() != 1 || output == "" {
		return usageError{"tcptrace report takes one recording file and -o report.html (see tcptrace report --help)"}
	}
	rec, err := replay.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	if title == "" {
		title = "tcptrace report of " + filepath.Base(fs.Arg(0))
	}
	f, err := os.Create(output)
	if err != nil {
		return err
	}
	if err := report.Write(f, rec, title); err != nil {
		f.Close()
		return fmt.Errorf("report: %w", err)
	}
	return f.Close()
}
