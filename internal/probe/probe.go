// Package probe loads tcptrace's BPF programs, attaches them to the kernel's
// TCP hooks and reads their records. It is the only package that talks to
// the kernel through cilium/ebpf.
package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/bpf"
	"github.com/tcptrace/tcptrace/internal/events"
	"github.com/tcptrace/tcptrace/internal/netns"
)

// Filter limits what the kernel side reports. Zero values mean "everything".
// Every filter given must hold; the values of one are alternatives.
type Filter struct {
	PIDs        []uint32 // socket owners' tgids
	Cgroups     []uint64 // socket owners' cgroup v2 ids
	Ports       []uint16 // local or remote port
	LocalPorts  []uint16
	RemotePorts []uint16
	Netns       uint32 // network namespace inode
	Family      int    // 4 or 6
}

// Limits of the kernel-side filter tables (bpf/event.h).
const (
	MaxPIDs    = 64
	MaxCgroups = 64
	MaxPorts   = 16
)

// Config is how to load the probe.
type Config struct {
	Filter Filter
	// RingBytes is the ring buffer size: a power of two, at least a page.
	RingBytes int
	// WakeupBytes: the reader is woken once this much data waits; below
	// that it sees records at its next poll. 0 wakes it for every record.
	WakeupBytes int
	// Skip names the programs of optional hooks to leave out.
	Skip []string
	// ProgramStats has the kernel count the runs of every BPF program and
	// the time spent in them while the probe is open (each run then costs
	// a clock read more).
	ProgramStats bool
}

// Hook is one kernel hook tcptrace uses and how it was attached.
type Hook struct {
	Name     string // e.g. "sock/inet_sock_set_state"
	Optional bool   // tcptrace runs without it
	Kind     HookKind
	Program  string // BPF program used, empty if none fits
	Detail   string // which variant and why
	Fallback string // what is shown instead when it is refused
	Err      error  // why it is not attached; nil when attached
}

// HookKind is how a BPF program attaches.
type HookKind string

const (
	HookTracepoint HookKind = "tp_btf" // a BTF-typed tracepoint
	HookFentry     HookKind = "fentry" // a kernel function's entry
	HookFexit      HookKind = "fexit"  // a kernel function's return
	HookIter       HookKind = "iter"   // a BPF iterator, run at start
)

// hookSpec is a tracepoint (or, with kind fexit, a kernel function) and its
// program variants, most capable first.
type hookSpec struct {
	kind              HookKind // "" for HookTracepoint
	group, tracepoint string
	variants          []variant
	// optional hooks add to what tcptrace shows; without them it still runs.
	optional bool
	// needs reports what else the hook needs from this kernel, if anything.
	needs func(*Kernel) error
	// fallback says what tcptrace shows instead when the (precise) hook is
	// refused.
	fallback string
}

const (
	inferredFallback        = "the tracepoints tell the same, inferred"
	closingSegmentsFallback = "the states are still traced, the segments that drive them are not shown"
)

// variant is a program and the tracepoint arguments it reads: it fits a
// kernel whose tracepoint passes at least that many.
type variant struct {
	args    int
	program string
	detail  string
}

