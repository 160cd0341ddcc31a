package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics from its own goroutine.
type Server struct {
	http *http.Server
	done chan error
}

// Serve listens on addr (host:port, as ":9464" or "127.0.0.1:9464") and
// serves m's registry at /metrics until Close. The address is bound
// before Serve returns, so that one taken stops tracing before it starts.
// The server's errors (a failed scrape, a bad connection, the server
// stopping) are one line each on errw; tracing goes on.
func (m *Metrics) Serve(addr string, errw io.Writer) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: cannot listen there: %w", addr, err)
	}
	errLog := log.New(errw, "tcptrace: metrics server: ", 0)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry, ErrorLog: errLog}))
	s := &Server{http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}, done: make(chan error, 1)}
	go func() {
		err := s.http.Serve(l)
		if !errors.Is(err, http.ErrServerClosed) {
			errLog.Printf("stopped serving %s: %v", addr, err)
		}
		s.done <- err
	}()
	return s, nil
}

// Close stops serving, letting scrapes under way finish for a moment.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
