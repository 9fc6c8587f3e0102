package engine_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/sqlite"
)

// The note's "written" event: version 1 had "text", version 2 has "body"
// and "lang".
type (
	writtenV1 struct {
		Text string `json:"text"`
	}
	writtenV2 struct {
		Body string `json:"body"`
		Lang string `json:"lang"`
	}
	noteDoc struct {
		Body string `json:"body"`
		Lang string `json:"lang"`
	}
)

func noteV1App() plait.App {
	return plait.App{Name: "notes", Aggregates: []plait.Definition{plait.NewAggregate("note",
		plait.Handle("write", func(s noteDoc, c plait.Cmd[writtenV1]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Apply("written", func(s noteDoc, e writtenV1) noteDoc { return noteDoc{Body: e.Text} }),
	)}}
}

// noteV2App is the next release: "written" is at version 2, and a reactor
// records every body it sees.
func noteV2App(seen func(writtenV2)) plait.App {
	return plait.App{
		Name: "notes",
		Aggregates: []plait.Definition{plait.NewAggregate("note",
			plait.Handle("write", func(s noteDoc, c plait.Cmd[writtenV2]) ([]plait.Change, error) {
				return []plait.Change{plait.Emit("written", c.Data)}, nil
			}),
			plait.Apply("written", func(s noteDoc, e writtenV2) noteDoc { return noteDoc(e) }),
			plait.Version[noteDoc]("written", 2),
		)},
		Reactors: []*plait.Reactor{plait.NewReactor("watch",
			plait.On("note", "written", func(e plait.Evt[writtenV2]) []plait.Dispatch { seen(e.Data); return nil }))},
		Upcasters: []plait.Upcaster{plait.UpcastAs("note", "written", 1, func(o writtenV1) writtenV2 {
			return writtenV2{Body: o.Text, Lang: "en"}
		})},
	}
}

func runEngine(t *testing.T, app plait.App, path string) (*engine.Engine, func()) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	return e, func() { cancel(); <-done; st.Close() }
}

func TestEventsRecordedAtVersionOneAreReadAtTheCurrentVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "notes.db")
	e1, stop := runEngine(t, noteV1App(), path)
	if _, err := e1.Submit(ctx, plait.Command{ID: "c1", Type: "note", AggregateID: "n1", Name: "write", Data: json.RawMessage(`{"text":"hello"}`)}, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	stop()

	var mu sync.Mutex
	var seen []writtenV2
	e2, stop := runEngine(t, noteV2App(func(w writtenV2) { mu.Lock(); seen = append(seen, w); mu.Unlock() }), path)
	defer stop()
	if _, err := e2.Submit(ctx, plait.Command{ID: "c2", Type: "note", AggregateID: "n2", Name: "write", Data: json.RawMessage(`{"body":"hi","lang":"fr"}`)}, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	want := writtenV2{Body: "hello", Lang: "en"}
	check := func(where string, ev plait.Event) {
		t.Helper()
		var got writtenV2
		if err := json.Unmarshal(ev.Data, &got); err != nil || got != want || ev.Version != 2 {
			t.Errorf("%s: version %d, data %s (%v), want version 2 with %+v", where, ev.Version, ev.Data, err, want)
		}
	}
	evs, err := e2.Events(ctx, "note", "n1", 0, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("history: %v %v", evs, err)
	}
	check("history", evs[0])
	out, ok, err := e2.Outcome(ctx, "c1")
	if err != nil || !ok || len(out.Events) != 1 {
		t.Fatalf("outcome: %+v %v %v", out, ok, err)
	}
	check("outcome", out.Events[0])
	items, err := e2.ReadFeed(ctx, 0, 10) // from the store: before the engine's memory
	if err != nil || len(items) == 0 || items[0].Event == nil {
		t.Fatalf("feed: %v %v", items, err)
	}
	check("feed", *items[0].Event)

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != want || seen[1] != (writtenV2{Body: "hi", Lang: "fr"}) {
		t.Errorf("the reactor saw %+v, want the upcast event then the new one", seen)
	}
	// A new event is recorded at the current version.
	out, _, _ = e2.Outcome(ctx, "c2")
	if len(out.Events) != 1 || out.Events[0].Version != 2 {
		t.Errorf("new event: %+v, want version 2", out.Events)
	}
}
