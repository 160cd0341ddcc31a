package bpf

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tcptrace/tcptrace/internal/decode"
	"github.com/tcptrace/tcptrace/internal/privtest"
)

// filters are the loader-set constants of filter.h a case loads with.
type filters map[string]any

// loadHelpers loads testdata/helpers_bpfel.o, the filter and sequence
// helpers of the real programs behind raw_tp test programs, with filters set.
func loadHelpers(t *testing.T, f filters) *ebpf.Collection {
	t.Helper()
	privtest.RequireRoot(t)
	spec, err := ebpf.LoadCollectionSpec("testdata/helpers_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range f {
		vs, ok := spec.Variables[name]
		if !ok {
			t.Fatalf("no variable %s in the helpers object", name)
		}
		if err := vs.Set(v); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load helpers: %v", err)
	}
	t.Cleanup(coll.Close)
	return coll
}

// run calls a test program with its arguments (BPF_PROG_TEST_RUN) and
// returns what the helper behind it answered.
func run(t *testing.T, coll *ebpf.Collection, prog string, args ...uint64) bool {
	t.Helper()
	ret, err := coll.Programs[prog].Run(&ebpf.RunOptions{Context: args})
	if err != nil {
		t.Fatalf("run %s%v: %v", prog, args, err)
	}
	return ret != 0
}

func ports(ps ...uint16) [16]uint16 {
	var a [16]uint16
	copy(a[:], ps)
	return a
}

func TestIDWanted(t *testing.T) {
	const af4, af6 = 2, 10
	type sock struct {
		netns, family, sport, dport uint64
		zeroed                      bool
	}
	cases := []struct {
		name    string
		filters filters
		want    map[sock]bool
	}{
		{"no filter", filters{}, map[sock]bool{
			{1, af4, 80, 5000, false}: true,
			{2, af6, 0, 0, true}:      true,
		}},
		{"netns", filters{"filter_netns": uint32(7)}, map[sock]bool{
			{7, af4, 80, 5000, false}: true,
			{8, af4, 80, 5000, false}: false,
		}},
		{"family", filters{"filter_family": uint16(af6)}, map[sock]bool{
			{1, af6, 80, 5000, false}: true,
			{1, af4, 80, 5000, false}: false,
		}},
		{"port either side", filters{"filter_port_count": uint32(2), "filter_ports": ports(443, 8080)}, map[sock]bool{
			{1, af4, 443, 5000, false}:  true,
			{1, af4, 5000, 8080, false}: true,
			{1, af4, 5000, 5001, false}: false,
			// Past the count: not a filter port.
			{1, af4, 0, 5001, false}: false,
			// A zeroed remote port cannot be told: it passes.
			{1, af4, 5000, 0, true}: true,
		}},
		{"local port", filters{"filter_lport_count": uint32(1), "filter_lports": ports(443)}, map[sock]bool{
			{1, af4, 443, 5000, false}: true,
			{1, af4, 5000, 443, false}: false,
			{1, af4, 5000, 0, true}:    false,
		}},
		{"remote port", filters{"filter_rport_count": uint32(1), "filter_rports": ports(443)}, map[sock]bool{
			{1, af4, 5000, 443, false}: true,
			{1, af4, 443, 5000, false}: false,
			{1, af4, 443, 0, true}:     true,
		}},
		{"every filter must hold", filters{"filter_netns": uint32(7), "filter_lport_count": uint32(1), "filter_lports": ports(443)}, map[sock]bool{
			{7, af4, 443, 5000, false}: true,
			{8, af4, 443, 5000, false}: false,
			{7, af4, 444, 5000, false}: false,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			coll := loadHelpers(t, c.filters)
			for s, want := range c.want {
				zeroed := uint64(0)
				if s.zeroed {
					zeroed = 1
				}
				if got := run(t, coll, "id_wanted_run", s.netns, s.family, s.sport, s.dport, zeroed); got != want {
					t.Errorf("%+v: wanted %v, want %v", s, got, want)
				}
			}
		})
	}
}

func TestOwnerWanted(t *testing.T) {
	type owner struct {
		known    bool
		tgid     uint64
		cgroupID uint64
	}
	var pids [64]uint32
	pids[0], pids[1] = 100, 200
	var cgroups [64]uint64
	cgroups[0] = 9000
	cases := []struct {
		name    string
		filters filters
		want    map[owner]bool
	}{
		{"no filter", filters{}, map[owner]bool{
			{false, 0, 0}:  true,
			{true, 100, 1}: true,
		}},
		{"pid", filters{"filter_pid_count": uint32(2), "filter_pids": pids}, map[owner]bool{
			{true, 100, 1}:  true,
			{true, 200, 1}:  true,
			{true, 300, 1}:  false,
			{false, 0, 0}:   false,
			{true, 0, 9000}: false,
		}},
		{"cgroup", filters{"filter_cgroup_count": uint32(1), "filter_cgroups": cgroups}, map[owner]bool{
			{true, 300, 9000}: true,
			{true, 300, 9001}: false,
			{false, 0, 0}:     false,
		}},
		{"pid and cgroup", filters{"filter_pid_count": uint32(1), "filter_pids": pids, "filter_cgroup_count": uint32(1), "filter_cgroups": cgroups}, map[owner]bool{
			{true, 100, 9000}: true,
			{true, 100, 9001}: false,
			{true, 200, 9000}: false,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			coll := loadHelpers(t, c.filters)
			for o, want := range c.want {
				known := uint64(0)
				if o.known {
					known = 1
				}
				if got := run(t, coll, "owner_wanted_run", known, o.tgid, o.cgroupID); got != want {
					t.Errorf("%+v: wanted %v, want %v", o, got, want)
				}
			}
		})
	}
}

// TestSeqCompare checks the comparisons modulo 2^32 that judge segments
// against the receive window, wrap-around included.
func TestSeqCompare(t *testing.T) {
	coll := loadHelpers(t, filters{})
	for _, c := range []struct {
		a, b   uint32
		before bool
		after  bool
	}{
		{1, 2, true, false},
		{2, 1, false, true},
		{5, 5, false, false},
		{0xffffffff, 0, true, false},
		{0, 0xffffffff, false, true},
		{0xfffffff0, 0x10, true, false},
		{0x10, 0x7fffffff, true, false},
		{0x10, 0x90000000, false, true},
	} {
		if got := run(t, coll, "seq_before_run", uint64(c.a), uint64(c.b)); got != c.before {
			t.Errorf("seq_before(%#x, %#x) = %v, want %v", c.a, c.b, got, c.before)
		}
		if got := run(t, coll, "seq_after_run", uint64(c.a), uint64(c.b)); got != c.after {
			t.Errorf("seq_after(%#x, %#x) = %v, want %v", c.a, c.b, got, c.after)
		}
	}
}

// TestRecordLengths: the decoder's length of every kind's record is the
// one record_length() in event.h gives the programs.
func TestRecordLengths(t *testing.T) {
	coll := loadHelpers(t, filters{})
	for typ := range 256 {
		ret, err := coll.Programs["record_length_run"].Run(&ebpf.RunOptions{Context: []uint64{uint64(typ)}})
		if err != nil {
			t.Fatalf("run record_length_run(%d): %v", typ, err)
		}
		if want := decode.Length(uint8(typ)); int(ret) != want {
			t.Errorf("type %d: record_length() %d, decode.Length %d", typ, ret, want)
		}
	}
}
