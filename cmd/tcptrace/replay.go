package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/pipeline"
	"github.com/tcptrace/tcptrace/internal/replay"
)

func bindReplay(cmd *cobra.Command) func([]string) error {
	var filters filterFlags
	var view viewFlags
	var since, until string
	filters.define(cmd.Flags())
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "replay up to this time (RFC 3339): sockets still open then end as open")
	view.define(cmd, textOutput, jsonLinesOutput)
	return func(args []string) error {
		if err := view.check(); err != nil {
			return err
		}
		sf, err := filters.parse(nil, 0, 0)
		if err != nil {
			return err
		}
		filter := pipeline.Filter{PIDs: sf.pids, Cgroups: sf.cgroups, Ports: sf.ports, LocalPorts: sf.localPorts, RemotePorts: sf.remotePorts}
		for _, tv := range []struct {
			flag, value string
			dst         *time.Time
		}{{"--since", since, &filter.Since}, {"--until", until, &filter.Until}} {
			if tv.value == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, tv.value)
			if err != nil {
				return usageError{fmt.Sprintf("invalid %s %q: use RFC 3339, e.g. 2026-11-21T10:00:00Z", tv.flag, tv.value)}
			}
			*tv.dst = t
		}
		return replay.Run(replay.Config{File: args[0], Format: view.format, MaxSockets: view.maxSockets, Filter: filter,
			FullFindings: view.fullFindings, SummaryOnly: view.summaryOnly, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
	}
}
