package plaittest_test

import (
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/plaittest"
)

// Note is the data of a stamped event as the copier reacts to it.
type Note struct {
	Who string `json:"who"`
}

// copier copies who stamped an instance onto a tally of that user, and
// onto nothing when the stamp names nobody.
var copier = plait.NewReactor("copier",
	plait.On("stamps", "stamped", func(e plait.Evt[Note]) []plait.Dispatch {
		if e.Data.Who == "" {
			return nil
		}
		return []plait.Dispatch{plait.Send("tally", e.Data.Who, "count", map[string]string{"from": e.AggregateID})}
	}),
)

func TestReact(t *testing.T) {
	ev := plaittest.Happened("stamps", "s1", 2, "stamped", Note{Who: "ann"})
	if ev.ID == "" || ev.Seq != 2 || ev.User != plaittest.DefaultUser || !ev.At.Equal(plaittest.FixedTime) || string(ev.Data) != `{"who":"ann"}` {
		t.Fatalf("Happened: %+v", ev)
	}
	passes(t, func(tb testing.TB) {
		r := plaittest.React(copier, ev).ThenCommands(tb, plaittest.Sent{Type: "tally", AggregateID: "ann", Name: "count", Data: map[string]any{"from": "s1"}})
		if len(r.Commands()) != 1 || r.Err() != nil {
			tb.Errorf("commands %v, err %v", r.Commands(), r.Err())
		}
		plaittest.React(copier, plaittest.Happened("stamps", "s1", 3, "stamped", Note{})).ThenNoCommands(tb)
	})
	fails(t, "commands differ", func(tb testing.TB) {
		plaittest.React(copier, ev).ThenCommands(tb, plaittest.Sent{Type: "tally", AggregateID: "ann", Name: "count", Data: map[string]any{"from": "s2"}})
	})
	fails(t, "commands differ", func(tb testing.TB) { plaittest.React(copier, ev).ThenNoCommands(tb) })
	passes(t, func(tb testing.TB) { // not subscribed: nothing
		plaittest.React(copier, plaittest.Happened("stamps", "s1", 3, "unstamped", Note{Who: "ann"})).ThenNoCommands(tb)
	})
	// Checked against the definitions, a command the engine would skip is
	// an error.
	tally := plait.NewAggregate("tally",
		plait.Handle("count", func(n int, c plait.Cmd[struct {
			From string `json:"from"`
		}]) ([]plait.Change, error) {
			return nil, nil
		}))
	if err := plaittest.React(copier, ev, tally).Err(); err != nil {
		t.Errorf("a command its type takes: %v", err)
	}
	strict := plait.NewAggregate("tally",
		plait.Handle("count", func(n int, c plait.Cmd[struct {
			Origin string `json:"origin"`
		}]) ([]plait.Change, error) {
			return nil, nil
		}))
	if err := plaittest.React(copier, ev, strict).Err(); err == nil || !strings.Contains(err.Error(), "tally.count") {
		t.Errorf("data its type does not take: %v", err)
	}
	if err := plaittest.React(copier, ev, stamps).Err(); err == nil || !strings.Contains(err.Error(), `type "tally"`) {
		t.Errorf("a type not given: %v", err)
	}
	bad := ev
	bad.Data = []byte(`{"who":7}`)
	if err := plaittest.React(copier, bad).Err(); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Errorf("data that does not decode: %v", err)
	}
}
