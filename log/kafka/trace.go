package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/plaithq/plait/engine"
)

// The W3C trace context headers a record carries when it was produced
// under a span: a command appended by a tracing engine, an event whose
// command's span the publisher knows.
const (
	headerTraceParent = "traceparent"
	headerTraceState  = "tracestate"
)

// headers is a propagation.TextMapCarrier over a record's headers.
type headers struct{ rec *kgo.Record }

// Get returns the value of the header key, "" when there is none.
func (h headers) Get(key string) string {
	for _, kv := range h.rec.Headers {
		if kv.Key == key {
			return string(kv.Value)
		}
	}
	return ""
}

// Set sets the header key to value, in place of any it had.
func (h headers) Set(key, value string) {
	for i, kv := range h.rec.Headers {
		if kv.Key == key {
			h.rec.Headers[i].Value = []byte(value)
			return
		}
	}
	h.rec.Headers = append(h.rec.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists the record's header keys.
func (h headers) Keys() []string {
	keys := make([]string, len(h.rec.Headers))
	for i, kv := range h.rec.Headers {
		keys[i] = kv.Key
	}
	return keys
}

// injectTrace writes the trace context of the span in ctx into rec's
// headers; nothing when ctx holds no valid span.
func injectTrace(ctx context.Context, rec *kgo.Record) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagation.TraceContext{}.Inject(ctx, headers{rec})
}

// traceContext reads the trace context rec was produced with.
func traceContext(rec *kgo.Record) engine.TraceContext {
	h := headers{rec}
	return engine.TraceContext{Parent: h.Get(headerTraceParent), State: h.Get(headerTraceState)}
}
