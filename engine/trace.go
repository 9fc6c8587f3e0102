package engine

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/plaithq/plait"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation name of the engine's spans.
const TracerName = "github.com/plaithq/plait/engine"

// The attributes of the engine's spans. The HTTP API uses the same keys,
// so one query finds a command's spans wherever they were recorded.
const (
	AttrCommandID     = attribute.Key("plait.command.id")
	AttrCommandName   = attribute.Key("plait.command.name")
	AttrAggregateType = attribute.Key("plait.aggregate.type")
	AttrAggregateID   = attribute.Key("plait.aggregate.id")
	AttrCorrelationID = attribute.Key("plait.correlation_id")
	AttrCausationID   = attribute.Key("plait.causation_id")
	AttrOutcome       = attribute.Key("plait.outcome")
	AttrView          = attribute.Key("plait.view")
	AttrEvents        = attribute.Key("plait.events")
	AttrReactor       = attribute.Key("plait.reactor")
	AttrEventID       = attribute.Key("plait.event.id")
	AttrEventName     = attribute.Key("plait.event.name")
	AttrBatchSize     = attribute.Key("plait.commit.commands")
)

// CommandAttributes are the attributes naming a command in a span: its id,
// name, aggregate, correlation and causation.
func CommandAttributes(cmd plait.Command) []attribute.KeyValue {
	return []attribute.KeyValue{
		AttrCommandID.String(cmd.ID),
		AttrCommandName.String(cmd.Name),
		AttrAggregateType.String(cmd.Type),
		AttrAggregateID.String(cmd.AggregateID),
		AttrCorrelationID.String(cmd.CorrelationID),
		AttrCausationID.String(cmd.CausationID),
	}
}

// tracing records the engine's spans. The engine has none when
// Options.TracerProvider is nil, and then every hook below returns at once:
// tracing off costs a nil check per command.
//
// The spans of one command follow it through the engine:
//
//	plait.command T.N      enqueued → outcome known; parent: the caller's span
//	├─ plait.decide T.N    the pure decide and evolve
//	└─ plait.commit        this command's share of the group commit
//	plait.group_commit     one store transaction, linked to every command in it
//	plait.react R          a reactor turning one event into commands;
//	                       parent: the span of the command that caused the event
//
// so a causal chain — an HTTP request, its command, the reactors its events
// set off, the commands they send, the view updates — is one trace whose
// parent/child relations follow causation.
//
// A reactor runs from its checkpoint, after the command that caused the
// event was committed, possibly long after, or after a restart. The trace
// context is therefore not stored with the command or event (the log stays
// free of telemetry); the engine instead remembers the span of each recent
// command by id (a bounded table), and the event's causation id, the id of
// the command that caused it, finds it. When the table no longer has it
// (after a restart, or when another instance decided the command), the hop
// continues a trace whose id is derived from the correlation id and whose
// parent span id is derived from the causation id (see
// CorrelationSpanContext): deterministic, so every reaction of one chain
// replayed after a restart lands in the same trace, and names its cause.
//
// Scaled out, the external log carries the trace context across instances
// (TraceContext, in Kafka's traceparent header): a command appended under a
// span is decided, wherever, under a command span that is its child, and an
// event published with its command's span starts a hop that is that span's
// child; without one, the hop falls back as above.
type tracing struct {
	tracer trace.Tracer

	mu    sync.Mutex
	spans map[string]trace.SpanContext // recent commands' spans, by command id
	ring  []string                     // the ids in spans, oldest first from next
	next  int
}

// tracedCommands is how many recent commands' spans the engine remembers
// for the reactors.
const tracedCommands = 1 << 14

func newTracing(tp trace.TracerProvider) *tracing {
	if tp == nil {
		return nil
	}
	return &tracing{
		tracer: tp.Tracer(TracerName),
		spans:  make(map[string]trace.SpanContext, tracedCommands),
		ring:   make([]string, tracedCommands),
	}
}

// remember notes the span of command id for the reactions it causes.
func (t *tracing) remember(id string, sc trace.SpanContext) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.ring[t.next]; old != "" {
		delete(t.spans, old)
	}
	t.ring[t.next] = id
	t.next = (t.next + 1) % len(t.ring)
	t.spans[id] = sc
}

// causeSpan returns the span context of the command that caused ev: the
// one remembered here, or else the remote one derived from the event's
// correlation and causation.
func (t *tracing) causeSpan(ev *plait.Event) trace.SpanContext {
	t.mu.Lock()
	sc, ok := t.spans[ev.CausationID]
	t.mu.Unlock()
	if ok {
		return sc
	}
	return CorrelationSpanContext(ev.CorrelationID, ev.CausationID)
}

