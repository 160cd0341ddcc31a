package probe

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/events"
)

// Errors for the failures a user can fix; the CLI turns each into a sentence.
var (
	ErrNotPrivileged = errors.New("not privileged")
	ErrNoBTF         = errors.New("no kernel BTF")
	ErrNoRingBuffer  = errors.New("no BPF ring buffer")
	ErrHookMissing   = errors.New("kernel hook missing")
	// ErrKernelTooOld: tracing programs here lack a helper tcptrace
	// cannot do without (Linux before 5.12).
	ErrKernelTooOld = errors.New("kernel too old")
	// ErrNotChecked: without privileges nothing can be loaded to find out.
	ErrNotChecked = errors.New("not checked: that needs root")
)

// errAddressesHidden: /proc/kallsyms shows zeros, as it does to users
// without privileges, so what needs a function's address cannot be told.
var errAddressesHidden = errors.New("no addresses shown (kernel.kptr_restrict, or not root)")

// DefaultBTFPath is where the running kernel exposes its own BTF.
const DefaultBTFPath = "/sys/kernel/btf/vmlinux"

// Kernel is what tcptrace learnt about the running kernel.
type Kernel struct {
	Release        string // uname -r
	BTFPath        string
	twTimerHandler uint64
	// Handlers of a socket's keepalive and write timers, and where those
	// timers are in the socket.
	keepaliveTimer, writeTimer             uint64
	keepaliveTimerOffset, writeTimerOffset uint32
	// SNMP MIB numbers of keepalive and zero-window probes.
	mibKeepalive, mibWinProbe uint32
	kallsymsErr               error
	btf                       *btf.Spec
	names                     decode.Names
	states                    map[events.State]uint8
	// btfCache holds the running kernel's BTF, parsed once, for the
	// loader too; nil when BTF is read from elsewhere.
	btfCache *btf.Cache
}

// OpenKernel reads the kernel's release and its BTF at btfPath (the kernel's
// own BTF is needed: tp_btf programs attach by BTF id).
func OpenKernel(btfPath string) (*Kernel, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	k := &Kernel{Release: unix.ByteSliceToString(uts.Release[:]), BTFPath: btfPath}
	if _, err := os.Stat(btfPath); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoBTF, btfPath, err)
	}
	// Overlap what needs no parsed BTF with parsing it: finding the timer
	// handlers' addresses, and the anonymous enums.
	type symbols struct {
		addrs map[string]uint64
		err   error
	}
	symbolsDone := make(chan symbols, 1)
	go func() {
		addrs, err := kernelSymbols("tw_timer_handler", "tcp_keepalive_timer", "tcp_write_timer")
		symbolsDone <- symbols{addrs, err}
	}()
	type enums struct {
		byEnumerator map[string][]btf.EnumValue
		err          error
	}
	enumsDone := make(chan enums, 1)
	go func() {
		byEnumerator, err := fileAnonymousEnums(btfPath, "TCP_ESTABLISHED", "LINUX_MIB_TCPKEEPALIVE")
		enumsDone <- enums{byEnumerator, err}
	}()
	var spec *btf.Spec
	var err error
	if btfPath == DefaultBTFPath {
		// Parsed once, into the cache that the loader looks up attach
		// targets in as well (each parse costs some 20 ms).
		k.btfCache = btf.NewCache()
		spec, err = k.btfCache.Kernel()
	} else {
		spec, err = btf.LoadSpec(btfPath)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrNoBTF, btfPath, err)
	}
	k.btf = spec
	anon := <-enumsDone
	if anon.err != nil {
		return nil, fmt.Errorf("find anonymous enums in %s: %w", btfPath, anon.err)
	}
	if err := k.readEnums(anon.byEnumerator); err != nil {
		return nil, err
	}
	if err := k.readTimerOffsets(); err != nil {
		return nil, err
	}
	k.names.HZ = readHZ(k.Release) // CONFIG_HZ: timers count in ticks
	syms := <-symbolsDone
	k.twTimerHandler, k.kallsymsErr = syms.addrs["tw_timer_handler"], syms.err
	k.keepaliveTimer, k.writeTimer = syms.addrs["tcp_keepalive_timer"], syms.addrs["tcp_write_timer"]
	return k, nil
}

