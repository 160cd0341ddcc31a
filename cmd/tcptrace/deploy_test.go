//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tcptrace/tcptrace/internal/probe"
)

// The deploy files, from this package's directory.
const (
	containerfile = "../../deploy/Containerfile"
	daemonSetFile = "../../deploy/daemonset.yaml"
	serviceFile   = "../../deploy/tcptrace.service"
)

// checkTraceArgs parses args with tracing's own flags and checks their
// values as a run would, and returns the --metrics address.
func checkTraceArgs(t *testing.T, where string, args []string) string {
	t.Helper()
	cmd := &cobra.Command{Use: "tcptrace"}
	f := defineTraceFlags(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%s: tcptrace %s: %v", where, strings.Join(args, " "), err)
	}
	if rest := cmd.Flags().Args(); len(rest) > 0 {
		t.Errorf("%s: arguments %q, tracing takes none", where, rest)
	}
	if _, err := f.config(); err != nil {
		t.Errorf("%s: tcptrace %s: %v", where, strings.Join(args, " "), err)
	}
	if f.view.format != "none" || f.metrics == "" {
		t.Errorf("%s: -o %s --metrics %q, want a daemon's -o none and --metrics", where, f.view.format, f.metrics)
	}
	return f.metrics
}

// neededCapabilities are the capabilities features lists, without CAP_.
func neededCapabilities() []string {
	var names []string
	for _, c := range probe.Capabilities {
		names = append(names, strings.TrimPrefix(c.Name, "CAP_"))
	}
	return names
}

// containerfileCommand reads the Containerfile's stages' bases and its
// ENTRYPOINT and CMD (exec form), each line continued with \ joined.
func containerfileCommand(t *testing.T) (bases []string, build string, entrypoint, cmd []string) {
	t.Helper()
	text, err := os.ReadFile(containerfile)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.ReplaceAll(string(text), "\\\n", " "), "\n") {
		word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch word {
		case "FROM":
			bases = append(bases, rest)
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		case "ENTRYPOINT", "CMD":
			var list []string
			if err := json.Unmarshal([]byte(rest), &list); err != nil {
				t.Fatalf("Containerfile %s %s: not the exec form (a JSON list): %v", word, rest, err)
			}
			if word == "ENTRYPOINT" {
				entrypoint = list
			} else {
				cmd = list
			}
		}
	}
	return bases, build, entrypoint, cmd
}

// TestContainerfile: a static binary built in a Go stage and copied into
// an empty image, whose default command is a daemon's that tracing takes.
func TestContainerfile(t *testing.T) {
	bases, build, entrypoint, cmd := containerfileCommand(t)
	if len(bases) != 2 || !strings.Contains(bases[0], "golang:") || !strings.HasSuffix(bases[0], " AS build") || bases[1] != "scratch" {
		t.Errorf("stages FROM %q, want a golang build stage, then scratch", bases)
	}
	if !strings.HasPrefix(build, "CGO_ENABLED=0 go build") || !strings.HasSuffix(build, "./cmd/tcptrace") {
		t.Errorf("build %q, want CGO_ENABLED=0 go build of ./cmd/tcptrace (static: scratch has no libc)", build)
	}
	if !slices.Equal(entrypoint, []string{"/tcptrace"}) {
		t.Errorf("ENTRYPOINT %q, want [/tcptrace]", entrypoint)
	}
	checkTraceArgs(t, "Containerfile CMD", cmd)
}

