//go:build linux

package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tcptrace/tcptrace/internal/probe"
)

func printFeatures(w io.Writer, btfPath string) error {
	k, err := probe.OpenKernel(btfPath)
	if err != nil {
		return err
	}
	r := probe.Features(k)
	fmt.Fprintf(w, "kernel:      %s\n", k.Release)
	fmt.Fprintf(w, "BTF:         %s\n", k.BTFPath)
	fmt.Fprintf(w, "ring buffer: %s\n", okOr(r.RingBuf, "available"))
	fmt.Fprintf(w, "privileges:  %s\n", okOr(r.Privilege, "sufficient"))
	if r.Privilege == nil {
		fmt.Fprintf(w, "helpers:     %s\n", okOr(r.Helpers, "present (bpf_get_socket_cookie, socket storage in tracing programs)"))
	}
	switch {
	case r.Helpers != nil:
		fmt.Fprintln(w, "hooks (from kernel BTF only: without those helpers none loads):")
	case !r.Attached:
		fmt.Fprintln(w, "hooks (from kernel BTF only; run as root to load and attach them):")
	default:
		fmt.Fprintln(w, "hooks (loaded and attached, then detached):")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOOK\tKIND\tPROGRAM\tSTATUS")
	for _, h := range r.Hooks {
		status := "attached"
		if !r.Attached {
			status = "selected"
		}
		if h.Err != nil {
			status = "unavailable: " + h.Err.Error()
		} else if h.Detail != "" {
			status += " (" + h.Detail + ")"
		}
		program := h.Program
		if program == "" {
			program = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Name, h.Kind, program, status)
	}
	return tw.Flush()
}

func okOr(err error, ok string) string {
	if err != nil {
		return "no: " + explain(err)
	}
	return ok
}
