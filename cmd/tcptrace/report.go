package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/record"
	"github.com/tcptrace/tcptrace/internal/replay"
	"github.com/tcptrace/tcptrace/internal/report"
)

func bindReport(cmd *cobra.Command) func([]string) error {
	var output, title string
	cmd.Flags().StringVarP(&output, "output", "o", "", "the HTML file to write (required)")
	cmd.Flags().StringVar(&title, "title", "", "the page's title (default: tcptrace report of FILE)")
	return func(args []string) error {
		if output == "" {
			return usageError{"report needs -o FILE, the HTML page to write (see tcptrace report --help)"}
		}
		rec, err := replay.Load(args[0])
		if err != nil {
			return err
		}
		if title == "" {
			title = "tcptrace report of " + filepath.Base(args[0])
		}
		return writeReport(rec, output, title)
	}
}

// writeReport writes the HTML report of a recording to the file output:
// for tcptrace report, and for a live run's --report.
func writeReport(rec *record.Recording, output, title string) error {
	f, err := os.Create(output)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := report.Write(f, rec, title); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", output, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report %s: %w", output, err)
	}
	return nil
}
