package kafka_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// tracedNode is orderdesk run as plait serve --kafka --postgres runs it:
// commands and reactors' events through the consumer group, a publisher
// putting the events on Kafka with their commands' spans.
type tracedNode struct {
	e   *engine.Engine
	log *kafka.Log
}

// startTracedNode starts app on the brokers and schema with tp (nil: no
// tracing) and returns it with the function that stops it.
func startTracedNode(t *testing.T, brokers []string, url, schema string, app plait.App, tp trace.TracerProvider) (*tracedNode, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		t.Fatal(err)
	}
	l, err := kafka.New(ctx, app, kafka.Options{Brokers: brokers, Prefix: schema, Group: schema, Partitions: 2,
		Offsets: st, SessionTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(app, st, engine.Options{CommandLog: l, Logger: quiet, ReactFromLog: true, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(runCtx) }()
	select {
	case <-e.Ready():
	case err := <-runErr:
		t.Fatalf("engine: %v", err)
	}
	var pub sync.WaitGroup
	p := &kafka.Publisher{Log: l, Feed: st, Changed: e.FeedChanged, Checkpoints: st, Leaser: leases{st},
		Standby: 100 * time.Millisecond, Spans: e.CommandSpan}
	pub.Go(func() { p.Run(runCtx) })
	var once sync.Once
	stopAll := func() {
		once.Do(func() {
			stop()
			pub.Wait()
			if err := <-runErr; err != nil {
				t.Errorf("engine: %v", err)
			}
			l.Close()
			st.Close()
		})
	}
	t.Cleanup(stopAll)
	return &tracedNode{e: e, log: l}, stopAll
}

// recordOf reads topic from its start with a plain consumer until a record
// whose header key is value, and returns it.
func recordOf(t *testing.T, brokers []string, topic, key, value string) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record with %s=%s in %s", key, value, topic)
		}
		for _, r := range fs.Records() {
			for _, h := range r.Headers {
				if h.Key == key && string(h.Value) == value {
					return r
				}
			}
		}
	}
}

// traceParentOf returns the span context in rec's trace headers; invalid
// when it has none.
func traceParentOf(rec *kgo.Record) trace.SpanContext {
	c := propagation.MapCarrier{}
	for _, h := range rec.Headers {
		c[h.Key] = string(h.Value)
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), c))
}

func hasHeader(rec *kgo.Record, prefix string) bool {
	for _, h := range rec.Headers {
		if strings.HasPrefix(h.Key, prefix) {
			return true
		}
	}
	return false
}

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

