package otlp

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Protocols of OTLP, by the names OTEL_EXPORTER_OTLP_PROTOCOL gives them.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Endpoint is where --otlp sends, and how.
type Endpoint struct {
	Protocol string
	// HostPort is the collector's address, its port defaulted to OTLP's
	// (4318 for HTTP, 4317 for gRPC).
	HostPort string
	// Path, for HTTP, is what comes before each signal's own path
	// (/v1/logs, /v1/metrics), as in OTEL_EXPORTER_OTLP_ENDPOINT; "" for
	// the collector's default.
	Path string
	// TLS: https:// or grpcs://. The system's roots verify the collector
	// (OTEL_EXPORTER_OTLP_CERTIFICATE names another CA).
	TLS bool
}

// endpointUsage is the end of the sentence that refuses a bad --otlp.
const endpointUsage = "use http://HOST:PORT for OTLP/HTTP (e.g. http://localhost:4318) or grpc://HOST:PORT for OTLP/gRPC (e.g. grpc://localhost:4317), https:// or grpcs:// for TLS"

// ParseEndpoint reads an --otlp value. The scheme names the protocol, as
// the OpenTelemetry SDKs' endpoint URLs do, with grpc:// and grpcs:// for
// gRPC, which has no URL scheme of its own.
func ParseEndpoint(value string) (Endpoint, error) {
	bad := func(why string) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("invalid --otlp %q: %s: %s", value, why, endpointUsage)
	}
	u, err := url.Parse(value)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return bad("no scheme")
	}
	var ep Endpoint
	defaultPort := "4318"
	switch strings.ToLower(u.Scheme) {
	case "http":
		ep.Protocol = ProtocolHTTP
	case "https":
		ep.Protocol, ep.TLS = ProtocolHTTP, true
	case "grpc":
		ep.Protocol, defaultPort = ProtocolGRPC, "4317"
	case "grpcs":
		ep.Protocol, defaultPort, ep.TLS = ProtocolGRPC, "4317", true
	default:
		return bad("unknown scheme " + u.Scheme)
	}
	switch {
	case u.Hostname() == "":
		return bad("no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return bad("a user, query or fragment has no place there (headers: OTEL_EXPORTER_OTLP_HEADERS)")
	case ep.Protocol == ProtocolGRPC && strings.Trim(u.Path, "/") != "":
		return bad("gRPC takes no path")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	ep.HostPort = net.JoinHostPort(u.Hostname(), port)
	if ep.Protocol == ProtocolHTTP {
		ep.Path = strings.TrimSuffix(u.Path, "/")
	}
	return ep, nil
}

// String is the endpoint as a URL.
func (ep Endpoint) String() string {
	scheme := "http"
	if ep.Protocol == ProtocolGRPC {
		scheme = "grpc"
	}
	if ep.TLS {
		scheme += "s"
	}
	return scheme + "://" + ep.HostPort + ep.Path
}
