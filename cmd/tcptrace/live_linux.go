package main

import (
	"errors"
	"fmt"

	"github.com/tcptrace/tcptrace/internal/probe"
)

// explainLive turns the failures of live tracing a user can fix into one
// sentence that says what to do.
func explainLive(err error) (string, bool) {
	switch {
	case errors.Is(err, probe.ErrNotPrivileged):
		return "tcptrace needs root (or the CAP_BPF and CAP_PERFMON capabilities) to load BPF programs: run it with sudo", true
	case errors.Is(err, probe.ErrNoBTF):
		return fmt.Sprintf("this kernel exposes no BTF type information (%v); tcptrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, as most distributions ship since 2020", err), true
	case errors.Is(err, probe.ErrNoRingBuffer):
		return "this kernel has no BPF ring buffer; tcptrace needs Linux 5.12 or newer", true
	case errors.Is(err, probe.ErrKernelTooOld):
		return fmt.Sprintf("tcptrace needs Linux 5.12 or newer (%v): upgrade the kernel, or trace with tcpdump/ss on this one", err), true
	case errors.Is(err, probe.ErrHookMissing):
		return fmt.Sprintf("this kernel lacks a hook tcptrace needs (%v); run 'tcptrace features' to see which", err), true
	}
	return "", false
}
