package engine_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestTheFeedIsReadableBeforeRun: a server may be built on an engine, and
// asked for the feed, before the engine runs. Until Run has read the
// store's head nothing is published; a reader that waited is woken when
// it is.
func TestTheFeedIsReadableBeforeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "plait.db")
	// No reactor: nothing is written after Run but what the test sends.
	app := enginetest.App()
	app.Reactors = nil
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	first := enginetest.StartApp(t, func(*testing.T) engine.Store { return st }, app)
	cmd := plait.Command{ID: "c1", Type: "counter", AggregateID: "k1", Name: "add", Data: []byte(`{"by":1}`)}
	if _, err := first.Engine.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Engine.Await(ctx, cmd.ID); err != nil {
		t.Fatal(err)
	}
	first.Stop()

	st, err = sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the engine stops: cleanups run last first
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed := e.FeedChanged()
	if h := e.Head(); h != 0 {
		t.Fatalf("head before Run: %d, want 0", h)
	}
	if items, err := e.ReadFeed(ctx, 0, 10); err != nil || len(items) != 0 {
		t.Fatalf("feed before Run: %d items, %v; want none", len(items), err)
	}
	if s := e.Stats(); s.Head != 0 {
		t.Fatalf("stats' head before Run: %d", s.Head)
	}
	enginetest.Background(t, e)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("a reader waiting before Run was not woken when it started")
	}
	items, err := e.ReadFeed(ctx, 0, 10)
	if err != nil || len(items) == 0 || e.Head() != items[len(items)-1].Position {
		t.Fatalf("feed after Run: %d items, %v, head %d", len(items), err, e.Head())
	}
}
