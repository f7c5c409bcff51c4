package telemetry

import (
	"fmt"
	"net/url"
	"strings"
)

// Config is the [telemetry] section of wasmq.toml. With no otlp_endpoint
// tracing is off: the tracer is OpenTelemetry's no-op one and no store or
// HTTP wrapper is installed, so it costs nothing.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP collector spans are sent to, e.g.
	// "http://127.0.0.1:4318" (the path /v1/traces is added when the URL
	// has none). "" turns tracing off.
	OTLPEndpoint string `toml:"otlp_endpoint"`
	// OTLPHeaders are sent with every export (an API key, a tenant of the
	// collector).
	OTLPHeaders map[string]string `toml:"otlp_headers"`
	// ServiceName is the service.name resource of every span. Defaults
	// to "wasmq".
	ServiceName string `toml:"service_name"`
	// SampleRatio is the share of traces kept, 0 to 1, for traces that
	// start at this node (a request's incoming traceparent decides
	// otherwise). Defaults to 1.
	SampleRatio *float64 `toml:"sample_ratio"`
}

// DefaultServiceName is [telemetry] service_name's default.
const DefaultServiceName = "wasmq"

// WithDefaults returns c with every unset field at its documented default.
func (c Config) WithDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.SampleRatio == nil {
		one := 1.0
		c.SampleRatio = &one
	}
	return c
}

// Validate names the TOML key of the first problem.
func (c Config) Validate() error {
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("telemetry.otlp_endpoint: %q must be an http:// or https:// URL of an OTLP/HTTP collector, e.g. \"http://127.0.0.1:4318\"", c.OTLPEndpoint)
		}
	}
	for k, v := range c.OTLPHeaders {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("telemetry.otlp_headers.%s: not a valid HTTP header", k)
		}
	}
	if c.SampleRatio != nil && (*c.SampleRatio < 0 || *c.SampleRatio > 1 || *c.SampleRatio != *c.SampleRatio) {
		return fmt.Errorf("telemetry.sample_ratio: must be between 0 and 1")
	}
	if strings.ContainsRune(c.ServiceName, 0) {
		return fmt.Errorf("telemetry.service_name: must not hold NUL")
	}
	return nil
}

// Enabled says whether spans are exported.
func (c Config) Enabled() bool { return c.OTLPEndpoint != "" }
