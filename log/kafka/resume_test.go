package kafka_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
)

// TestAPositionOfTheSharedFeedIsAwaited: scaled out, a stream resumed on
// one instance may name a position another instance's relay sent, which
// this one has not read yet. AwaitHead waits until it has; a position the
// store does not hold is answered at once.
func TestAPositionOfTheSharedFeedIsAwaited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app := enginetest.App()
	app.Reactors = nil
	st, open := scaledOut(ctx, t, app, 2)
	a, err := engine.New(app, st, engine.Options{CommandLog: open(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, a)
	rec, err := a.Submit(ctx, plait.Command{Type: "counter", AggregateID: "x", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Await(ctx, rec.Command.ID)
	if err != nil {
		t.Fatal(err)
	}
	pos := out.Position

	// b has read nothing yet: it runs only a little later.
	b, err := engine.New(app, st, engine.Options{CommandLog: open(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if b.Head() >= pos {
		t.Fatalf("b's head %d before it runs, want it behind %d", b.Head(), pos)
	}
	if head, err := b.AwaitHead(ctx, pos+1000); err != nil || head >= pos+1000 {
		t.Fatalf("AwaitHead of a position the store lacks = %d, %v; want at once, below it", head, err)
	}
	waitCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	type result struct {
		head int64
		err  error
	}
	got := make(chan result, 1)
	go func() {
		head, err := b.AwaitHead(waitCtx, pos)
		got <- result{head, err}
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("AwaitHead(%d) returned %+v before b ran", pos, r)
	default:
	}
	enginetest.Background(t, b)
	if r := <-got; r.err != nil || r.head < pos {
		t.Fatalf("AwaitHead(%d) = %+v; want b to reach it", pos, r)
	}
}
