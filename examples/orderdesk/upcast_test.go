package orderdesk_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

// appV1 is orderdesk as it was before orders had a currency: its order
// type records the placed event at version 1.
func appV1() plait.App {
	app := orderdesk.App()
	app.Upcasters = nil
	for i, d := range app.Aggregates {
		if d.Type() != orderdesk.OrderType {
			continue
		}
		app.Aggregates[i] = plait.NewAggregate(orderdesk.OrderType,
			plait.Handle(orderdesk.CmdPlace, func(s orderdesk.OrderState, c plait.Cmd[orderdesk.PlaceOrder]) ([]plait.Change, error) {
				placed := orderdesk.OrderPlacedV1{CustomerID: c.Data.CustomerID, PlacedAt: plait.Time{Time: c.At}}
				for _, l := range c.Data.Lines {
					placed.Lines = append(placed.Lines, orderdesk.Line{SKU: l.SKU, Qty: *l.Qty, Price: *l.Price})
					placed.Total += float64(*l.Qty) * *l.Price
				}
				return []plait.Change{plait.Emit(orderdesk.EvtPlaced, placed)}, nil
			}),
			plait.Handle(orderdesk.CmdShip, func(s orderdesk.OrderState, c plait.Cmd[orderdesk.ShipOrder]) ([]plait.Change, error) {
				return []plait.Change{plait.Emit(orderdesk.EvtShipped, orderdesk.OrderShipped{At: c.At})}, nil
			}),
			plait.Apply(orderdesk.EvtPlaced, func(_ orderdesk.OrderState, e orderdesk.OrderPlacedV1) orderdesk.OrderState {
				return orderdesk.OrderState{OrderPlaced: orderdesk.OrderPlaced{CustomerID: e.CustomerID, Lines: e.Lines, Total: e.Total, PlacedAt: e.PlacedAt}, Status: orderdesk.StatusPlaced}
			}),
			plait.Apply(orderdesk.EvtShipped, func(s orderdesk.OrderState, _ orderdesk.OrderShipped) orderdesk.OrderState {
				s.Status = orderdesk.StatusShipped
				return s
			}),
			plait.Apply(orderdesk.EvtCancelled, func(s orderdesk.OrderState, _ orderdesk.OrderCancelled) orderdesk.OrderState { return s }),
		)
	}
	return app
}

// startAt runs app on the SQLite file at path, until stopped or the test
// ends.
func startAt(t *testing.T, app plait.App, path string) *live {
	t.Helper()
	return startWith(t, app, path, engine.Options{})
}

// startWith is startAt with the engine's options.
func startWith(t *testing.T, app plait.App, path string, opts engine.Options) *live {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL", Application: app.Name})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(app, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()
	l := &live{t: t, e: e, st: st}
	var once sync.Once
	l.stop = func() { once.Do(func() { cancel(); <-done; st.Close() }) }
	t.Cleanup(l.stop)
	return l
}

// TestALogWrittenWithPlacedV1ReadsAsV2InEveryConsumer: orders placed
// before orders had a currency read, after the change, as version 2 in
// euros: in the history, the outcomes, the feed the relay and reactors
// read, a fold, a replay of the order type and a replay of the orderList
// view.
func TestALogWrittenWithPlacedV1ReadsAsV2InEveryConsumer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orderdesk.db")
	ctx := context.Background()
	old := startAt(t, appV1(), path)
	old.send("customer", "c1", "create", M{"name": "Ann", "email": "ann@example.com"})
	placeV1 := old.send("order", "o1", "place", M{"customerId": "c1", "lines": twoLines})
	old.send("order", "o1", "ship", M{})
	old.settle()
	if v := placeV1.Events[0].Version; v != 0 {
		t.Fatalf("the old release recorded version %d", v)
	}
	old.stop()

	l := startAt(t, orderdesk.App(), path)
	wantPlaced := func(where string, ev plait.Event) {
		t.Helper()
		var p orderdesk.OrderPlaced
		if err := json.Unmarshal(ev.Data, &p); err != nil || ev.Version != 2 || p.Currency != "EUR" || p.Total != 21 || p.CustomerID != "c1" {
			t.Errorf("%s: %s version %d %s (%v), want version 2 in EUR", where, ev.Name, ev.Version, ev.Data, err)
		}
	}
	evs, err := l.e.Events(ctx, "order", "o1", 0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("history: %v %v", evs, err)
	}
	wantPlaced("history", evs[0])
	out, ok, err := l.e.Outcome(ctx, placeV1.Command.ID)
	if err != nil || !ok {
		t.Fatalf("outcome: %v %v", ok, err)
	}
	wantPlaced("outcome", out.Events[0])
	items, err := l.e.ReadFeed(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Event != nil && it.Event.Type == "order" && it.Event.Name == "placed" {
			wantPlaced("feed", *it.Event)
		}
	}
	folded, err := l.e.Fold(ctx, "order", "o1", engine.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	var state orderdesk.OrderState
	if json.Unmarshal(folded.State, &state); state.Currency != "EUR" || state.Status != "shipped" {
		t.Errorf("folded: %s", folded.State)
	}

	// The snapshots and the view were made by the old release: without a
	// currency until replayed.
	if item, _ := l.item("o1"); item.Currency != "" || item.CustomerName != "Ann" {
		t.Fatalf("the old view: %+v", item)
	}
	if _, err := l.e.Replay(ctx, "order", nil); err != nil {
		t.Fatal(err)
	}
	in, err := l.e.Load(ctx, "order", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if string(in.State) != string(folded.State) {
		t.Errorf("replayed snapshot %s, want the fold %s", in.State, folded.State)
	}
	if _, err := l.e.Rebuild(ctx, orderdesk.OrderListType, nil); err != nil {
		t.Fatal(err)
	}
	item, lineage := l.item("o1")
	if item.Currency != "EUR" || item.Status != "shipped" || item.CustomerName != "Ann" || item.Total != 21 {
		t.Errorf("the rebuilt view: %+v", item)
	}
	if lineage["currency"] != (plait.Lineage{Type: "order", AggregateID: "o1", Seq: 1}) {
		t.Errorf("currency lineage %+v", lineage["currency"])
	}

	// The new release goes on: a new order in dollars, and the old order
	// moves on from its replayed snapshot.
	l.send("order", "o2", "place", M{"customerId": "c1", "lines": twoLines, "currency": "USD"})
	rej := l.send("order", "o1", "cancel", M{"reason": "late"})
	l.settle()
	if rej.Status != plait.StatusRejected {
		t.Errorf("cancel of a shipped order: %s", rej.Status)
	}
	if item, _ := l.item("o2"); item.Currency != "USD" {
		t.Errorf("o2: %+v", item)
	}
	// The schema of place refuses a currency that is not a code before
	// anything is stored.
	_, err = l.e.Submit(ctx, plait.Command{Type: "order", AggregateID: "o3", Name: "place",
		Data: json.RawMessage(`{"customerId":"c1","lines":[],"currency":"euro"}`)}, plait.User{ID: "clerk"})
	var se *plait.SchemaError
	if !errors.As(err, &se) || len(se.Errors) != 1 || se.Errors[0].Path != "currency" || se.Errors[0].Code != "schema:pattern" {
		t.Errorf("place in euro: %v, want a schema:pattern violation at currency", err)
	}
}