// hookSpecs lists every hook in the order they are attached.
var hookSpecs = []hookSpec{
	{group: "sock", tracepoint: "inet_sock_set_state", variants: []variant{
		{3, bpf.TcptraceProgHandleSetState, "every tcp_set_state()"},
	}},
	{group: "tcp", tracepoint: "tcp_retransmit_skb", variants: []variant{
		{3, bpf.TcptraceProgHandleRetransmit, "with err: failed retransmits skipped"},
		{2, bpf.TcptraceProgHandleRetransmitNoerr, "without err: fires only for sent retransmits"},
	}},
	{group: "tcp", tracepoint: "tcp_retransmit_synack", optional: true, variants: []variant{
		{2, bpf.TcptraceProgHandleRetransmitSynack, "SYN-ACKs retransmitted for connections not yet accepted"},
	}},
	{group: "tcp", tracepoint: "tcp_send_reset", variants: []variant{
		{3, bpf.TcptraceProgHandleSendReset, "with enum sk_rst_reason"},
		{2, bpf.TcptraceProgHandleSendResetNoreason, "without a reason argument (kernel < 6.10)"},
	}},
	{group: "tcp", tracepoint: "tcp_receive_reset", variants: []variant{
		{1, bpf.TcptraceProgHandleReceiveReset, ""},
	}},
	{group: "tcp", tracepoint: "tcp_destroy_sock", variants: []variant{
		{1, bpf.TcptraceProgHandleDestroy, ""},
	}},
	{group: "timer", tracepoint: "timer_start", optional: true, needs: needTWHandler, variants: []variant{
		{1, bpf.TcptraceProgHandleTimerStart, "TIME_WAIT sockets armed"},
	}},
	{group: "timer", tracepoint: "timer_expire_entry", optional: true, needs: needTWHandler, variants: []variant{
		{1, bpf.TcptraceProgHandleTimerExpire, "TIME_WAIT sockets expiring"},
	}},
	{group: "timer", tracepoint: "timer_cancel", optional: true, needs: needTWHandler, variants: []variant{
		{1, bpf.TcptraceProgHandleTimerCancel, "TIME_WAIT sockets ended early"},
	}},
	{group: "skb", tracepoint: "kfree_skb", optional: true, needs: needTWHandler, variants: []variant{
		{1, bpf.TcptraceProgHandleKfreeSkb, "the RST that ends a TIME_WAIT socket early"},
	}},
	{group: "timer", tracepoint: "timer_expire_exit", optional: true, needs: needSocketTimers, variants: []variant{
		{1, bpf.TcptraceProgHandleTimerExpireExit, "keepalive probes, zero-window probes, RTO and loss probes"},
	}},
	{group: "tcp", tracepoint: "tcp_probe", optional: true, needs: needSocketTimers, variants: []variant{
		{2, bpf.TcptraceProgHandleTcpProbe, "a zero window reopening"},
	}},
	// Precise: where fentry/fexit are allowed, the TIME_WAIT verdicts are
	// seen, not inferred, and each probe at the moment it is sent. The
	// tracepoints stay the fallback.
	{kind: HookFentry, group: "fentry", tracepoint: "tcp_write_wakeup", optional: true, needs: needMIBs, fallback: inferredFallback, variants: []variant{
		{2, bpf.TcptraceProgHandleWriteWakeup, "each keepalive and zero-window probe as it is sent"},
	}},
	{kind: HookFentry, group: "fentry", tracepoint: "tcp_rcv_state_process", optional: true, fallback: closingSegmentsFallback, variants: []variant{
		{2, bpf.TcptraceProgHandleRcvStateProcess, "segments received while closing: FIN, data after FIN, out of window"},
	}},
	{kind: HookFexit, group: "fexit", tracepoint: "tcp_timewait_state_process", optional: true, fallback: inferredFallback, variants: []variant{
		{5, bpf.TcptraceProgHandleTwVerdict5, "verdict of every segment reaching a TIME_WAIT socket"},
		{4, bpf.TcptraceProgHandleTwVerdict4, "verdict of every segment reaching a TIME_WAIT socket"},
		{3, bpf.TcptraceProgHandleTwVerdict3, "verdict of every segment reaching a TIME_WAIT socket"},
	}},
}

func needMIBs(k *Kernel) error {
	if k.mibKeepalive == 0 || k.mibWinProbe == 0 {
		return fmt.Errorf("%w: LINUX_MIB_TCPKEEPALIVE or LINUX_MIB_TCPWINPROBE not in kernel BTF", ErrHookMissing)
	}
	return nil
}

func needSocketTimers(k *Kernel) error {
	if k.keepaliveTimer == 0 || k.writeTimer == 0 {
		return fmt.Errorf("%w: no address for tcp_keepalive_timer or tcp_write_timer in /proc/kallsyms: %w", ErrHookMissing, k.kallsymsErr)
	}
	return nil
}

func needTWHandler(k *Kernel) error {
	if k.twTimerHandler == 0 {
		return fmt.Errorf("%w: no address for tw_timer_handler in /proc/kallsyms: %w", ErrHookMissing, k.kallsymsErr)
	}
	return nil
}

// Probe is the loaded and attached BPF side.
type Probe struct {
	coll    *ebpf.Collection
	links   []link.Link
	iters   []*link.Iter
	tcpIter *link.Iter // nil when the kernel cannot snapshot
	// preexistingDropped counts the owners of sockets open at start that
	// did not fit the map they wait in until they are moved onto sockets.
	preexistingDropped uint64
	reader             *ringbuf.Reader
	hooks              []Hook
	stats              io.Closer // kernel-wide program statistics, while ProgramStats asks
}

// CheckPrivileges reports ErrNotPrivileged unless the process may load and
// attach tracing programs (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN).
func CheckPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	return ErrNotPrivileged
}

