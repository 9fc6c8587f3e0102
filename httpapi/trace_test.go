package httpapi_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// startOrderdesk serves orderdesk for a single local user, the engine and
// the server both given tp (nil: tracing off).
func startOrderdesk(t *testing.T, tp trace.TracerProvider) *harness {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(orderdesk.App(), st, engine.Options{Partitions: 4, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	srv := httpapi.New(e, httpapi.Options{TracerProvider: tp})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.CloseStreams()
		ts.Close()
		cancel()
		<-done
		st.Close()
	})
	return &harness{t: t, e: e, srv: srv, ts: ts, client: ts.Client(), stopEngine: cancel}
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

// spansOf waits until the recorder holds an ended span named name whose
// command is id, and returns every ended span.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, name, id string) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := rec.Ended()
		for _, s := range spans {
			if s.Name() == name && attr(s, engine.AttrCommandID) == id {
				return spans
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q of command %s among %d", name, id, len(spans))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTracingFollowsACommandThroughReactorsAndViews(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := startOrderdesk(t, tp)

	r := h.do("POST", "/commands?wait=settled", "", cmd{"id": "c1-create", "type": orderdesk.CustomerType, "aggregateId": "c1",
		"name": orderdesk.CmdCreate, "data": map[string]any{"name": "Ada", "email": "ada@example.com"}})
	if r.status != 200 {
		t.Fatalf("create customer: %s", r)
	}
	// The caller's trace, which the command must join.
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const callerSpan = "00f067aa0ba902b7"
	r = h.do("POST", "/commands?wait=settled", "", cmd{"id": "o1-place", "type": orderdesk.OrderType, "aggregateId": "o1",
		"name": orderdesk.CmdPlace, "data": map[string]any{"customerId": "c1", "lines": []map[string]any{{"sku": "A", "qty": 2, "price": 3}}}},
		"traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	if r.status != 200 {
		t.Fatalf("place order: %s", r)
	}
	spans := spansOf(t, rec, "POST /commands", "o1-place")

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var chain []sdktrace.ReadOnlySpan // the spans of the order's correlation
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		if attr(s, engine.AttrCorrelationID) == "o1-place" {
			chain = append(chain, s)
		}
	}
	// one finds the only span of the chain named name whose key is value.
	one := func(name string, key attribute.Key, value string) sdktrace.ReadOnlySpan {
		t.Helper()
		var found []sdktrace.ReadOnlySpan
		for _, s := range spans {
			if s.Name() == name && attr(s, key) == value {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d spans %q with %s=%s, want 1", len(found), name, key, value)
		}
		return found[0]
	}
	parentOf := func(s sdktrace.ReadOnlySpan) trace.SpanID { return s.Parent().SpanID() }
	childOf := func(child, parent sdktrace.ReadOnlySpan) {
		t.Helper()
		if parentOf(child) != parent.SpanContext().SpanID() {
			t.Errorf("%s (%s) is not a child of %s (%s)", child.Name(), attr(child, engine.AttrCommandID), parent.Name(), attr(parent, engine.AttrCommandID))
		}
	}

	// The HTTP span continues the caller's trace and names the command.
	httpSpan := one("POST /commands", engine.AttrCommandID, "o1-place")
	if httpSpan.SpanKind() != trace.SpanKindServer {
		t.Errorf("HTTP span kind %v", httpSpan.SpanKind())
	}
	if got := parentOf(httpSpan).String(); got != callerSpan || !httpSpan.Parent().IsRemote() {
		t.Errorf("HTTP span's parent %s, want the caller's %s", got, callerSpan)
	}
	for key, want := range map[attribute.Key]string{
		engine.AttrCommandName: "place", engine.AttrAggregateType: "order", engine.AttrAggregateID: "o1",
		engine.AttrCorrelationID: "o1-place", engine.AttrOutcome: "accepted", "http.response.status_code": "200",
	} {
		if got := attr(httpSpan, key); got != want {
			t.Errorf("HTTP span %s = %q, want %q", key, got, want)
		}
	}

	// The command's own spans: decide and its share of the group commit.
	place := one("plait.command order.place", engine.AttrCommandID, "o1-place")
	childOf(place, httpSpan)
	childOf(one("plait.decide order.place", engine.AttrCommandID, "o1-place"), place)
	commit := one("plait.commit", engine.AttrCommandID, "o1-place")
	childOf(commit, place)
	if len(commit.Links()) != 1 {
		t.Fatalf("the command's commit span has %d links, want the group commit", len(commit.Links()))
	}
	group, ok := byID[commit.Links()[0].SpanContext.SpanID()]
	if !ok || group.Name() != "plait.group_commit" {
		t.Fatalf("the commit span links to %v, not a group commit span", commit.Links()[0].SpanContext)
	}
	linked := false
	for _, l := range group.Links() {
		linked = linked || l.SpanContext.SpanID() == place.SpanContext().SpanID()
	}
	if !linked {
		t.Error("the group commit span does not link to the command's span")
	}

	// The first reactor hop is a child of the command whose event it reacts to.
	feed := one("plait.react "+orderdesk.OrderListFeedName, engine.AttrEventID, plait.EventID("o1-place", 0))
	childOf(feed, place)
	if got := attr(feed, engine.AttrCausationID); got != "o1-place" {
		t.Errorf("hop's causation %q", got)
	}

	// Every command of the chain but the first was sent by a hop: its span is
	// the hop's child, the hop is the child of the command that caused the
	// event, and the view commands are decided and committed in the trace.
	commands := map[string]sdktrace.ReadOnlySpan{} // by command id
	for _, s := range chain {
		if strings.HasPrefix(s.Name(), "plait.command ") {
			commands[attr(s, engine.AttrCommandID)] = s
		}
	}
	var names []string
	for id, s := range commands {
		names = append(names, strings.TrimPrefix(s.Name(), "plait.command "))
		if id == "o1-place" {
			continue
		}
		if attr(s, engine.AttrView) != "true" || attr(s, engine.AttrOutcome) != "accepted" {
			t.Errorf("%s: view %s outcome %s", s.Name(), attr(s, engine.AttrView), attr(s, engine.AttrOutcome))
		}
		hop, ok := byID[parentOf(s)]
		if !ok || !strings.HasPrefix(hop.Name(), "plait.react ") {
			t.Errorf("%s (%s) has no reactor hop as parent", s.Name(), id)
			continue
		}
		if got, want := attr(hop, engine.AttrEventID), attr(s, engine.AttrCausationID); got != want {
			t.Errorf("%s was caused by event %s, its hop reacted to %s", s.Name(), want, got)
		}
		cause, ok := commands[attr(hop, engine.AttrCausationID)]
		if !ok {
			t.Errorf("the hop %s of event %s has no command span of the chain as cause", hop.Name(), attr(hop, engine.AttrEventID))
			continue
		}
		childOf(hop, cause)
		childOf(one("plait.decide "+strings.TrimPrefix(s.Name(), "plait.command "), engine.AttrCommandID, id), s)
		childOf(one("plait.commit", engine.AttrCommandID, id), s)
	}
	want := []string{"customerOrders.addOrder", "order.place", "orderList.setCustomerName", "orderList.setOrder", "orderList.setStatus"}
	if got := sortedStrings(names); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the chain's commands %v, want %v", got, want)
	}
	// Two hops deep: the customer's name reached the order list through
	// customerOrders, so the fanout's hop is the child of addOrder.
	fanout := one("plait.react "+orderdesk.CustomerNameFanoutName, engine.AttrCorrelationID, "o1-place")
	if cause := commands[attr(fanout, engine.AttrCausationID)]; cause == nil || cause.Name() != "plait.command customerOrders.addOrder" {
		t.Errorf("the fanout hop's cause %v", attr(fanout, engine.AttrCausationID))
	}

	// One trace: the caller's.
	for _, s := range append(chain, httpSpan) {
		if got := s.SpanContext().TraceID().String(); got != callerTrace {
			t.Errorf("%s (%s) is in trace %s, want %s", s.Name(), attr(s, engine.AttrCommandID), got, callerTrace)
		}
	}
	// The HTTP span, three spans for each of five commands, two hops.
	if len(chain) != 18 {
		var got []string
		for _, s := range chain {
			got = append(got, s.Name())
		}
		t.Errorf("%d spans in the chain, want 18: %v", len(chain), sortedStrings(got))
	}
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestTracingOffRecordsNothing(t *testing.T) {
	// A provider installed globally must not be used: tracing is on only
	// when a provider is given.
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	h := startOrderdesk(t, nil)
	r := h.do("POST", "/commands?wait=settled", "", cmd{"type": orderdesk.CustomerType, "aggregateId": "c1",
		"name": orderdesk.CmdCreate, "data": map[string]any{"name": "Ada", "email": "ada@example.com"}},
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if r.status != 200 {
		t.Fatalf("create customer: %s", r)
	}
	r = h.do("POST", "/commands?wait=settled", "", cmd{"id": "o1-place", "type": orderdesk.OrderType, "aggregateId": "o1",
		"name": orderdesk.CmdPlace, "data": map[string]any{"customerId": "c1", "lines": []map[string]any{{"sku": "A", "qty": 1, "price": 1}}}})
	if r.status != 200 {
		t.Fatalf("place order: %s", r)
	}
	if r := h.do("POST", "/commands?wait=outcome", "", cmd{"type": orderdesk.OrderType, "aggregateId": "o2",
		"name": orderdesk.CmdShip, "data": map[string]any{}}); r.status != 422 {
		t.Fatalf("ship a missing order: %s", r)
	}
	if r := h.do("GET", "/aggregates/orderList/o1", "", nil); r.status != 200 || !strings.Contains(string(r.body), `"Ada"`) {
		t.Fatalf("the view: %s", r)
	}
	if n := len(rec.Started()); n != 0 {
		t.Errorf("%d spans started with tracing off", n)
	}
}
