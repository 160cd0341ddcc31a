package container

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeEndpoints are where the CRI runtimes listen by default, in the
// order crictl tries them, then k3s's own containerd.
var RuntimeEndpoints = []string{
	"unix:///run/containerd/containerd.sock",
	"unix:///run/crio/crio.sock",
	"unix:///var/run/cri-dockerd.sock",
	"unix:///run/k3s/containerd/containerd.sock",
}

// Pod is a pod's name and namespace.
type Pod struct{ Name, Namespace string }

// RuntimeEndpointEnv names the variable crictl reads the endpoint from.
const RuntimeEndpointEnv = "CONTAINER_RUNTIME_ENDPOINT"

// criTimeout bounds one question to a runtime: it is asked from the
// pipeline, which must not wait long on a runtime that hangs.
const criTimeout = time.Second

// RuntimeSocket returns the socket a CRI endpoint names: unix:///PATH, or
// a bare PATH, as crictl takes them. The runtimes' other transports (tcp,
// Windows' named pipes) are not for a node's own tracer.
func RuntimeSocket(endpoint string) (string, error) {
	path := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "unix" {
			return "", fmt.Errorf("CRI endpoint %q: only unix:///PATH sockets are supported", endpoint)
		}
		path = rest
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("CRI endpoint %q: want unix:///PATH or an absolute PATH", endpoint)
	}
	return path, nil
}

// FindRuntimeEndpoints returns those of RuntimeEndpoints whose socket
// exists.
func FindRuntimeEndpoints() []string {
	var found []string
	for _, ep := range RuntimeEndpoints {
		path, _ := RuntimeSocket(ep) // all of them are unix:///PATH
		if info, err := os.Stat(path); err == nil && info.Mode().Type() == os.ModeSocket {
			found = append(found, ep)
		}
	}
	return found
}

// CRIClient asks a container runtime, over its CRI socket, which pods it runs.
type CRIClient struct {
	Endpoint string
	conn     *grpc.ClientConn
	runtime  runtimeapi.RuntimeServiceClient
}

// DialCRI makes a client of the runtime at endpoint (see RuntimeSocket).
// It connects when first asked: a runtime not running yet is no error.
func DialCRI(endpoint string) (*CRIClient, error) {
	path, err := RuntimeSocket(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI endpoint %s: %w", endpoint, err)
	}
	return &CRIClient{Endpoint: endpoint, conn: conn, runtime: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

// Pods lists the runtime's pod sandboxes by pod UID, waiting criTimeout at
// most.
func (c *CRIClient) Pods(ctx context.Context) (map[string]Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	resp, err := c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list the pods of the runtime at %s: %w", c.Endpoint, err)
	}
	pods := map[string]Pod{}
	for _, sb := range resp.GetItems() {
		// A pod restarted in place has one sandbox per attempt, all of
		// the same name.
		if md := sb.GetMetadata(); md.GetUid() != "" {
			pods[md.GetUid()] = Pod{Name: md.GetName(), Namespace: md.GetNamespace()}
		}
	}
	return pods, nil
}

// Describe names the runtime, as it names itself, and its endpoint.
func (c *CRIClient) Describe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	v, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "at " + c.Endpoint
	}
	return v.GetRuntimeName() + " " + v.GetRuntimeVersion() + " at " + c.Endpoint
}

// Close closes the connection to the runtime.
func (c *CRIClient) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close the CRI connection to %s: %w", c.Endpoint, err)
	}
	return nil
}
