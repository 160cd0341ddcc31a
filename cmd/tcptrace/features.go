//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tcptrace/tcptrace/internal/probe"
)

func bindFeatures(cmd *cobra.Command) func([]string) error {
	var btfPath string
	defineBTFPath(cmd.Flags(), &btfPath)
	return func([]string) error { return printFeatures(cmd.OutOrStdout(), btfPath) }
}

// defineBTFPath defines the hidden --btf-path, for tests of a kernel
// without BTF.
func defineBTFPath(flags *pflag.FlagSet, path *string) {
	flags.StringVar(path, "btf-path", probe.DefaultBTFPath, "kernel BTF to read")
	_ = flags.MarkHidden("btf-path") // fails only for an undefined flag
}

func printFeatures(w io.Writer, btfPath string) error {
	k, err := probe.OpenKernel(btfPath)
	if err != nil {
		return err
	}
	r := probe.Features(k)
	fmt.Fprintf(w, "kernel:      %s\n", k.Release)
	fmt.Fprintf(w, "BTF:         %s\n", k.BTFPath)
	fmt.Fprintf(w, "privileges:  %s\n", answer(r.Privilege, "sufficient"))
	fmt.Fprintf(w, "ring buffer: %s\n", answer(r.RingBuf, "available"))
	fmt.Fprintf(w, "helpers:     %s\n", answer(r.Helpers, "present (bpf_get_socket_cookie, socket storage in tracing programs)"))
	if err := printCapabilities(w); err != nil {
		return err
	}
	switch {
	case r.Privilege != nil:
		fmt.Fprintln(w, "hooks (from kernel BTF only; run as root to load and attach them):")
	case r.Helpers != nil:
		fmt.Fprintln(w, "hooks (from kernel BTF only: without those helpers none loads):")
	case !r.Attached:
		fmt.Fprintln(w, "hooks (loading failed: none is attached):")
	default:
		fmt.Fprintln(w, "hooks (loaded and attached, then detached):")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOOK\tKIND\tPROGRAM\tSTATUS")
	for _, h := range r.Hooks {
		program := h.Program
		if program == "" {
			program = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, h.Kind, program, hookStatus(h, r.Attached))
	}
	return tw.Flush()
}

// printCapabilities lists the capabilities tracing needs, which a
// container or a service unit should grant and no others, and whether
// this process has each.
func printCapabilities(w io.Writer) error {
	held, err := probe.HeldCapabilities()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "capabilities (what a container or a service needs, and no others):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range probe.Capabilities {
		status := "missing"
		if held[c.Name] {
			status = "held"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, status, c.Why)
	}
	return tw.Flush()
}

// hookStatus says whether a hook is attached, or why not, and what it
// shows when it is.
func hookStatus(h probe.Hook, attached bool) string {
	var status string
	switch {
	case errors.Is(h.Err, probe.ErrNotChecked):
		status = "not checked"
	case h.Err != nil:
		return "unavailable: " + h.Err.Error()
	case attached:
		status = "attached"
	default:
		status = "selected" // by BTF, where nothing could be loaded
	}
	if h.Detail != "" {
		status += " (" + h.Detail + ")"
	}
	return status
}

// answer is one line of the checks before the hooks.
func answer(err error, yes string) string {
	switch {
	case errors.Is(err, probe.ErrNotChecked):
		return "not checked (that needs root)"
	case err != nil:
		return "no: " + explain(err)
	}
	return yes
}
