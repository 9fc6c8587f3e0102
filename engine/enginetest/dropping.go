package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// DroppingApp is App with a tally reactor whose logic changes once
// dropSmall is set: from then on it leaves out adds below 2, so a rebuild
// leaves out the tallies of counters that had only those. For the tests
// of what a rebuild does to the items its new logic no longer makes.
func DroppingApp(dropSmall *atomic.Bool) plait.App {
	return plait.App{
		Name:       "dropping",
		Aggregates: []plait.Definition{CounterType, TallyType},
		Reactors: []*plait.Reactor{plait.NewReactor("tally",
			plait.On("counter", "added", func(e plait.Evt[Added]) []plait.Dispatch {
				if dropSmall.Load() && e.Data.By < 2 {
					return nil
				}
				return []plait.Dispatch{plait.Send("tally", e.AggregateID, "note", Note{From: e.Source()})}
			}))},
	}
}

// CheckARebuildsDroppedItemGoesOn runs, on an engine of DroppingApp with
// dropSmall unset, a rebuild whose new logic leaves out tally c1, then
// makes c1 again: its event must go on from the log's last seq rather than
// take seq 1 again, which the log has (its commit would fail for good, and
// the reactor stall).
func CheckARebuildsDroppedItemGoesOn(t *testing.T, e *engine.Engine, dropSmall *atomic.Bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	add := func(id string, by int) {
		t.Helper()
		r, err := e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: "c1", Name: "add",
			Data: json.RawMessage(fmt.Sprintf(`{"by":%d}`, by))}, plait.User{ID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := e.WaitSettled(wctx, r.Command.CorrelationID); err != nil {
			t.Fatalf("add %s did not settle: %v", id, err)
		}
	}
	add("a1", 1)
	dropSmall.Store(true)
	if _, err := e.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	if in, err := e.Load(ctx, "tally", "c1"); err != nil || in.Seq != 0 {
		t.Fatalf("the rebuilt tally c1: seq %d (%v), want none", in.Seq, err)
	}
	add("a2", 2)
	in, err := e.Load(ctx, "tally", "c1")
	var state Tally
	if err != nil || in.Seq != 2 || json.Unmarshal(in.State, &state) != nil || state.Adds != 1 {
		t.Fatalf("tally c1 made again: seq %d state %s (%v), want seq 2 after the log's 1, one add", in.Seq, in.State, err)
	}
}