// readEnums resolves TCP state and RST reason numbers by name. The TCP
// states and the SNMP MIB numbers tcp_write_wakeup() is given are anonymous
// enums: anon holds them by one of their enumerators (see anonymousEnums).
func (k *Kernel) readEnums(anon map[string][]btf.EnumValue) error {
	k.names.States = map[uint8]events.State{}
	k.states = map[events.State]uint8{}
	for _, v := range anon["TCP_ESTABLISHED"] {
		name, ok := strings.CutPrefix(v.Name, "TCP_")
		if !ok || v.Value > 255 || name == "MAX_STATES" {
			continue
		}
		k.names.States[uint8(v.Value)] = events.State(name)
		k.states[events.State(name)] = uint8(v.Value)
	}
	for _, v := range anon["LINUX_MIB_TCPKEEPALIVE"] {
		switch v.Name {
		case "LINUX_MIB_TCPKEEPALIVE":
			k.mibKeepalive = uint32(v.Value)
		case "LINUX_MIB_TCPWINPROBE":
			k.mibWinProbe = uint32(v.Value)
		}
	}
	for _, s := range []events.State{events.StateClose, events.StateListen, events.StateSynSent, events.StateSynRecv,
		events.StateFinWait1, events.StateFinWait2, events.StateLastAck, events.StateTimeWait, events.StateNewSynRecv} {
		if _, ok := k.states[s]; !ok {
			return fmt.Errorf("%w: TCP state TCP_%s not found in kernel BTF", ErrHookMissing, s)
		}
	}

	var verdicts *btf.Enum
	if err := k.btf.TypeByName("tcp_tw_status", &verdicts); err == nil {
		k.names.TWVerdicts = map[uint32]string{}
		for _, v := range verdicts.Values {
			if name, ok := strings.CutPrefix(v.Name, "TCP_TW_"); ok && v.Value <= 0xffffffff {
				k.names.TWVerdicts[uint32(v.Value)] = name
			}
		}
	}

	var reasons *btf.Enum
	if err := k.btf.TypeByName("sk_rst_reason", &reasons); err == nil {
		k.names.ResetReasons = map[uint32]string{}
		for _, v := range reasons.Values {
			if name, ok := strings.CutPrefix(v.Name, "SK_RST_REASON_"); ok && v.Value <= 0xffffffff {
				k.names.ResetReasons[uint32(v.Value)] = name
			}
		}
	} else if !errors.Is(err, btf.ErrNotFound) {
		return fmt.Errorf("read enum sk_rst_reason from kernel BTF: %w", err)
	}
	return nil
}

// Names returns the kernel's enum names for the decoder.
func (k *Kernel) Names() decode.Names { return k.names }

// tracepointArgs returns how many arguments a BTF-enabled tracepoint passes
// (its btf_trace_<name> typedef, without the leading context pointer).
func (k *Kernel) tracepointArgs(tracepoint string) (int, error) {
	var td *btf.Typedef
	if err := k.btf.TypeByName("btf_trace_"+tracepoint, &td); err != nil {
		return 0, fmt.Errorf("%w: tracepoint %s is not in kernel BTF: %w", ErrHookMissing, tracepoint, err)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s: not a function pointer", tracepoint)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s: not a function pointer", tracepoint)
	}
	return len(proto.Params) - 1, nil
}

// funcParams returns how many parameters a kernel function takes.
func (k *Kernel) funcParams(name string) (int, error) {
	var fn *btf.Func
	if err := k.btf.TypeByName(name, &fn); err != nil {
		return 0, fmt.Errorf("%w: function %s is not in kernel BTF: %w", ErrHookMissing, name, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("%s: no function prototype in BTF", name)
	}
	return len(proto.Params), nil
}

// BootTime is the wall-clock time at which CLOCK_MONOTONIC (the clock of
// bpf_ktime_get_ns) read zero. It carries no monotonic reading (Round(0)),
// so that times made from it subtract the same live and in a replay.
func BootTime() time.Time {
	var ts unix.Timespec
	before := time.Now().Round(0)
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return before
	}
	return before.Add(-time.Duration(ts.Nano()))
}

// kernelSymbols finds the addresses of the named kernel functions: from
// the kernel's own symbol lookup where a BPF program may ask it (Linux
// 5.16+), for well under a millisecond, else from /proc/kallsyms, which the
// kernel makes up as it is read, some 50 ms for all of it.
func kernelSymbols(names ...string) (map[string]uint64, error) {
	if addrs, err := lookupSymbols(names...); err == nil {
		return addrs, nil
	}
	// The file also says why an address is missing (no privileges,
	// kernel.kptr_restrict, no such symbol).
	return kallsyms("/proc/kallsyms", names...)
}

