package probe

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

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
)

// DefaultBTFPath is where the running kernel exposes its own BTF.
const DefaultBTFPath = "/sys/kernel/btf/vmlinux"

// Kernel is what tcptrace learnt about the running kernel.
type Kernel struct {
	Release string // uname -r
	BTFPath string
	// HZ is the kernel's tick rate (CONFIG_HZ), 0 when unknown: timers
	// count in ticks.
	HZ             int
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
	// Reading /proc/kallsyms costs about 50 ms of kernel time: overlap it
	// with parsing BTF.
	type symbols struct {
		addrs map[string]uint64
		err   error
	}
	kallsymsDone := make(chan symbols, 1)
	go func() {
		addrs, err := kallsyms("/proc/kallsyms", "tw_timer_handler", "tcp_keepalive_timer", "tcp_write_timer")
		kallsymsDone <- symbols{addrs, err}
	}()
	var spec *btf.Spec
	var err error
	if btfPath == DefaultBTFPath {
		// The library's cached copy, which the loader itself uses too.
		spec, err = btf.LoadKernelSpec()
	} else {
		spec, err = btf.LoadSpec(btfPath)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrNoBTF, btfPath, err)
	}
	k.btf = spec
	if err := k.readEnums(); err != nil {
		return nil, err
	}
	if err := k.readTimerOffsets(); err != nil {
		return nil, err
	}
	k.HZ = readHZ(k.Release)
	k.names.HZ = k.HZ
	syms := <-kallsymsDone
	k.twTimerHandler, k.kallsymsErr = syms.addrs["tw_timer_handler"], syms.err
	k.keepaliveTimer, k.writeTimer = syms.addrs["tcp_keepalive_timer"], syms.addrs["tcp_write_timer"]
	return k, nil
}

// readEnums resolves TCP state and RST reason numbers by name. The TCP state
// enum is anonymous in the kernel, so it is found by one of its enumerators.
func (k *Kernel) readEnums() error {
	k.names.States = map[uint8]events.State{}
	k.states = map[events.State]uint8{}
	// One pass for both anonymous enums, stopped when both are found: the
	// TCP states, and the SNMP MIB numbers tcp_write_wakeup() is given.
	for typ, err := range k.btf.All() {
		if err != nil {
			return fmt.Errorf("read kernel BTF: %w", err)
		}
		enum, ok := typ.(*btf.Enum)
		if !ok || enum.Name != "" {
			continue
		}
		switch {
		case hasEnumerator(enum, "TCP_ESTABLISHED"):
			for _, v := range enum.Values {
				name, ok := strings.CutPrefix(v.Name, "TCP_")
				if !ok || v.Value > 255 || name == "MAX_STATES" {
					continue
				}
				k.names.States[uint8(v.Value)] = events.State(name)
				k.states[events.State(name)] = uint8(v.Value)
			}
		case hasEnumerator(enum, "LINUX_MIB_TCPKEEPALIVE"):
			for _, v := range enum.Values {
				switch v.Name {
				case "LINUX_MIB_TCPKEEPALIVE":
					k.mibKeepalive = uint32(v.Value)
				case "LINUX_MIB_TCPWINPROBE":
					k.mibWinProbe = uint32(v.Value)
				}
			}
		}
		if len(k.states) > 0 && k.mibKeepalive != 0 {
			break
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

func hasEnumerator(e *btf.Enum, name string) bool {
	for _, v := range e.Values {
		if v.Name == name {
			return true
		}
	}
	return false
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
				return found, fmt.Errorf("%s shows no addresses (kernel.kptr_restrict, or not root)", path)
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
// /boot/config-RELEASE), or else works it out from /proc/timer_list; 0 when
// nothing tells.
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
	b, err := os.ReadFile("/proc/timer_list")
	if err != nil {
		return 0
	}
	return timerListHZ(string(b))
}

// timerListHZ works HZ out of /proc/timer_list's "now at N nsecs" and first
// "jiffies: J": jiffies start at 2^32 - 300*HZ (INITIAL_JIFFIES, so that
// they wrap 5 minutes after boot) and count HZ a second.
func timerListHZ(text string) int {
	var nowNs, jiffies float64
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, "now at "); ok && nowNs == 0 {
			nowNs, _ = strconv.ParseFloat(strings.TrimSuffix(v, " nsecs"), 64)
		}
		if v, ok := strings.CutPrefix(line, "jiffies: "); ok && jiffies == 0 {
			jiffies, _ = strconv.ParseFloat(v, 64)
		}
	}
	secs := nowNs/1e9 - 300
	if nowNs == 0 || jiffies == 0 || math.Abs(secs) < 1 {
		return 0
	}
	estimate := (jiffies - (1 << 32)) / secs
	for _, hz := range []int{100, 250, 300, 1000} {
		if math.Abs(estimate-float64(hz)) < float64(hz)/20 {
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