// TestDaemonSet: the manifest parses; its container runs tracing with
// flags that exist and values tracing takes; it has the host's PID
// namespace, exactly the capabilities features lists and no privileged
// mode, a read-only root, the cgroup, BTF and pod log mounts, and its
// metrics port is the one scraped.
func TestDaemonSet(t *testing.T) {
	file, err := os.Open(daemonSetFile)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	type container struct {
		Name    string   `yaml:"name"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Ports   []struct {
			ContainerPort int `yaml:"containerPort"`
		} `yaml:"ports"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			Privileged             *bool `yaml:"privileged"`
			ReadOnlyRootFilesystem bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities           struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []mount `yaml:"volumeMounts"`
	}
	var ds struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
				Spec struct {
					HostPID     bool        `yaml:"hostPID"`
					HostNetwork bool        `yaml:"hostNetwork"`
					Containers  []container `yaml:"containers"`
					Volumes     []struct {
						Name     string `yaml:"name"`
						HostPath struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(file)
	dec.KnownFields(false)
	found := false
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", daemonSetFile, err)
		}
		var kind struct {
			Kind string `yaml:"kind"`
		}
		if err := doc.Decode(&kind); err != nil {
			t.Fatal(err)
		}
		if kind.Kind == "DaemonSet" {
			if err := doc.Decode(&ds); err != nil {
				t.Fatalf("%s: %v", daemonSetFile, err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("%s holds no DaemonSet", daemonSetFile)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID || len(pod.Containers) != 1 {
		t.Fatalf("hostPID %v, %d containers; want the host's PID namespace, one container", pod.HostPID, len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Command != nil {
		t.Errorf("command %q replaces the image's ENTRYPOINT, want it kept", c.Command)
	}
	metrics := checkTraceArgs(t, "DaemonSet args", c.Args)
	_, port, _ := net.SplitHostPort(metrics)
	annotations := ds.Spec.Template.Metadata.Annotations
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port || annotations["prometheus.io/port"] != port ||
		annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("--metrics %s, ports %+v, annotations %v; want that port exposed and scraped", metrics, c.Ports, annotations)
	}
	sc := c.SecurityContext
	if sc.Privileged == nil || *sc.Privileged || !sc.ReadOnlyRootFilesystem {
		t.Errorf("privileged %v, readOnlyRootFilesystem %v; want false and true", sc.Privileged, sc.ReadOnlyRootFilesystem)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(sc.Capabilities.Add, neededCapabilities()) {
		t.Errorf("capabilities drop %q add %q, want drop ALL, add exactly %q (tcptrace features)", sc.Capabilities.Drop, sc.Capabilities.Add, neededCapabilities())
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		hostPaths[v.Name] = v.HostPath.Path
	}
	for _, want := range []string{"/sys/fs/cgroup", "/sys/kernel/btf", "/var/log/pods"} {
		i := slices.IndexFunc(c.VolumeMounts, func(m mount) bool { return m.MountPath == want })
		if i < 0 || !c.VolumeMounts[i].ReadOnly || hostPaths[c.VolumeMounts[i].Name] != want {
			t.Errorf("no read-only mount of the host's %s at %s: %+v", want, want, c.VolumeMounts)
		}
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("resources %+v: want a request and a limit of %s", c.Resources, r)
		}
	}
}

// TestServiceUnit: the unit runs tracing with flags that exist, restarts on
// failure, bounds its capabilities to exactly those features lists, and
// sets none of the hardening options that would take what tracing needs.
func TestServiceUnit(t *testing.T) {
	file, err := os.Open(serviceFile)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	settings := map[string]string{}
	section := ""
	for sc := bufio.NewScanner(file); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is no setting", serviceFile, line)
			}
			settings[section+"."+key] = value
		}
	}
	exec := strings.Fields(settings["Service.ExecStart"])
	if len(exec) == 0 || !strings.HasSuffix(exec[0], "/tcptrace") {
		t.Fatalf("ExecStart %q, want tcptrace", settings["Service.ExecStart"])
	}
	checkTraceArgs(t, "ExecStart", exec[1:])
	if settings["Service.Restart"] != "on-failure" || settings["Service.NoNewPrivileges"] != "yes" {
		t.Errorf("Restart=%s NoNewPrivileges=%s, want on-failure and yes", settings["Service.Restart"], settings["Service.NoNewPrivileges"])
	}
	var want []string
	for _, c := range probe.Capabilities {
		want = append(want, c.Name)
	}
	if got := strings.Fields(settings["Service.CapabilityBoundingSet"]); !slices.Equal(got, want) {
		t.Errorf("CapabilityBoundingSet %q, want exactly %q (tcptrace features)", got, want)
	}
	for option, takes := range map[string]string{
		"ProtectKernelLogs": "CAP_SYSLOG", "PrivateUsers": "the capabilities", "PrivateNetwork": "the metrics port",
		"ProtectProc": "other processes' namespaces", "SystemCallFilter": "bpf()", "User": "root's capabilities",
	} {
		if value, set := settings["Service."+option]; set {
			t.Errorf("%s=%s takes %s from tracing", option, value, takes)
		}
	}
}
