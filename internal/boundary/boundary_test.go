// Package boundary tests a dependency rule the compiler does not check:
// only package bpf and the probe layer, with what runs a live trace on top
// of it, link cilium/ebpf. Decoding and everything after it is pure Go, so
// that it runs on recordings, without privileges, on every GOARCH.
package boundary

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tcptrace/tcptrace/"

// mayLinkEBPF are the packages that load, attach and read BPF programs.
var mayLinkEBPF = []string{module + "bpf", module + "internal/probe", module + "internal/tracer", module + "cmd/tcptrace"}

func TestOnlyTheProbeLayerLinksEBPF(t *testing.T) {
	// Package bpf's loader builds only for its object's little-endian
	// GOARCHes: list for one of them, wherever the test runs.
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", module+"...")
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	deps := map[string][]string{}
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		fields := strings.Split(strings.TrimSpace(line), "|")
		imports[fields[0]], deps[fields[0]] = strings.Fields(fields[1]), strings.Fields(fields[2])
	}
	linksEBPF := func(pkg string) bool {
		return slices.ContainsFunc(deps[pkg], func(dep string) bool { return strings.HasPrefix(dep, "github.com/cilium/ebpf") })
	}
	if !linksEBPF(module + "internal/probe") {
		t.Fatalf("internal/probe links no cilium/ebpf: the listing shows nothing\n%s", out)
	}
	for _, pkg := range slices.Sorted(maps.Keys(deps)) {
		if slices.Contains(mayLinkEBPF, pkg) || !linksEBPF(pkg) {
			continue
		}
		// Name the imports that bring it in, to say where to cut.
		var through []string
		for _, dep := range append([]string{pkg}, deps[pkg]...) {
			if strings.HasPrefix(dep, module) && slices.ContainsFunc(imports[dep], func(i string) bool { return strings.HasPrefix(i, "github.com/cilium/ebpf") }) {
				through = append(through, dep)
			}
		}
		t.Errorf("%s links cilium/ebpf, through %s", pkg, strings.Join(through, ", "))
	}
}
