package engine_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
)

// Commands are stamped to the microsecond, all PostgreSQL keeps, so that a
// time an application copies into its data equals the time recorded with
// its events in either deployment.
func TestCommandsAreStampedToTheMicrosecond(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	n := enginetest.StartWith(t, sqliteOpener(t), func(engine.Store, plait.App) engine.Options {
		return engine.Options{Partitions: 2, Clock: func() time.Time { return at }}
	})
	rec, err := n.Engine.Submit(context.Background(), plait.Command{Type: "counter", AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	want := at.Truncate(time.Microsecond)
	if got := rec.Command.At; !got.Equal(want) {
		t.Fatalf("command stamped %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	evs, err := n.Engine.Events(context.Background(), "counter", "a", 0, 10)
	if err != nil || len(evs) != 1 || !evs[0].At.Equal(want) {
		t.Fatalf("events %+v %v, want one at %s", evs, err, want)
	}
}
