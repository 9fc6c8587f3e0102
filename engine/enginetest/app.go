// Package enginetest is the contract suite of Plait's invariants: run it
// against every store the engine can use, so a behaviour proven on one holds
// on all of them.
package enginetest

import (
	"strings"

	"github.com/plaithq/plait"
)

// Counter is the state of the suite's "counter" aggregate.
type Counter struct {
	Count int    `json:"count"`
	Label string `json:"label,omitempty"`
}

// Add is the data of the counter's "add" command.
type Add struct {
	By int `json:"by"`
}

// Added is the data of the counter's "added" event.
type Added struct {
	By int `json:"by"`
}

// Labelled is the data of the counter's "labelled" event and "label" command.
type Labelled struct {
	Label string `json:"label"`
}

// Empty is a payload with no fields.
type Empty struct{}

// Tally is the state of the "tally" view: how often each counter was added to.
type Tally struct {
	Adds int `json:"adds"`
}

// Note is what the suite's reactor tells the tally.
type Note struct {
	From plait.Lineage `json:"from"`
}

// CounterType is the counter aggregate: "add" adds (by ≥ 1, else rejected
// with code invalid), "label" sets a label in two events, "boom" panics,
// "poison" emits a label no store can keep (a NUL character).
var CounterType = plait.NewAggregate[Counter]("counter",
	plait.Handle("add", func(s Counter, c plait.Cmd[Add]) ([]plait.Change, error) {
		if c.Data.By < 1 {
			return nil, plait.Reject("by", plait.CodeInvalid, "by must be at least 1")
		}
		return []plait.Change{plait.Emit("added", Added(c.Data))}, nil
	}),
	plait.Handle("label", func(s Counter, c plait.Cmd[Labelled]) ([]plait.Change, error) {
		return []plait.Change{
			plait.Emit("labelled", Labelled{Label: strings.ToUpper(c.Data.Label)}),
			plait.Emit("added", Added{By: 1}),
		}, nil
	}),
	plait.Handle("boom", func(s Counter, c plait.Cmd[Empty]) ([]plait.Change, error) {
		panic("boom")
	}),
	plait.Handle("poison", func(s Counter, c plait.Cmd[Empty]) ([]plait.Change, error) {
		return []plait.Change{plait.Emit("labelled", Labelled{Label: "a\x00b"})}, nil
	}),
	plait.Apply("added", func(s Counter, e Added) Counter { s.Count += e.By; return s }),
	plait.Apply("labelled", func(s Counter, e Labelled) Counter { s.Label = e.Label; return s }),
	plait.Indexed[Counter]("count"),
)

// TallyType is a view counting the adds of each counter, fed by TallyReactor.
var TallyType = plait.NewAggregate[Tally]("tally",
	plait.AsView[Tally](),
	plait.Handle("note", func(s Tally, c plait.Cmd[Note]) ([]plait.Change, error) {
		return []plait.Change{plait.Emit("noted", Note(c.Data)).From(c.Data.From, "adds")}, nil
	}),
	plait.Apply("noted", func(s Tally, e Note) Tally { s.Adds++; return s }),
)

// TallyReactor sends one "note" to the counter's tally for every "added".
var TallyReactor = plait.NewReactor("tally",
	plait.On("counter", "added", func(e plait.Evt[Added]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send("tally", e.AggregateID, "note", Note{From: e.Source()})}
	}),
)

// App is the suite's application.
func App() plait.App {
	return plait.App{
		Name:       "contract",
		Aggregates: []plait.Definition{CounterType, TallyType},
		Reactors:   []*plait.Reactor{TallyReactor},
	}
}
