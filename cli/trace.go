package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The environment variables that turn tracing on without --otlp-endpoint,
// as every OpenTelemetry SDK reads them.
const (
	envOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// otlpTracesPath is where an OTLP/HTTP collector takes spans.
const otlpTracesPath = "/v1/traces"

// tracesURL is the URL spans are posted to for the collector at base:
// base's path with /v1/traces appended, as OTEL_EXPORTER_OTLP_ENDPOINT is
// read.
func tracesURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("want an http:// or https:// URL such as http://localhost:4318, got %q", base)
	}
	if !strings.HasSuffix(u.Path, otlpTracesPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + otlpTracesPath
	}
	return u.String(), nil
}

// startTracing starts exporting spans over OTLP/HTTP when --otlp-endpoint
// or the OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variable asks for it, and
// returns the provider to give the engine and the server, with a stop
// that flushes the spans still buffered. Without either it returns a nil
// provider: tracing is off. The provider is passed along, never installed
// globally.
func startTracing(ctx context.Context, endpoint, service string) (trace.TracerProvider, func(context.Context) error, string, error) {
	off := func(context.Context) error { return nil }
	var opts []otlptracehttp.Option
	var where string
	switch {
	case endpoint != "":
		u, err := tracesURL(endpoint)
		if err != nil {
			return nil, off, "", usageError{fmt.Errorf("--otlp-endpoint: %w", err)}
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
		where = u
	case os.Getenv(envOTLPTracesEndpoint) != "":
		where = os.Getenv(envOTLPTracesEndpoint) // read by the exporter as is
	case os.Getenv(envOTLPEndpoint) != "":
		u, err := tracesURL(os.Getenv(envOTLPEndpoint))
		if err != nil {
			return nil, off, "", fmt.Errorf("%s: %w", envOTLPEndpoint, err)
		}
		where = u // the exporter reads the variable itself, with its headers and TLS settings
	default:
		return nil, off, "", nil
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, off, "", fmt.Errorf("start the OTLP exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default
	// service name, the application's.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, off, "", fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, where, nil
}