// awaitSpans polls rec until find returns true on its ended spans.
func awaitSpans(t *testing.T, rec *tracetest.SpanRecorder, what string, find func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := rec.Ended()
		if find(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			for _, s := range spans {
				t.Logf("span %s %s parent %s %v", s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.Attributes())
			}
			t.Fatalf("no %s among %d spans", what, len(spans))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTracingFollowsACommandThroughKafka runs orderdesk scaled out on
// Kafka and PostgreSQL. With tracing off, a command submitted under a span
// is appended, and its events published, with no trace header. With it on,
// an order submitted under a span is appended with that span's trace
// context and decided under a command span that is its child, with decide
// and commit spans under it; its event is published with the command's
// span. Restarted with the reactors, which no longer remember any span,
// the hop that reacts to the order's event from the events topic is a
// child of that command span, the commands it sends are its children, and
// every span of the order's correlation is in the submitting span's trace;
// the customer's event, published with no span, gets the hop the
// correlation derives.
func TestTracingFollowsACommandThroughKafka(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	app := orderdesk.App()
	bare := app
	bare.Reactors = nil
	user := plait.User{ID: "u1"}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Tracing off: no trace header, even under a span.
	n, stop := startTracedNode(t, brokers, url, schema, bare, nil)
	sctx, sub := tracer.Start(ctx, "submit the customer")
	if _, err := n.e.Submit(sctx, plait.Command{ID: "c1-create", Type: orderdesk.CustomerType, AggregateID: "c1",
		Name: orderdesk.CmdCreate, Data: json.RawMessage(`{"name":"Ada","email":"ada@example.com"}`)}, user); err != nil {
		t.Fatal(err)
	}
	sub.End()
	if err := n.e.WaitSettled(ctx, "c1-create"); err != nil {
		t.Fatal(err)
	}
	cmdRec := recordOf(t, brokers, n.log.CommandsTopic(orderdesk.CustomerType), "plait_id", "c1-create")
	evRec := recordOf(t, brokers, n.log.EventsTopic(orderdesk.CustomerType), "ce_id", plait.EventID("c1-create", 0))
	if hasHeader(cmdRec, "trace") || hasHeader(evRec, "trace") {
		t.Errorf("tracing off, yet trace headers: command %v, event %v", cmdRec.Headers, evRec.Headers)
	}
	stop()
	for _, s := range rec.Ended() {
		if s.Name() != "submit the customer" {
			t.Errorf("tracing off, yet the span %s", s.Name())
		}
	}

	// Tracing on: the order is decided under the submitting span.
	n, stop = startTracedNode(t, brokers, url, schema, bare, tp)
	sctx, sub = tracer.Start(ctx, "submit the order")
	root := sub.SpanContext()
	if _, err := n.e.Submit(sctx, plait.Command{ID: "o1-place", Type: orderdesk.OrderType, AggregateID: "o1",
		Name: orderdesk.CmdPlace, Data: json.RawMessage(`{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}`)}, user); err != nil {
		t.Fatal(err)
	}
	sub.End()
	if err := n.e.WaitSettled(ctx, "o1-place"); err != nil {
		t.Fatal(err)
	}
	if got := traceParentOf(recordOf(t, brokers, n.log.CommandsTopic(orderdesk.OrderType), "plait_id", "o1-place")); got.TraceID() != root.TraceID() || got.SpanID() != root.SpanID() {
		t.Fatalf("the command's record has trace context %v, want the submitting span %v", got, root)
	}
	var command sdktrace.ReadOnlySpan
	spans := awaitSpans(t, rec, "command, decide and commit spans of o1-place", func(spans []sdktrace.ReadOnlySpan) bool {
		names := map[string]bool{}
		for _, s := range spans {
			if spanAttr(s, engine.AttrCommandID) == "o1-place" {
				names[s.Name()] = true
				if strings.HasPrefix(s.Name(), "plait.command ") {
					command = s
				}
			}
		}
		return command != nil && names["plait.decide order.place"] && names["plait.commit"]
	})
	if command.Name() != "plait.command order.place" || command.Parent().SpanID() != root.SpanID() ||
		command.SpanContext().TraceID() != root.TraceID() || !command.Parent().IsRemote() {
		t.Fatalf("%s in trace %s under %s, want trace %s under the submitting span %s", command.Name(),
			command.SpanContext().TraceID(), command.Parent().SpanID(), root.TraceID(), root.SpanID())
	}
	if spanAttr(command, engine.AttrOutcome) != string(plait.StatusAccepted) {
		t.Errorf("the command span's outcome is %q", spanAttr(command, engine.AttrOutcome))
	}
	groups := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.Name() == "plait.group_commit" {
			groups[s.SpanContext().SpanID()] = true
		}
	}
	for _, s := range spans {
		if spanAttr(s, engine.AttrCommandID) != "o1-place" || s == command {
			continue
		}
		if s.Parent().SpanID() != command.SpanContext().SpanID() || s.SpanContext().TraceID() != root.TraceID() {
			t.Errorf("%s under %s, want under the command span %s", s.Name(), s.Parent().SpanID(), command.SpanContext().SpanID())
		}
		if s.Name() == "plait.commit" && (len(s.Links()) != 1 || !groups[s.Links()[0].SpanContext.SpanID()]) {
			t.Errorf("plait.commit links %v, want the group commit's span", s.Links())
		}
	}
	evRec = recordOf(t, brokers, n.log.EventsTopic(orderdesk.OrderType), "ce_id", plait.EventID("o1-place", 0))
	if got := traceParentOf(evRec); got.TraceID() != root.TraceID() || got.SpanID() != command.SpanContext().SpanID() {
		t.Fatalf("the order's event has trace context %v, want the command's span %v", got, command.SpanContext())
	}
	outRec := recordOf(t, brokers, n.log.OutcomesTopic(), "ce_id", "o1-place")
	if got := traceParentOf(outRec); got.TraceID() != root.TraceID() || got.SpanID() != command.SpanContext().SpanID() {
		t.Fatalf("the order's outcome has trace context %v, want the command's span %v", got, command.SpanContext())
	}
	stop()

	// Restarted with the reactors: the hops continue the published traces.
	n, _ = startTracedNode(t, brokers, url, schema, app, tp)
	if err := n.e.WaitSettled(ctx, "o1-place"); err != nil {
		t.Fatal(err)
	}
	if err := n.e.WaitSettled(ctx, "c1-create"); err != nil {
		t.Fatal(err)
	}
	var hop, derived sdktrace.ReadOnlySpan
	spans = awaitSpans(t, rec, "hops and the three commands of the order's hop", func(spans []sdktrace.ReadOnlySpan) bool {
		for _, s := range spans {
			if s.Name() != "plait.react "+orderdesk.OrderListFeedName {
				continue
			}
			switch spanAttr(s, engine.AttrEventID) {
			case plait.EventID("o1-place", 0):
				hop = s
			case plait.EventID("c1-create", 0):
				derived = s
			}
		}
		if hop == nil || derived == nil {
			return false
		}
		children := 0
		for _, s := range spans {
			if s.Parent().SpanID() == hop.SpanContext().SpanID() && strings.HasPrefix(s.Name(), "plait.command ") {
				children++
			}
		}
		return children == 3
	})
	if hop.Parent().SpanID() != command.SpanContext().SpanID() || hop.SpanContext().TraceID() != root.TraceID() {
		t.Errorf("the order's hop in trace %s under %s, want trace %s under the command span %s",
			hop.SpanContext().TraceID(), hop.Parent().SpanID(), root.TraceID(), command.SpanContext().SpanID())
	}
	want := engine.CorrelationSpanContext("c1-create", "c1-create")
	if derived.Parent().SpanID() != want.SpanID() || derived.SpanContext().TraceID() != want.TraceID() {
		t.Errorf("the customer's hop in trace %s under %s, want the derived trace %s under %s",
			derived.SpanContext().TraceID(), derived.Parent().SpanID(), want.TraceID(), want.SpanID())
	}
	decided := 0
	for _, s := range spans {
		if spanAttr(s, engine.AttrCorrelationID) == "o1-place" && s.SpanContext().TraceID() != root.TraceID() {
			t.Errorf("%s of the order's correlation in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), root.TraceID())
		}
		if s.Parent().SpanID() == hop.SpanContext().SpanID() {
			// Each command the hop sent is decided under its own span.
			for _, d := range spans {
				if strings.HasPrefix(d.Name(), "plait.decide ") && d.Parent().SpanID() == s.SpanContext().SpanID() {
					decided++
				}
			}
		}
	}
	if decided != 3 {
		t.Errorf("%d of the hop's commands have a decide span, want 3", decided)
	}
}
