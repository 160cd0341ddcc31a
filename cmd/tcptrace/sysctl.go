//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tcptrace/tcptrace/internal/netns"
	"github.com/tcptrace/tcptrace/internal/render"
	"github.com/tcptrace/tcptrace/internal/sysctl"
)

func bindSysctl(cmd *cobra.Command) func([]string) error {
	var pid pidValue
	var netnsFlag string
	var format render.Format
	cmd.Flags().VarP(&pid, "pid", "p", "the network namespace of this process")
	_ = cmd.RegisterFlagCompletionFunc("pid", completePIDs) // fails only for an undefined flag
	cmd.Flags().StringVar(&netnsFlag, "netns", "", "this network namespace: its inode number or a namespace file (/proc/PID/ns/net, /run/netns/NAME)")
	defineFormat(cmd, &format, textOutput, outputFormat{render.FormatJSON, "one JSON object"})
	return func([]string) error {
		target, err := chooseNetns(uint32(pid), netnsFlag, cmd.Flags().Changed("pid"), cmd.Flags().Changed("netns"))
		if err != nil {
			return err
		}
		snap, err := sysctl.ReadNetns(target.path)
		if err != nil {
			return target.explain(err)
		}
		if format == render.FormatJSON {
			return writeSysctlsJSON(cmd.OutOrStdout(), snap)
		}
		return writeSysctlsText(cmd.OutOrStdout(), snap)
	}
}

// netnsTarget is the namespace file to read, with what to tell the user
// when it is not there.
type netnsTarget struct {
	path string
	flag string // the flag that named it, e.g. "--pid 1234"; "" for our own namespace
	gone string // why it may be missing, e.g. "no such process"
}

// chooseNetns turns --pid or --netns into a namespace file; with neither it
// is tcptrace's own namespace.
func chooseNetns(pid uint32, netnsFlag string, pidSet, netnsSet bool) (netnsTarget, error) {
	switch {
	case pidSet && netnsSet:
		return netnsTarget{}, usageError{"--pid and --netns exclude each other: give at most one"}
	case pidSet:
		if err := processExists(pid); err != nil {
			return netnsTarget{}, err
		}
		return netnsTarget{path: netns.ForPID(int(pid)), flag: fmt.Sprintf("--pid %d", pid), gone: "no such process"}, nil
	case netnsSet:
		path, _, err := parseNetns(netnsFlag)
		if err != nil {
			return netnsTarget{}, err
		}
		return netnsTarget{path: path, flag: "--netns " + netnsFlag, gone: "the network namespace is gone"}, nil
	}
	return netnsTarget{path: "/proc/self/ns/net"}, nil
}

// explain turns the failures a user can fix into one sentence.
func (t netnsTarget) explain(err error) error {
	switch {
	case t.flag == "":
		return err
	case errors.Is(err, fs.ErrNotExist):
		return usageError{t.flag + ": " + t.gone}
	}
	return needsRoot(t.flag, err)
}

// sysctlValueText is a value as the text output shows it. Tabs, which
// separate the numbers of multi-number sysctls, become spaces so that they
// do not break the columns.
func sysctlValueText(v sysctl.Value) string {
	switch {
	case v.Present:
		return strings.Join(strings.Fields(v.Raw), " ")
	case v.RemovedIn != "":
		return "absent (removed in Linux " + v.RemovedIn + ")"
	}
	return "absent on this kernel"
}

func writeSysctlsText(w io.Writer, snap sysctl.Snapshot) error {
	fmt.Fprintf(w, "network namespace %d\n", snap.Netns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSCTL\tVALUE\tWHAT IT DOES")
	for _, v := range snap.Values {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, sysctlValueText(v), v.Description)
	}
	return tw.Flush()
}

// writeSysctlsJSON writes one object: {"type":"sysctls","netns":INODE,
// "values":{NAME: VALUE}}. A value is a number, null when the kernel has no
// such sysctl, or the raw text should a kernel ever hold a non-number there.
func writeSysctlsJSON(w io.Writer, snap sysctl.Snapshot) error {
	values := make(map[sysctl.Name]any, len(snap.Values))
	for _, v := range snap.Values {
		values[v.Name] = v.Number()
	}
	out := struct {
		Type   string              `json:"type"`
		Netns  uint64              `json:"netns"`
		Values map[sysctl.Name]any `json:"values"`
	}{"sysctls", snap.Netns, values}
	if err := json.NewEncoder(w).Encode(out); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