// Plan reports, without loading anything, which variant of each hook the
// kernel's BTF selects.
func Plan(k *Kernel) []Hook {
	hooks := make([]Hook, 0, len(hookSpecs))
	for _, hs := range hookSpecs {
		h := Hook{Name: hs.group + "/" + hs.tracepoint, Kind: HookTracepoint, Optional: hs.optional, Fallback: hs.fallback}
		var args int
		var err error
		if hs.kind != "" {
			h.Kind = hs.kind
			args, err = k.funcParams(hs.tracepoint)
		} else {
			args, err = k.tracepointArgs(hs.tracepoint)
		}
		if err == nil {
			for _, v := range hs.variants {
				// fentry/fexit programs declare the function's parameters (and
				// fexit its return value after them): exactly as many.
				if v.args == args || (hs.kind == "" && v.args < args) {
					h.Program, h.Detail = v.program, v.detail
					break
				}
			}
			if h.Program == "" {
				err = fmt.Errorf("%w: tracepoint %s passes %d arguments, tcptrace knows no program for that", ErrHookMissing, hs.tracepoint, args)
			}
		}
		if err == nil && hs.needs != nil {
			err = hs.needs(k)
		}
		h.Err = err
		hooks = append(hooks, h)
	}
	return append(hooks, iterHooks()...)
}

// Open reads the kernel's BTF from btfPath (DefaultBTFPath: the running
// kernel's), loads the programs with cfg's filters and attaches every hook.
func Open(btfPath string, cfg Config) (*Kernel, *Probe, error) {
	l, err := begin(cfg)
	if err != nil {
		return nil, nil, err
	}
	defer l.ring.close()
	// The object is parsed and the ring made while the kernel's BTF is read.
	k, err := OpenKernel(btfPath)
	if err != nil {
		return nil, nil, err
	}
	p, err := l.open(k, cfg)
	return k, p, err
}

// loading is a load begun before the kernel's types are known.
type loading struct {
	ring *pendingRing
	// memlockErr: the locked-memory limit could not be lifted.
	memlockErr error
}

// begin checks the privileges and starts making the ring; the caller
// closes it.
func begin(cfg Config) (*loading, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (later ones to
	// the memory cgroup, where this does nothing). If it cannot be lifted,
	// loading says so.
	memlockErr := rlimit.RemoveMemlock()
	return &loading{ring: startRing(cfg.RingBytes), memlockErr: memlockErr}, nil
}

func (l *loading) open(k *Kernel, cfg Config) (*Probe, error) {
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("%w: %w", ErrNoRingBuffer, err)
		}
		return nil, fmt.Errorf("probe ring buffer support: %w", err)
	}
	if err := tracingHelpersPresent(k); err != nil {
		return nil, err
	}
	hooks := Plan(k)
	// Loading fails whole when one program is refused, and a load costs
	// tens of ms: ask first, cheaply, whether fentry/fexit are permitted.
	if err := tracingPermitted(k); err != nil {
		for i := range hooks {
			if (hooks[i].Kind == HookFentry || hooks[i].Kind == HookFexit) && hooks[i].Err == nil {
				hooks[i].Err = fmt.Errorf("this kernel does not permit %s programs (%w); %s", hooks[i].Kind, err, hooks[i].Fallback)
			}
		}
	}
	if err := skip(hooks, cfg.Skip); err != nil {
		return nil, err
	}
	for _, h := range hooks {
		if h.Err != nil && !h.Optional {
			return nil, fmt.Errorf("hook %s: %w", h.Name, h.Err)
		}
	}
	coll, err := loadAvailable(k, cfg, hooks, l.ring.wait())
	if err != nil {
		if l.memlockErr != nil && errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w (and the locked-memory limit, which this kernel charges BPF maps to, could not be lifted: %w)", err, l.memlockErr)
		}
		return nil, err
	}
	p := &Probe{coll: coll, hooks: hooks}
	if cfg.ProgramStats {
		if p.stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			p.Close()
			return nil, fmt.Errorf("enable BPF program statistics (Linux 5.8 and later): %w", err)
		}
	}
	if err := p.attach(cfg.Filter.Netns); err != nil {
		p.Close()
		return nil, err
	}
	p.reader, err = ringbuf.NewReader(coll.Maps[bpf.TcptraceMapEvents])
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return p, nil
}

// skip marks the hooks whose programs are named in names as left out.
func skip(hooks []Hook, names []string) error {
	for _, name := range names {
		i := slices.IndexFunc(hooks, func(h Hook) bool { return h.Program == name })
		switch {
		case i < 0:
			return fmt.Errorf("--skip-hook %s: no such program (tcptrace features lists them)", name)
		case !hooks[i].Optional:
			return fmt.Errorf("--skip-hook %s: %s is needed, only optional hooks can be left out", name, hooks[i].Name)
		case hooks[i].Err == nil:
			hooks[i].Err = errors.New("left out by --skip-hook")
		}
	}
	return nil
}

