package httpapi

import (
	"net/http"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation name of the server's spans.
const TracerName = "github.com/plaithq/plait/httpapi"

// traceCommands wraps POST /commands in a server span when tracing is on,
// and returns h itself when it is off. An incoming W3C traceparent (and
// tracestate) header makes the span a child of the caller's span, so the
// command joins the caller's trace; the engine's spans of the command and
// of every reaction it sets off are children of this span.
func (s *Server) traceCommands(h http.HandlerFunc) http.HandlerFunc {
	if s.tracer == nil {
		return h
	}
	var prop propagation.TraceContext
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, "POST /commands",
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("http.route", "/commands"),
				attribute.String("url.path", r.URL.Path),
				attribute.String("url.query", r.URL.RawQuery)))
		defer span.End()
		h(w, r.WithContext(ctx))
		if rec, ok := w.(*recorder); ok {
			code := rec.code()
			span.SetAttributes(attribute.Int("http.response.status_code", code))
			if code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(code))
			}
		}
	}
}

// annotateCommand sets the command's attributes and how the request ended
// (status: pending, accepted, rejected, or why it was refused) on the
// request's span, if it is recorded.
func annotateCommand(span trace.Span, cmd plait.Command, status string) {
	if !span.IsRecording() {
		return
	}
	if cmd.ID != "" {
		span.SetAttributes(engine.CommandAttributes(cmd)...)
	}
	span.SetAttributes(engine.AttrOutcome.String(status))
}
