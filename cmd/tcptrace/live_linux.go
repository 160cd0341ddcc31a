package main

import (
	"errors"
	"fmt"

	"github.com/tcptrace/tcptrace/internal/probe"
)

// explainLive turns the failures of live tracing a user can fix into one
// sentence that says what to do. The sentences do not start with "tcptrace":
// they follow "tcptrace: " on stderr, or a line's label in features.
func explainLive(err error) (string, bool) {
	switch {
	case errors.Is(err, probe.ErrNotPrivileged):
		return "loading BPF programs needs root (or the CAP_BPF and CAP_PERFMON capabilities): run tcptrace with sudo", true
	case errors.Is(err, probe.ErrNoBTF):
		return fmt.Sprintf("this kernel exposes no BTF type information (%s); tcptrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, as most distributions ship since 2020",
			detail(err, probe.ErrNoBTF)), true
	case errors.Is(err, probe.ErrNoRingBuffer):
		return "this kernel has no BPF ring buffer; tracing needs Linux 5.12 or newer", true
	case errors.Is(err, probe.ErrKernelTooOld):
		return fmt.Sprintf("this kernel is too old: tracing needs Linux 5.12 or newer (%s); upgrade the kernel, or trace with tcpdump/ss on this one",
			detail(err, probe.ErrKernelTooOld)), true
	case errors.Is(err, probe.ErrHookMissing):
		return fmt.Sprintf("this kernel lacks a hook tcptrace needs (%s); run 'tcptrace features' to see which", detail(err, probe.ErrHookMissing)), true
	}
	return "", false
}