// tracingHelpersPresent loads a tp_btf program that calls
// bpf_get_socket_cookie(): tracing programs got it in Linux 5.12 (socket
// storage and bpf_sock_from_file in 5.11). tcptrace names sockets by their
// cookie, which a TIME_WAIT socket inherits: without it no story holds.
func tracingHelpersPresent(k *Kernel) error {
	err := loadProbeProgram(k, &ebpf.ProgramSpec{
		Name:       "tcptrace_floor",
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceRawTp,
		AttachTo:   "inet_sock_set_state",
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R1, asm.R1, 0, asm.DWord), // the socket, the tracepoint's first argument
			asm.FnGetSocketCookie.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "unknown func"):
		return fmt.Errorf("%w: this kernel's tracing programs cannot call bpf_get_socket_cookie", ErrKernelTooOld)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %w", ErrNotPrivileged, err)
	}
	return fmt.Errorf("probe tracing helpers: %w", err)
}

// tracingPermitted loads the smallest fentry program there is: kernels
// built or configured without BPF trampolines refuse it.
func tracingPermitted(k *Kernel) error {
	err := loadProbeProgram(k, &ebpf.ProgramSpec{
		Name:         "tcptrace_probe",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceFEntry,
		AttachTo:     "tcp_write_wakeup",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if errors.Is(err, unix.EPERM) {
		return unix.EPERM
	}
	return err
}

// loadProbeProgram loads a program that asks the kernel a question, and
// unloads it.
func loadProbeProgram(k *Kernel, prog *ebpf.ProgramSpec) error {
	// A collection, not a lone program: only a collection takes the BTF
	// cache to look the attach target up in, instead of parsing BTF again.
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{prog.Name: prog}},
		ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: k.btf}, Cache: k.btfCache})
	if err != nil {
		return err
	}
	coll.Close()
	return nil
}

// loadAvailable loads the programs, leaving out the optional ones this kernel
// refuses (each marked with why) rather than failing.
func loadAvailable(k *Kernel, cfg Config, hooks []Hook, ring *ebpf.Map) (*ebpf.Collection, error) {
	for {
		coll, err := load(k, cfg, hooks, ring)
		if err == nil {
			return coll, nil
		}
		// The program groups load concurrently: an error each.
		groupErrs := []error{err}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			groupErrs = joined.Unwrap()
		}
		refused := false
		for _, groupErr := range groupErrs {
			for i := range hooks {
				h := &hooks[i]
				if h.Err == nil && h.Optional && strings.Contains(groupErr.Error(), "program "+h.Program+":") {
					h.Err, refused = fmt.Errorf("load: %w", groupErr), true
					if errors.Is(groupErr, unix.EPERM) {
						h.Err = fmt.Errorf("this kernel does not permit %s programs (EPERM); %s", h.Kind, h.Fallback)
					}
				}
			}
		}
		if !refused {
			return nil, err
		}
	}
}

// ownersFallback is what is lost without the owner walks of the snapshot.
const ownersFallback = "owners of the sockets open before tracing will be unknown (and --pid misses them)"

// iterHooks are the BPF iterators of the start-of-trace snapshot, in the
// order they run.
func iterHooks() []Hook {
	return []Hook{
		{Name: "iter/task_file", Kind: HookIter, Optional: true, Program: bpf.TcptraceProgLearnOwners,
			Detail: "owners of the sockets open when tracing starts", Fallback: ownersFallback},
		{Name: "iter/tcp", Kind: HookIter, Optional: true, Program: bpf.TcptraceProgMoveOwners,
			Detail: "those owners kept on their sockets", Fallback: ownersFallback},
		{Name: "iter/tcp", Kind: HookIter, Optional: true, Program: bpf.TcptraceProgSnapshotTcp,
			Detail:   "the TCP sockets (TIME_WAIT included) that exist when tracing starts",
			Fallback: "sockets open before tracing are unknown until their next event"},
	}
}

// Refused returns one sentence for each hook that works on most kernels
// but was refused by this one, saying what is lost. (fentry and fexit are
// refused by many kernels by design: Features tells those.)
func (p *Probe) Refused() []string {
	var lines []string
	told := map[string]bool{} // what is lost, said once
	for _, h := range p.hooks {
		if h.Err == nil || h.Kind == HookFentry || h.Kind == HookFexit || told[h.Fallback] {
			continue
		}
		told[h.Fallback] = h.Fallback != ""
		line := fmt.Sprintf("%s (%s) is not attached: %v", h.Name, h.Program, h.Err)
		if h.Fallback != "" {
			line += "; " + h.Fallback
		}
		lines = append(lines, line)
	}
	if p.preexistingDropped > 0 {
		lines = append(lines, fmt.Sprintf("%d sockets open before tracing had more owners than tcptrace keeps at start: their owners are unknown", p.preexistingDropped))
	}
	return lines
}

