package engine_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// runOnce runs app over the SQLite file at path with tp, calls do, and
// stops the engine.
func runOnce(t *testing.T, path string, app plait.App, tp trace.TracerProvider, do func(ctx context.Context, e *engine.Engine)) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(app, st, engine.Options{Partitions: 2, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	do(wctx, e)
	wcancel()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReactorHopAfterRestartContinuesTheCorrelationsTrace commits an order
// with no reactor running, then starts the application with its reactors
// and tracing on: the hop that reacts to the order's event cannot know the
// span of the command that caused it, and continues the trace derived from
// the correlation id, with the command's derived span as its parent; the
// view commands it sends are its children.
func TestReactorHopAfterRestartContinuesTheCorrelationsTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plait.db")
	app := orderdesk.App()
	bare := app
	bare.Reactors = nil
	user := plait.User{ID: "u1"}
	runOnce(t, path, bare, nil, func(ctx context.Context, e *engine.Engine) {
		for _, cmd := range []plait.Command{
			{ID: "c1-create", Type: orderdesk.CustomerType, AggregateID: "c1", Name: orderdesk.CmdCreate,
				Data: json.RawMessage(`{"name":"Ada","email":"ada@example.com"}`)},
			{ID: "o1-place", Type: orderdesk.OrderType, AggregateID: "o1", Name: orderdesk.CmdPlace,
				Data: json.RawMessage(`{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}`)},
		} {
			if rec, err := e.Submit(ctx, cmd, user); err != nil || rec.Outcome.Status != plait.StatusAccepted {
				t.Fatalf("%s: %v %+v", cmd.ID, err, rec.Outcome)
			}
		}
	})

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	runOnce(t, path, app, tp, func(ctx context.Context, e *engine.Engine) {
		if err := e.WaitSettled(ctx, "o1-place"); err != nil {
			t.Fatal(err)
		}
	})

	want := engine.CorrelationSpanContext("o1-place", "o1-place")
	if again := engine.CorrelationSpanContext("o1-place", "o1-place"); !again.Equal(want) || !want.IsValid() {
		t.Fatalf("CorrelationSpanContext is not deterministic: %v, %v", want, again)
	}
	var hop sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "plait.react "+orderdesk.OrderListFeedName && attrOf(s, engine.AttrEventID) == plait.EventID("o1-place", 0) {
			hop = s
		}
	}
	if hop == nil {
		t.Fatal("no reactor hop for the order's event")
	}
	if hop.SpanContext().TraceID() != want.TraceID() || hop.Parent().SpanID() != want.SpanID() || !hop.Parent().IsRemote() {
		t.Fatalf("hop in trace %s under %s, want trace %s under %s", hop.SpanContext().TraceID(), hop.Parent().SpanID(), want.TraceID(), want.SpanID())
	}
	children := 0
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == hop.SpanContext().SpanID() {
			children++
			if s.SpanContext().TraceID() != want.TraceID() || attrOf(s, engine.AttrCorrelationID) != "o1-place" {
				t.Errorf("%s: trace %s, correlation %s", s.Name(), s.SpanContext().TraceID(), attrOf(s, engine.AttrCorrelationID))
			}
		}
	}
	// setOrder, setStatus and addOrder.
	if children != 3 {
		t.Errorf("the hop has %d child spans, want the 3 commands it sent", children)
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}
