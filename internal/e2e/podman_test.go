package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestPodman: the image of deploy/Containerfile runs under podman with
// exactly the DaemonSet's capabilities, the host's PID namespace, a
// read-only root and the host's cgroup tree and BTF mounted, as on a node;
// it traces the host's kernel, with --container keeping a second
// container's sockets (in that container's own network namespace), and
// attributes their connections to that container. The image's build stage needs
// a registry's Go image: the test builds the same static binary here and
// the Containerfile's final stage around it.
func TestPodman(t *testing.T) {
	requireTracing(t)
	if os.Getenv("TCPTRACE_GUEST_KERNEL") != "" {
		t.Skip("the kernel matrix's guests have no container storage nor cgroup v2 tree")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_PODMAN") == "1" {
			t.Fatal("podman is not installed")
		}
		t.Skip("podman is not installed (scripts/install-deps.sh installs it)")
	}
	if out, err := exec.Command(podman, "info").CombinedOutput(); err != nil {
		if os.Getenv("TCPTRACE_REQUIRE_PODMAN") == "1" {
			t.Fatalf("podman does not run here: %v\n%s", err, out)
		}
		t.Skipf("podman does not run here: %v\n%s", err, out)
	}
	// podman's default runtime, crun, refuses a host whose cgroup v1
	// controllers sit beside a v2 hierarchy (hybrid); runc runs there.
	var global []string
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		if _, err := exec.LookPath("runc"); err != nil {
			t.Skip("this host's cgroups are hybrid, which crun refuses: apt-get install runc")
		}
		global = []string{"--runtime", "runc"}
	}
	// Limits no higher than a root without CAP_SYS_RESOURCE may set (some
	// sandboxes), unlike podman's defaults; no network: each container has
	// its own namespace, as a pod without hostNetwork has.
	run := append(global, "run", "--rm", "--network", "none", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
	dir := t.TempDir()
	tracerImage, actorImage := fmt.Sprintf("localhost/tcptrace-e2e:%d", os.Getpid()), fmt.Sprintf("localhost/tcptrace-e2e-actor:%d", os.Getpid())
	buildImage(t, podman, tracerImage, filepath.Join(dir, "tracer"), finalStage(t), "tcptrace", "build", "-o", "tcptrace", "../../cmd/tcptrace")
	buildImage(t, podman, actorImage, filepath.Join(dir, "actor"), "FROM scratch\nCOPY actor /actor\nENTRYPOINT [\"/actor\"]\n",
		"actor", "test", "-c", "-o", "actor", ".")

	// The actor's container first, waiting for its commands: tcptrace is
	// told to trace only that container (--container, in the kernel), which
	// it finds in the host's cgroup tree.
	cidFile := filepath.Join(dir, "cid")
	actor := exec.Command(podman, append(run, "-i", "--cidfile", cidFile, "-e", actorEnv+"=1", actorImage)...)
	commands, err := actor.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	answers, err := actor.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	actor.Stderr = os.Stderr
	if err := actor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { commands.Close(); actor.Wait() })
	replies := bufio.NewScanner(answers)
	answer := func() string {
		if !replies.Scan() {
			t.Fatalf("the actor's container ended: %v", replies.Err())
		}
		return replies.Text()
	}
	if line := answer(); !strings.HasPrefix(line, "started ") {
		t.Fatalf("the actor's container: %q", line)
	}
	cid, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(cid))

	ready := filepath.Join(dir, "run")
	if err := os.Mkdir(ready, 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tcptrace-e2e-%d", os.Getpid())
	tracer := exec.Command(podman, append(run, "--name", name, "--pid", "host", "--cap-drop", "ALL",
		"--cap-add", strings.Join(daemonSetCapabilities(t), ","), "--security-opt", "no-new-privileges", "--read-only",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", ready+":/run/tcptrace",
		tracerImage, "-o", "json", "--ready-file", "/run/tcptrace/ready", "--container", id[:12])...)
	var stdout, stderr bytes.Buffer
	tracer.Stdout, tracer.Stderr = &stdout, &stderr
	if err := tracer.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = tracer.Wait(); close(exited) }()
	t.Cleanup(func() {
		exec.Command(podman, append(global, "rm", "-f", name)...).Run()
		<-exited
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(ready, "ready")); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("tcptrace in its container ended before it was ready: %v\n%s", exitErr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcptrace in its container not ready after 60s:\n%s", stderr.String())
		}
	}
	fmt.Fprintln(commands, "timewaits 3")
	if line := answer(); line != "ok" {
		t.Fatalf("the actor's container: timewaits: %q", line)
	}
	fmt.Fprintln(commands, "exit")
	commands.Close()
	if err := actor.Wait(); err != nil {
		t.Fatalf("the actor's container: %v", err)
	}
	settle()
	if out, err := exec.Command(podman, append(global, "stop", "-t", "30", name)...).CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	<-exited
	if exitErr != nil {
		t.Fatalf("tcptrace in its container: %v\n%s", exitErr, stderr.String())
	}

	var established, timewaits, stats int
	for line := range strings.SplitSeq(strings.TrimSpace(stdout.String()), "\n") {
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		switch {
		case e.Type == "stats":
			stats++
		case e.ContainerID != id && (e.Type == "state" || e.Type == "destroy"):
			t.Errorf("--container %.12s let through %+v", id, e)
		case e.ContainerID != id:
		case e.Runtime != "podman" || e.Comm != "actor":
			t.Errorf("the actor's container's event %+v, want runtime podman, comm actor", e)
		case e.Type == "state" && e.NewState == "ESTABLISHED":
			established++
		case e.Type == "timewait_enter":
			timewaits++
		}
	}
	if established != 6 || timewaits != 3 || stats != 1 {
		t.Errorf("container %.12s: %d sockets established, %d TIME_WAIT sockets, %d stats lines; want 6 (3 connections), 3, 1:\n%s",
			cid, established, timewaits, stats, stdout.String())
	}
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		// A kernel refusing fentry refuses root as much (tcptrace features).
		refusedToAll := strings.Contains(line, "does not permit fentry") || strings.Contains(line, "does not permit fexit")
		if !refusedToAll && (strings.Contains(line, "not permitted") || strings.Contains(line, "permission denied") || strings.Contains(line, "kallsyms")) {
			t.Errorf("with the DaemonSet's capabilities: %s", line)
		}
	}
}