// CommandSpan returns the span context of command id as this engine traced
// it, for whoever hands the command's events on (the Kafka publisher puts
// it in the events' headers); an invalid one when tracing is off or the
// engine no longer remembers the command, or never decided it.
func (e *Engine) CommandSpan(id string) trace.SpanContext {
	t := e.tracing
	if t == nil {
		return trace.SpanContext{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spans[id]
}

// TraceContext is the W3C trace context a command or event was recorded
// with in an external log: the traceparent and tracestate headers, empty
// when it has none. A scaled-out engine continues the trace it names.
type TraceContext struct {
	Parent string // traceparent
	State  string // tracestate
}

// parent returns a context holding the remote span tc names, or none when
// tc names no valid one.
func (tc TraceContext) parent() context.Context {
	if tc.Parent == "" {
		return context.Background()
	}
	return propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": tc.Parent, "tracestate": tc.State})
}

// traceContext returns the trace context of command i of the batch.
func (b LogBatch) traceContext(i int) TraceContext {
	if i < len(b.Traces) {
		return b.Traces[i]
	}
	return TraceContext{}
}

// traceContext returns the trace context of event i of the batch.
func (b EventBatch) traceContext(i int) TraceContext {
	if i < len(b.Traces) {
		return b.Traces[i]
	}
	return TraceContext{}
}

// CorrelationSpanContext is the remote span context the engine continues
// when it no longer knows the span of a command: its trace id is derived
// from the correlation id and its span id from the command id, both by
// SHA-256, so the same chain always maps to the same trace.
func CorrelationSpanContext(correlationID, commandID string) trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	h := sha256.Sum256([]byte("plait.trace\x00" + correlationID))
	copy(tid[:], h[:])
	h = sha256.Sum256([]byte("plait.span\x00" + commandID))
	copy(sid[:], h[:])
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// traceCommand starts the span of a command entering the engine, as a
// child of the span in ctx.
func (e *Engine) traceCommand(ctx context.Context, f *future) {
	t := e.tracing
	if t == nil {
		return
	}
	view := false
	if def, ok := e.defs[f.cmd.Type]; ok {
		view = def.Settings().View
	}
	_, span := t.tracer.Start(ctx, "plait.command "+f.cmd.Type+"."+f.cmd.Name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(CommandAttributes(f.cmd)...),
		trace.WithAttributes(AttrView.Bool(view)))
	t.remember(f.cmd.ID, span.SpanContext())
	f.span = span
}

// traceResolved ends a command's span with its outcome.
func (e *Engine) traceResolved(f *future) {
	if f.span == nil {
		return
	}
	switch {
	case f.err != nil:
		f.span.SetAttributes(AttrOutcome.String("failed"))
		f.span.SetStatus(codes.Error, f.err.Error())
	case f.dup:
		f.span.SetAttributes(AttrOutcome.String("duplicate"), AttrEvents.Int(len(f.out.Events)))
	default:
		f.span.SetAttributes(AttrOutcome.String(string(f.out.Status)), AttrEvents.Int(len(f.out.Events)))
	}
	f.span.End()
}

// decideTraced is decide within a span of its own when f is traced.
func (e *Engine) decideTraced(f *future, def plait.Definition, inst Instance) *Processed {
	if f.span == nil {
		return decide(def, inst, f.cmd)
	}
	_, span := e.tracing.tracer.Start(trace.ContextWithSpan(context.Background(), f.span),
		"plait.decide "+f.cmd.Type+"."+f.cmd.Name,
		trace.WithAttributes(AttrCommandID.String(f.cmd.ID), AttrCorrelationID.String(f.cmd.CorrelationID)))
	proc := decide(def, inst, f.cmd)
	span.SetAttributes(AttrOutcome.String(string(proc.Outcome.Status)), AttrEvents.Int(len(proc.Outcome.Events)))
	span.End()
	return proc
}

// commitTrace is the span of one group commit.
type commitTrace struct {
	span       trace.Span
	start, end time.Time
	size       int
	err        error
}

// traceCommitStart starts the span of a group commit of the batches reqs,
// linked to the span of every command in it, since one commit serves many
// commands of many traces. It returns nil when tracing is off.
func (e *Engine) traceCommitStart(reqs []*commitReq) *commitTrace {
	t := e.tracing
	if t == nil {
		return nil
	}
	var links []trace.Link
	n := 0
	t.mu.Lock()
	for _, r := range reqs {
		n += len(r.batch)
		for _, p := range r.batch {
			if sc, ok := t.spans[p.Outcome.Command.ID]; ok && sc.IsSampled() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	t.mu.Unlock()
	ct := &commitTrace{start: time.Now(), size: n}
	_, ct.span = t.tracer.Start(context.Background(), "plait.group_commit",
		trace.WithNewRoot(), trace.WithLinks(links...), trace.WithTimestamp(ct.start),
		trace.WithAttributes(AttrBatchSize.Int(n)))
	for _, r := range reqs {
		r.trace = ct
	}
	return ct
}

// traceCommitEnd ends the span of a group commit.
func (ct *commitTrace) traceCommitEnd(err error) {
	if ct == nil {
		return
	}
	ct.end, ct.err = time.Now(), err
	if err != nil {
		ct.span.SetStatus(codes.Error, err.Error())
	}
	ct.span.End(trace.WithTimestamp(ct.end))
}

// traceCommitted records, under each command's span, its share of the
// group commit that served it, linked to the group commit's span.
func (e *Engine) traceCommitted(req *commitReq, waiting []*future) {
	ct := req.trace
	if ct == nil || e.tracing == nil {
		return
	}
	link := trace.Link{SpanContext: ct.span.SpanContext()}
	for _, f := range waiting {
		if f.span == nil {
			continue
		}
		f.span.AddLink(link)
		_, span := e.tracing.tracer.Start(
			trace.ContextWithSpan(context.Background(), f.span), "plait.commit",
			trace.WithTimestamp(ct.start), trace.WithLinks(link),
			trace.WithAttributes(AttrCommandID.String(f.cmd.ID), AttrCorrelationID.String(f.cmd.CorrelationID), AttrBatchSize.Int(ct.size)))
		if ct.err != nil {
			span.SetStatus(codes.Error, ct.err.Error())
		}
		span.End(trace.WithTimestamp(ct.end))
	}
}

// traceReact starts the span of a reactor handling one event, as a child
// of the span of the command that caused the event, and returns the
// context, derived from ctx, that the reactor's commands are sent with.
// The span is nil when tracing is off.
func (e *Engine) traceReact(ctx context.Context, r *reactorRun, ev *plait.Event) (context.Context, trace.Span) {
	t := e.tracing
	if t == nil {
		return ctx, nil
	}
	return e.startReact(trace.ContextWithSpanContext(ctx, t.causeSpan(ev)), r, ev)
}

// traceReactLogged is traceReact for an event consumed from an external
// log with the trace context tc it was published with: the hop is a child
// of the span tc names, the span of the command that caused the event, or,
// when tc names none, of the span traceReact would choose. The context
// returned derives from ctx; the span is nil when tracing is off or r does
// not subscribe to ev.
func (e *Engine) traceReactLogged(ctx context.Context, r *reactorRun, ev *plait.Event, tc TraceContext) (context.Context, trace.Span) {
	t := e.tracing
	if t == nil || !r.reactor.Subscribes(ev.Type, ev.Name) {
		return ctx, nil
	}
	sc := trace.SpanContextFromContext(tc.parent())
	if !sc.IsValid() {
		sc = t.causeSpan(ev)
	}
	return e.startReact(trace.ContextWithSpanContext(ctx, sc), r, ev)
}

// startReact starts a reactor hop's span as a child of the span in parent.
func (e *Engine) startReact(parent context.Context, r *reactorRun, ev *plait.Event) (context.Context, trace.Span) {
	return e.tracing.tracer.Start(parent, "plait.react "+r.reactor.Name(),
		trace.WithAttributes(
			AttrReactor.String(r.reactor.Name()),
			AttrEventID.String(ev.ID),
			AttrEventName.String(ev.Type+"."+ev.Name),
			AttrCorrelationID.String(ev.CorrelationID),
			AttrCausationID.String(ev.CausationID)))
}

// traceLogDone ends the spans of the commands of a batch consumed from the
// command log, traced one per proc: each records its share of the group
// commit ct and ends with its outcome, or with err when the batch failed.
func (e *Engine) traceLogDone(traced []*future, procs []*Processed, ct *commitTrace, err error) {
	if len(traced) == 0 {
		return
	}
	if ct != nil {
		e.traceCommitted(&commitReq{trace: ct}, traced)
	}
	for i, f := range traced {
		if err != nil {
			f.err = err
		} else {
			f.out = procs[i].Outcome
		}
		e.traceResolved(f)
	}
}

// endSpan ends span unless it is nil.
func endSpan(span trace.Span) {
	if span != nil {
		span.End()
	}
}
