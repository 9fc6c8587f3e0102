package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/relay"
)

func ExampleAppendFrame() {
	it := engine.Item{Position: 42, Owner: "ann", Outcome: &plait.Outcome{
		Status: plait.StatusRejected,
		Errors: []plait.FieldError{{Path: "by", Code: "invalid", Message: "by must be at least 1"}},
		Command: plait.Command{
			ID: "c7", Type: "counter", AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":0}`),
			CorrelationID: "c7", User: "ann", At: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		},
	}}
	frame, err := relay.AppendFrame(nil, it)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(frame))
	// Output:
	// id: 42
	// event: outcome
	// data: {"id":"c7","type":"counter","aggregateId":"a","name":"add","status":"rejected","errors":[{"path":"by","code":"invalid","message":"by must be at least 1"}],"correlationId":"c7","data":{"by":0},"user":"ann","at":"2025-01-02T03:04:05Z","position":42}
}

// feedOf is a Source over a fixed list of items, for the example.
type feedOf []engine.Item

func (f feedOf) ReadFeed(_ context.Context, after int64, limit int) ([]engine.Item, error) {
	var out []engine.Item
	for _, it := range f {
		if it.Position > after && len(out) < limit {
			out = append(out, it)
		}
	}
	return out, nil
}

func (f feedOf) FeedChanged() <-chan struct{} { return make(chan struct{}) }

func (f feedOf) Head() int64 { return f[len(f)-1].Position }

// printSink prints what a stream writes.
type printSink struct{}

func (printSink) Write(p []byte) (int, error) { fmt.Print(string(p)); return len(p), nil }
func (printSink) Flush() error                { return nil }

func ExampleHub() {
	ev := func(pos int64, owner string) engine.Item {
		return engine.Item{Position: pos, Owner: owner, Event: &plait.Event{
			ID: fmt.Sprintf("c%d.1", pos), Type: "note", AggregateID: "n", Seq: pos, Name: "written",
			Data: json.RawMessage(`{}`), CorrelationID: "c", CausationID: "c", User: owner,
		}}
	}
	feed := feedOf{ev(1, "ann"), ev(2, "bob"), ev(3, "ann")}
	// Each item is routed by its owner; ann's stream listens to "ann".
	hub := relay.NewHub(feed, relay.HubOptions{
		Route: func(it engine.Item, keys []string) []string { return append(keys, it.Owner) },
	})
	defer hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// From position 0: ann's items so far, then whatever comes until ctx ends.
	hub.Stream(ctx, printSink{}, 0, relay.Subscription{Keys: []string{"ann"}})
	// Output:
	// : connected
	//
	// id: 1
	// event: event
	// data: {"id":"c1.1","type":"note","aggregateId":"n","seq":1,"name":"written","data":{},"correlationId":"c","causationId":"c","user":"ann","at":"0001-01-01T00:00:00Z","position":1}
	//
	// id: 3
	// event: event
	// data: {"id":"c3.1","type":"note","aggregateId":"n","seq":3,"name":"written","data":{},"correlationId":"c","causationId":"c","user":"ann","at":"0001-01-01T00:00:00Z","position":3}
}