// finalStage is deploy/Containerfile's last stage, copying the binary
// built here instead of the build stage's.
func finalStage(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile("../../deploy/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(string(text), "\nFROM ")
	stage, ok := strings.CutPrefix(string(text[i+1:]), "FROM scratch\nCOPY --from=build /out/tcptrace /tcptrace\n")
	if i < 0 || !ok {
		t.Fatalf("deploy/Containerfile's last stage is no FROM scratch copying /out/tcptrace from the build stage:\n%s", text[i+1:])
	}
	return "FROM scratch\nCOPY tcptrace /tcptrace\n" + stage
}

// buildImage builds binary, static, with `go goArgs...` into dir, and an
// image named tag from containerfile around it.
func buildImage(t *testing.T, podman, tag, dir, containerfile, binary string, goArgs ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if errors.Is(err, exec.ErrNotFound) {
		goTool = "/usr/local/go/bin/go" // where sudo's PATH does not reach
	}
	for i, a := range goArgs {
		if a == binary {
			goArgs[i] = filepath.Join(dir, binary)
		}
	}
	build := exec.Command(goTool, goArgs...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // FROM scratch has no libc
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(goArgs, " "), err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(podman, "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		t.Fatalf("podman build %s: %v\n%s", tag, err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })
}

// daemonSetCapabilities are the capabilities deploy/daemonset.yaml adds.
func daemonSetCapabilities(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../deploy/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							SecurityContext struct {
								Capabilities struct {
									Add []string `yaml:"add"`
								} `yaml:"capabilities"`
							} `yaml:"securityContext"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("deploy/daemonset.yaml: no DaemonSet's capabilities: %v", err)
		}
		if containers := doc.Spec.Template.Spec.Containers; doc.Kind == "DaemonSet" && len(containers) > 0 {
			return containers[0].SecurityContext.Capabilities.Add
		}
	}
}