// load loads the programs of the hooks that are available.
func load(k *Kernel, cfg Config, hooks []Hook, ring *ebpf.Map) (*ebpf.Collection, error) {
	object, err := objectSpec()
	if err != nil {
		return nil, err
	}
	spec := object.Copy()
	used := map[string]bool{}
	for _, h := range hooks {
		if h.Err == nil {
			used[h.Program] = true
		}
	}
	// Drop the variants this kernel does not need before load.
	for name := range spec.Programs {
		if !used[name] {
			delete(spec.Programs, name)
		}
	}
	if err := configure(spec, k, cfg); err != nil {
		return nil, err
	}
	opts := ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: k.btf},
		Cache:    k.btfCache,
	}
	if ring != nil {
		opts.MapReplacements = map[string]*ebpf.Map{bpf.TcptraceMapEvents: ring}
	}
	coll, err := loadConcurrently(spec, opts)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w: load BPF programs: %w", ErrNotPrivileged, err)
		}
		return nil, fmt.Errorf("load BPF programs: %w", err)
	}
	return coll, nil
}

// loadConcurrently creates spec's maps, then loads its programs in one
// group for each CPU at once, all sharing those maps: the kernel verifies a
// program in the thread that loads it, and that is most of what loading
// costs (some 25 ms for all of them, one after the other).
func loadConcurrently(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions) (*ebpf.Collection, error) {
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
		Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types,
	}, opts)
	if err != nil {
		return nil, err
	}
	// Largest first, each to the group with the fewest instructions yet.
	names := slices.SortedFunc(maps.Keys(spec.Programs), func(a, b string) int {
		return len(spec.Programs[b].Instructions) - len(spec.Programs[a].Instructions)
	})
	groups := make([]map[string]*ebpf.ProgramSpec, min(runtime.GOMAXPROCS(0), len(names)))
	sizes := make([]int, len(groups))
	for i := range groups {
		groups[i] = map[string]*ebpf.ProgramSpec{}
	}
	for _, name := range names {
		i := slices.Index(sizes, slices.Min(sizes))
		groups[i][name] = spec.Programs[name]
		sizes[i] += len(spec.Programs[name].Instructions)
	}
	opts.MapReplacements = coll.Maps
	loaded := make([]*ebpf.Collection, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, group := range groups {
		wg.Go(func() {
			loaded[i], errs[i] = ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
				Maps: spec.Maps, Programs: group, Types: spec.Types,
			}, opts)
		})
	}
	wg.Wait()
	coll.Programs = map[string]*ebpf.Program{}
	for _, group := range loaded {
		if group == nil {
			continue
		}
		maps.Copy(coll.Programs, group.Programs)
		for _, m := range group.Maps {
			m.Close() // the group's copies of coll's maps
		}
	}
	if err := errors.Join(errs...); err != nil {
		coll.Close()
		return nil, err
	}
	return coll, nil
}

