// Command otelcol is an OpenTelemetry Collector with only what the e2e
// tests use: the OTLP receiver (gRPC and HTTP) and the file exporter.
// It is a module of its own so that tcptrace's go.mod stays free of the
// collector. Its modules are of one release (collector v0.165.0, pdata and
// the stable modules v1.71.0, contrib v0.165.1). Plain `go mod tidy` fails
// here: a module only the file exporter's own tests use
// (otlpencodingextension v0.165.1) is not served by the module proxy;
// `go mod tidy -e` tidies all the same, and building needs none of it.
package main

import (
	"context"
	"log"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
)

func main() {
	info := component.BuildInfo{Command: "otelcol", Description: "tcptrace's test collector", Version: "test"}
	settings := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
				DefaultScheme:     "file",
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatal(err)
	}
}

func factories() (otelcol.Factories, error) {
	receivers, err := otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory())
	if err != nil {
		return otelcol.Factories{}, err
	}
	exporters, err := otelcol.MakeFactoryMap[exporter.Factory](fileexporter.NewFactory())
	if err != nil {
		return otelcol.Factories{}, err
	}
	return otelcol.Factories{Receivers: receivers, Exporters: exporters, Telemetry: quiet}, nil
}

// quiet is telemetry of the collector itself: none but its warnings and
// errors, on stderr, where a test shows them when it fails. (The SDK-based
// telemetry would bring every cloud's resource detectors along.)
var quiet = telemetry.NewFactory(func() component.Config { return &struct{}{} },
	telemetry.WithCreateLogger(func(context.Context, telemetry.LoggerSettings, component.Config) (*zap.Logger, component.ShutdownFunc, error) {
		cfg := zap.NewProductionConfig()
		cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
		logger, err := cfg.Build()
		return logger, nil, err
	}))
