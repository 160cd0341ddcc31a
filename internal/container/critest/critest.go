// Package critest serves a container runtime's CRI API on a unix socket,
// for the tests that name pods by asking the runtime.
package critest

import (
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Serve serves rt on a unix socket until the test ends, and returns its
// endpoint.
func Serve(t testing.TB, rt runtimeapi.RuntimeServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	go srv.Serve(lis) // until Stop
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}