// attach learns the owners of existing sockets and keeps them on the
// sockets, then attaches every tracepoint program, so that events of old
// sockets carry their owner (and pass --pid) from the first.
func (p *Probe) attach(onlyNetns uint32) error {
	var learn, move *link.Iter
	for i := range p.hooks {
		h := &p.hooks[i]
		if h.Err != nil || h.Kind != HookIter {
			continue
		}
		it, err := link.AttachIter(link.IterOptions{Program: p.coll.Programs[h.Program]})
		if err != nil {
			h.Err = fmt.Errorf("attach: %w", err)
			continue
		}
		switch h.Program {
		case bpf.TcptraceProgLearnOwners:
			learn = it
		case bpf.TcptraceProgMoveOwners:
			move = it
		default:
			p.iters = append(p.iters, it)
			p.tcpIter = it
		}
	}
	if err := p.moveOwners(learn, move, onlyNetns); err != nil {
		for i := range p.hooks {
			owners := p.hooks[i].Program == bpf.TcptraceProgLearnOwners || p.hooks[i].Program == bpf.TcptraceProgMoveOwners
			if owners && p.hooks[i].Err == nil {
				p.hooks[i].Err = err
			}
		}
	}
	for i := range p.hooks {
		h := &p.hooks[i]
		if h.Err != nil || h.Kind == HookIter {
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: p.coll.Programs[h.Program]})
		if err != nil {
			if h.Optional {
				h.Err = fmt.Errorf("attach: %w", err)
				continue
			}
			return fmt.Errorf("attach %s: %w", h.Name, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// moveOwners runs the owner walks of the snapshot: learn_owners notes the
// owner of every socket with a file, move_owners keeps each on its socket in
// every namespace traced. Then both programs and the map between them are
// closed, which frees what no walk used.
func (p *Probe) moveOwners(learn, move *link.Iter, onlyNetns uint32) error {
	defer func() {
		for _, it := range []*link.Iter{learn, move} {
			if it != nil {
				it.Close()
			}
		}
		for _, name := range []string{bpf.TcptraceProgLearnOwners, bpf.TcptraceProgMoveOwners} {
			if prog := p.coll.Programs[name]; prog != nil {
				prog.Close()
				delete(p.coll.Programs, name)
			}
		}
		if m := p.coll.Maps[bpf.TcptraceMapPreexistingOwners]; m != nil {
			m.Close()
			delete(p.coll.Maps, bpf.TcptraceMapPreexistingOwners)
		}
	}()
	if learn == nil || move == nil {
		return errors.New("learn_owners and move_owners work together, and one is missing")
	}
	if _, err := readIter(learn); err != nil {
		return err
	}
	paths, err := namespaces(onlyNetns)
	if err != nil {
		return err
	}
	if _, err := p.walk(move, paths); err != nil {
		return err
	}
	if v := p.coll.Variables[bpf.TcptraceVarPreexistingOwnersDropped]; v != nil {
		if err := v.Get(&p.preexistingDropped); err != nil {
			return fmt.Errorf("read %s: %w", bpf.TcptraceVarPreexistingOwnersDropped, err)
		}
	}
	return nil
}

func readIter(it *link.Iter) ([]byte, error) {
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("open iterator: %w", err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read iterator: %w", err)
	}
	return b, nil
}

// Snapshot returns the records of the TCP sockets that exist now in the
// network namespace with inode onlyNetns, or in every one if 0; nil when
// the kernel cannot take one.
func (p *Probe) Snapshot(onlyNetns uint32) ([]byte, error) {
	if p.tcpIter == nil {
		return nil, nil
	}
	paths, err := namespaces(onlyNetns)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	b, err := p.walk(p.tcpIter, paths)
	if err != nil {
		return b, fmt.Errorf("snapshot: %w", err)
	}
	return b, nil
}

// namespaces are the files of the network namespaces with inode onlyNetns,
// or of all there are, found now: a listing names each by one process, which
// may be gone by a later walk.
func namespaces(onlyNetns uint32) ([]string, error) {
	paths, err := netns.Paths(onlyNetns)
	if err != nil {
		return nil, fmt.Errorf("find network namespaces: %w", err)
	}
	return paths, nil
}

// walk reads an iter/tcp iterator in each network namespace in paths (it
// walks the namespace it is opened in), skipping namespaces that are gone.
func (p *Probe) walk(it *link.Iter, paths []string) ([]byte, error) {
	var all []byte
	for _, path := range paths {
		_, err := netns.Run(path, func() error {
			b, err := readIter(it)
			all = append(all, b...)
			return err
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return all, err
		}
	}
	return all, nil
}

func configure(spec *ebpf.CollectionSpec, k *Kernel, cfg Config) error {
	f := cfg.Filter
	if len(f.PIDs) > MaxPIDs {
		return fmt.Errorf("at most %d --pid values are supported, got %d", MaxPIDs, len(f.PIDs))
	}
	if len(f.Cgroups) > MaxCgroups {
		return fmt.Errorf("at most %d cgroups can be filtered on, got %d", MaxCgroups, len(f.Cgroups))
	}
	portTable := func(flag string, ports []uint16) ([MaxPorts]uint16, error) {
		var table [MaxPorts]uint16
		if len(ports) > MaxPorts {
			return table, fmt.Errorf("at most %d %s values are supported, got %d", MaxPorts, flag, len(ports))
		}
		copy(table[:], ports)
		return table, nil
	}
	ports, err := portTable("--port", f.Ports)
	if err != nil {
		return err
	}
	lports, err := portTable("--lport", f.LocalPorts)
	if err != nil {
		return err
	}
	rports, err := portTable("--rport", f.RemotePorts)
	if err != nil {
		return err
	}
	var pids [MaxPIDs]uint32
	copy(pids[:], f.PIDs)
	var cgroups [MaxCgroups]uint64
	copy(cgroups[:], f.Cgroups)
	family := uint16(0)
	switch f.Family {
	case 4:
		family = unix.AF_INET
	case 6:
		family = unix.AF_INET6
	}
	vars := map[string]any{
		bpf.TcptraceVarFilterPidCount:        uint32(len(f.PIDs)),
		bpf.TcptraceVarFilterPids:            pids,
		bpf.TcptraceVarFilterCgroupCount:     uint32(len(f.Cgroups)),
		bpf.TcptraceVarFilterCgroups:         cgroups,
		bpf.TcptraceVarFilterPortCount:       uint32(len(f.Ports)),
		bpf.TcptraceVarFilterPorts:           ports,
		bpf.TcptraceVarFilterLportCount:      uint32(len(f.LocalPorts)),
		bpf.TcptraceVarFilterLports:          lports,
		bpf.TcptraceVarFilterRportCount:      uint32(len(f.RemotePorts)),
		bpf.TcptraceVarFilterRports:          rports,
		bpf.TcptraceVarFilterNetns:           f.Netns,
		bpf.TcptraceVarFilterFamily:          family,
		bpf.TcptraceVarWakeupBytes:           uint32(cfg.WakeupBytes),
		bpf.TcptraceVarTwTimerHandlerAddr:    k.twTimerHandler,
		bpf.TcptraceVarTcpKeepaliveTimerAddr: k.keepaliveTimer,
		bpf.TcptraceVarTcpWriteTimerAddr:     k.writeTimer,
		bpf.TcptraceVarKeepaliveTimerOffset:  k.keepaliveTimerOffset,
		bpf.TcptraceVarWriteTimerOffset:      k.writeTimerOffset,
		bpf.TcptraceVarTcpFinWait2:           k.states[events.StateFinWait2],
		bpf.TcptraceVarMibKeepalive:          k.mibKeepalive,
		bpf.TcptraceVarMibWinprobe:           k.mibWinProbe,
		bpf.TcptraceVarEconnaborted:          int32(unix.ECONNABORTED),
		bpf.TcptraceVarTcpClose:              k.states[events.StateClose],
		bpf.TcptraceVarTcpListen:             k.states[events.StateListen],
		bpf.TcptraceVarTcpSynSent:            k.states[events.StateSynSent],
		bpf.TcptraceVarTcpEstablished:        k.states[events.StateEstablished],
		bpf.TcptraceVarTcpSynRecv:            k.states[events.StateSynRecv],
		bpf.TcptraceVarTcpFinWait1:           k.states[events.StateFinWait1],
		bpf.TcptraceVarTcpLastAck:            k.states[events.StateLastAck],
		bpf.TcptraceVarTcpClosing:            k.states[events.StateClosing],
		bpf.TcptraceVarTcpCloseWait:          k.states[events.StateCloseWait],
		bpf.TcptraceVarTcpTimeWait:           k.states[events.StateTimeWait],
		bpf.TcptraceVarTcpNewSynRecv:         k.states[events.StateNewSynRecv],
	}
	for name, value := range vars {
		v, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %s", name)
		}
		if err := v.Set(value); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if cfg.RingBytes > 0 {
		spec.Maps[bpf.TcptraceMapEvents].MaxEntries = uint32(cfg.RingBytes)
	}
	if ms := spec.Maps[bpf.TcptraceMapPreexistingOwners]; ms != nil {
		if fileNr, err := os.ReadFile("/proc/sys/fs/file-nr"); err == nil {
			ms.MaxEntries = preexistingCapacity(string(fileNr), ms.MaxEntries)
		}
	}
	return nil
}

// preexistingCapacity sizes the table of the owners of the sockets open at
// start (whose buckets the kernel allocates and zeroes as it makes it, some
// ms for the most, 1<<20): a socket with an owner has a file, so the files
// the kernel has allocated (fs.file-nr) bound them, twice over for an
// MPTCP socket's subflows and for what opens meanwhile. An owner that does
// not fit is counted and said.
func preexistingCapacity(fileNr string, most uint32) uint32 {
	fields := strings.Fields(fileNr)
	if len(fields) == 0 {
		return most
	}
	files, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return most
	}
	want := uint64(4096)
	for want < 2*files+4096 {
		want *= 2
	}
	return uint32(min(want, uint64(most)))
}

// Hooks reports how each hook is attached.
func (p *Probe) Hooks() []Hook { return p.hooks }

// Lost returns how many records the kernel side dropped because the ring
// buffer was full.
func (p *Probe) Lost() (uint64, error) {
	var n uint64
	if err := p.coll.Variables[bpf.TcptraceVarLostTotal].Get(&n); err != nil {
		return 0, fmt.Errorf("read %s: %w", bpf.TcptraceVarLostTotal, err)
	}
	return n, nil
}

// Loss returns the records the kernel side dropped, by kind and by CPU.
func (p *Probe) Loss() (events.Loss, error) {
	perKind, err := p.lostPerKind()
	if err != nil {
		return events.Loss{}, err
	}
	names, err := recordKinds()
	if err != nil {
		return events.Loss{}, err
	}
	var loss events.Loss
	for kind, perCPU := range perKind {
		for cpu, n := range perCPU {
			if n == 0 {
				continue
			}
			if loss.ByKind == nil {
				loss.ByKind, loss.ByCPU = map[string]uint64{}, make([]uint64, len(perCPU))
			}
			loss.Total += n
			loss.ByKind[names[kind]] += n
			loss.ByCPU[cpu] += n
		}
	}
	return loss, nil
}

// lostPerKind reads the lost counters: one slice of per-CPU counts for
// each kind of record.
func (p *Probe) lostPerKind() ([][]uint64, error) {
	m := p.coll.Maps[bpf.TcptraceMapLost]
	perKind := make([][]uint64, m.MaxEntries())
	for kind := range perKind {
		if err := m.Lookup(uint32(kind), &perKind[kind]); err != nil {
			return nil, fmt.Errorf("read lost counter: %w", err)
		}
	}
	return perKind, nil
}

// recordKinds names the kinds of record by their value, from the BPF
// object's own enum event_type: EVENT_TW_START is "tw_start".
func recordKinds() (map[int]string, error) {
	spec, err := objectSpec()
	if err != nil {
		return nil, err
	}
	var enum *btf.Enum
	if err := spec.Types.TypeByName("event_type", &enum); err != nil {
		return nil, fmt.Errorf("record kinds: %w", err)
	}
	names := map[int]string{}
	for _, v := range enum.Values {
		names[int(v.Value)] = strings.ToLower(strings.TrimPrefix(v.Name, "EVENT_"))
	}
	return names, nil
}

// Read passes every record to onRecord until ctx is done, then detaches the
// hooks and drains what is left. The record is only valid during the call.
// onPoll runs after each poll interval, and once more at the end.
func (p *Probe) Read(ctx context.Context, pollEvery time.Duration, onRecord func([]byte) error, onPoll func() error) error {
	var rec ringbuf.Record
	draining := false
	p.reader.SetDeadline(time.Now().Add(pollEvery))
	for {
		err := p.reader.ReadInto(&rec)
		switch {
		case err == nil:
			if err := onRecord(rec.RawSample); err != nil {
				return err
			}
			continue
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if err := onPoll(); err != nil {
			return err
		}
		if draining {
			return nil
		}
		if ctx.Err() != nil {
			// Detach first so that the drain sees everything that was sent.
			p.detach()
			draining = true
			p.reader.SetDeadline(time.Now())
			continue
		}
		p.reader.SetDeadline(time.Now().Add(pollEvery))
	}
}

func (p *Probe) detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}

// Close detaches and unloads everything.
func (p *Probe) Close() error {
	p.detach()
	for _, it := range p.iters {
		it.Close()
	}
	if p.reader != nil {
		p.reader.Close()
	}
	p.coll.Close()
	if p.stats != nil {
		p.stats.Close()
	}
	return nil
}

// ProgramCosts returns each program's runs and the time spent in them since
// the probe opened, the costliest first; nil unless Config.ProgramStats.
func (p *Probe) ProgramCosts() ([]events.ProgramCost, error) {
	if p.stats == nil {
		return nil, nil
	}
	var costs []events.ProgramCost
	for name, prog := range p.coll.Programs {
		st, err := prog.Stats()
		if err != nil {
			return nil, fmt.Errorf("statistics of %s: %w", name, err)
		}
		if st.RunCount > 0 {
			costs = append(costs, events.ProgramCost{Program: name, Runs: st.RunCount, Time: st.Runtime})
		}
	}
	slices.SortFunc(costs, func(a, b events.ProgramCost) int { return cmp.Compare(b.Time, a.Time) })
	return costs, nil
}

// Report is what `tcptrace features` shows.
type Report struct {
	Kernel    *Kernel
	Privilege error // nil when tcptrace may load programs
	// Without privileges RingBuf, Helpers and every hook that BTF does
	// not rule out are ErrNotChecked.
	RingBuf error // nil when the kernel has a BPF ring buffer
	Helpers error // nil when tracing programs have the helpers tcptrace needs
	Hooks   []Hook
	// Attached is true when every hook was loaded and attached for real;
	// false when only the kernel's BTF was consulted.
	Attached bool
}

// Features checks what this kernel offers: with privileges it loads and
// attaches every hook, then detaches. Without, it tells only what the
// kernel's BTF rules out, and the rest is ErrNotChecked: nothing can be
// loaded, and the kernel hides the addresses some hooks need.
func Features(k *Kernel) Report {
	r := Report{Kernel: k, Privilege: CheckPrivileges()}
	if r.Privilege != nil {
		r.RingBuf, r.Helpers = ErrNotChecked, ErrNotChecked
		r.Hooks = Plan(k)
		for i := range r.Hooks {
			if h := &r.Hooks[i]; h.Err == nil || errors.Is(h.Err, errAddressesHidden) {
				h.Err = ErrNotChecked
			}
		}
		return r
	}
	r.RingBuf = features.HaveMapType(ebpf.RingBuf)
	if r.Helpers = tracingHelpersPresent(k); r.Helpers != nil {
		r.Hooks = Plan(k)
		return r
	}
	l, err := begin(Config{})
	var p *Probe
	if err == nil {
		p, err = l.open(k, Config{})
		l.ring.close()
	}
	if err != nil {
		r.Hooks = Plan(k)
		for i := range r.Hooks {
			if r.Hooks[i].Err == nil {
				r.Hooks[i].Err = err
			}
		}
		return r
	}
	r.Hooks, r.Attached = p.Hooks(), true
	p.Close()
	return r
}