// lookupSymbols asks the kernel for the addresses of the named functions
// with a BPF syscall program that calls bpf_kallsyms_lookup_name() once
// for each and stores the addresses in its context, in order.
func lookupSymbols(names ...string) (map[string]uint64, error) {
	const nameSlot, resultSlot = -64, -8 // stack offsets
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	for i, name := range names {
		// The name, NUL-terminated, onto the stack, 8 bytes at a time.
		buf := make([]byte, len(name)/8*8+8)
		if len(buf) > -nameSlot+resultSlot {
			return nil, fmt.Errorf("symbol name %s too long", name)
		}
		copy(buf, name)
		for off := 0; off < len(buf); off += 8 {
			insns = append(insns,
				asm.LoadImm(asm.R1, int64(binary.NativeEndian.Uint64(buf[off:])), asm.DWord),
				asm.StoreMem(asm.RFP, int16(nameSlot+off), asm.R1, asm.DWord))
		}
		insns = append(insns,
			// The helper leaves the result alone when it fails: 0 then.
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, resultSlot, asm.R1, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, nameSlot),
			asm.Mov.Imm(asm.R2, int32(len(name)+1)),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Reg(asm.R4, asm.RFP),
			asm.Add.Imm(asm.R4, resultSlot),
			asm.FnKallsymsLookupName.Call(),
			asm.LoadMem(asm.R1, asm.RFP, resultSlot, asm.DWord),
			asm.StoreMem(asm.R6, int16(8*i), asm.R1, asm.DWord))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "tcptrace_ksyms",
		Type:         ebpf.Syscall,
		Flags:        unix.BPF_F_SLEEPABLE,
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		return nil, fmt.Errorf("load symbol lookup: %w", err)
	}
	defer prog.Close()
	addrs := make([]uint64, len(names))
	if _, err := prog.Run(&ebpf.RunOptions{Context: addrs, ContextOut: addrs}); err != nil {
		return nil, fmt.Errorf("run symbol lookup: %w", err)
	}
	found := map[string]uint64{}
	for i, name := range names {
		if addrs[i] == 0 {
			return nil, fmt.Errorf("kernel symbol lookup found no %s", name)
		}
		found[name] = addrs[i]
	}
	return found, nil
}

// kallsyms finds the addresses of the named kernel functions (exact names;
// the .cold clones are other symbols, and a module's carry its name after a
// tab). It stops reading once all are found: the kernel makes this file up
// as it is read, at some 50 ms for all of it. Unprivileged readers see zeros.
func kallsyms(path string, names ...string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	found := map[string]uint64{}
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	for sc.Scan() && len(found) < len(names) {
		line := sc.Bytes()
		for _, name := range names {
			if !bytes.HasSuffix(line, []byte(" "+name)) {
				continue
			}
			fields := bytes.Fields(line)
			addr, err := strconv.ParseUint(string(fields[0]), 16, 64)
			if err != nil || len(fields) != 3 {
				return found, fmt.Errorf("%s: bad line %q", path, line)
			}
			if addr == 0 {
				return found, fmt.Errorf("%s: %w", path, errAddressesHidden)
			}
			found[name] = addr
		}
	}
	if err := sc.Err(); err != nil {
		return found, fmt.Errorf("%s: %w", path, err)
	}
	for _, name := range names {
		if found[name] == 0 {
			return found, fmt.Errorf("%s has no symbol %s", path, name)
		}
	}
	return found, nil
}

// readHZ reads CONFIG_HZ from the kernel's configuration (/proc/config.gz or
// /boot/config-RELEASE), or else works it out from /proc/timer_list, from one
// reading where it can, else from two; 0 when nothing tells.
func readHZ(release string) int {
	for _, path := range []string{"/proc/config.gz", "/boot/config-" + release} {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		var r io.Reader = f
		if strings.HasSuffix(path, ".gz") {
			gz, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				continue
			}
			r = gz
		}
		hz := configHZ(r)
		f.Close()
		if hz > 0 {
			return hz
		}
	}
	first, ok := readTimerList()
	if !ok {
		return 0
	}
	if hz := hzSinceBoot(first); hz > 0 {
		return hz
	}
	time.Sleep(hzSampleInterval)
	second, ok := readTimerList()
	if !ok {
		return 0
	}
	return hzBetween(first, second)
}

// hzSampleInterval is how far apart the two readings of jiffies are: 50
// ticks at 250 Hz, enough to tell 250 from 300 despite a tick's rounding.
const hzSampleInterval = 200 * time.Millisecond

// clockReading is one reading of /proc/timer_list: "now at N nsecs" and the
// first "jiffies: J".
type clockReading struct {
	nowNs, jiffies float64
}

func readTimerList() (clockReading, bool) {
	b, err := os.ReadFile("/proc/timer_list")
	if err != nil {
		return clockReading{}, false
	}
	return parseTimerList(string(b))
}

func parseTimerList(text string) (clockReading, bool) {
	var r clockReading
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, "now at "); ok && r.nowNs == 0 {
			r.nowNs, _ = strconv.ParseFloat(strings.TrimSuffix(v, " nsecs"), 64)
		}
		if v, ok := strings.CutPrefix(line, "jiffies: "); ok && r.jiffies == 0 {
			r.jiffies, _ = strconv.ParseFloat(v, 64)
		}
	}
	return r, r.nowNs > 0 && r.jiffies > 0
}

// hzSinceBoot is the tick rate one reading shows: jiffies start at
// 2^32 - 300*HZ (INITIAL_JIFFIES, so that they wrap 5 minutes after boot)
// and count HZ a second. They start a while after the clock does (seconds
// under emulation), which swamps the estimate near the wrap: 0 there.
func hzSinceBoot(r clockReading) int {
	secs := r.nowNs/1e9 - 300
	if math.Abs(secs) < 120 {
		return 0
	}
	return nearestHZ((r.jiffies-(1<<32))/secs, 25)
}

// hzBetween is the tick rate two readings show, whatever the uptime.
func hzBetween(first, second clockReading) int {
	secs := (second.nowNs - first.nowNs) / 1e9
	if secs < hzSampleInterval.Seconds()/2 {
		return 0
	}
	return nearestHZ((second.jiffies-first.jiffies)/secs, 12)
}

// nearestHZ is the rate Linux offers within 1/fraction of estimate, or 0.
func nearestHZ(estimate float64, fraction int) int {
	for _, hz := range []int{100, 250, 300, 1000} {
		if math.Abs(estimate-float64(hz)) < float64(hz)/float64(fraction) {
			return hz
		}
	}
	return 0
}

func configHZ(r io.Reader) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ="); ok {
			hz, err := strconv.Atoi(v)
			if err == nil {
				return hz
			}
		}
	}
	return 0
}

// readTimerOffsets finds a socket's keepalive and write timers: sk_timer and
// icsk_retransmit_timer up to 6.18; icsk_keepalive_timer and
// tcp_retransmit_timer after the late-2025 rework (being backported, so the
// layout is what tells, not the version). Both structs start with the
// struct sock, so an offset in either is an offset from the socket.
func (k *Kernel) readTimerOffsets() error {
	var err error
	if k.keepaliveTimerOffset, err = k.firstMember([2]string{"inet_connection_sock", "icsk_keepalive_timer"},
		[2]string{"sock", "sk_timer"}); err != nil {
		return err
	}
	k.writeTimerOffset, err = k.firstMember([2]string{"sock", "tcp_retransmit_timer"},
		[2]string{"inet_connection_sock", "icsk_retransmit_timer"})
	return err
}

// firstMember returns the byte offset of the first {struct, member} the
// kernel has.
func (k *Kernel) firstMember(candidates ...[2]string) (uint32, error) {
	for _, c := range candidates {
		var st *btf.Struct
		if err := k.btf.TypeByName(c[0], &st); err != nil {
			continue
		}
		if off, ok := memberOffset(st.Members, c[1]); ok {
			return off, nil
		}
	}
	return 0, fmt.Errorf("kernel BTF has none of %v", candidates)
}

// memberOffset finds a member by name, looking into anonymous structs and
// unions, and returns its offset in bytes.
func memberOffset(members []btf.Member, name string) (uint32, bool) {
	for _, m := range members {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = t.Members
		case *btf.Union:
			inner = t.Members
		}
		if off, ok := memberOffset(inner, name); ok {
			return m.Offset.Bytes() + off, true
		}
	}
	return 0, false
}
