package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

type person struct {
	Email string `json:"email"`
}

// people is an application of persons whose email is personal data.
func people() plait.App {
	return plait.App{Name: "people", Aggregates: []plait.Definition{plait.NewAggregate("person",
		plait.Handle("set", func(s person, c plait.Cmd[person]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("set", c.Data)}, nil
		}),
		plait.Apply("set", func(s person, e person) person { return e }),
		plait.Personal[person](plait.SubjectIsID, "email"),
	)}}
}

// racingLists is the SQLite store whose n-th List runs before() first: a
// write that lands between two reads of one list page.
type racingLists struct {
	*sqlite.Store
	calls  *atomic.Int64
	n      int64
	before func()
}

func (s racingLists) List(ctx context.Context, typ string, q engine.ListQuery) (engine.ListPage, error) {
	if s.calls.Add(1) == s.n {
		s.before()
	}
	return s.Store.List(ctx, typ, q)
}

// TestASealedFilterSkipsNoMatchWhenWritesRaceItsPage: a page of a filter
// on a sealed field reads the store twice when it finds more matches than
// it needs, the second time for the cursor after the last it keeps; a
// match a write brings into that range meanwhile is on a page all the same.
func TestASealedFilterSkipsNoMatchWhenWritesRaceItsPage(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	var e *engine.Engine
	set := func(id, email string) {
		t.Helper()
		if _, err := e.Submit(ctx, plait.Command{Type: "person", AggregateID: id, Name: "set", Data: []byte(`{"email":"` + email + `"}`)}, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	st := racingLists{Store: openSQLite(t), calls: &calls, n: 2, before: func() { set("p2", "m2") }}
	var err error
	if e, err = engine.New(people(), st, engine.Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	for i, email := range []string{"x1", "x2", "x3", "m4", "m5", "x6"} {
		set(fmt.Sprintf("p%d", i+1), email)
	}
	calls.Store(0)
	var got []string
	q := engine.ListQuery{Filters: []engine.Filter{{Field: "email", Op: "prefix", Value: "m"}}, Limit: 1}
	for range 10 {
		page, err := e.List(ctx, "person", q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 1 {
			t.Errorf("a page of %d items, limit 1", len(page.Items))
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if fmt.Sprint(got) != "[p2 p4 p5]" {
		t.Fatalf("pages of prefix.email=m while p2 became m2: %v, want [p2 p4 p5]", got)
	}
}

// A filter on a sealed field whose value is not UTF-8 matches nothing, as
// on a field the store holds in the clear: not the address whose bytes
// start with a piece of one of its characters.
func TestASealedFilterOfInvalidUTF8MatchesNothing(t *testing.T) {
	ctx := context.Background()
	e, err := engine.New(people(), openSQLite(t), engine.Options{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	if _, err := e.Submit(ctx, plait.Command{Type: "person", AggregateID: "p1", Name: "set", Data: []byte(`{"email":"中@例え.jp"}`)}, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"中", "\xe4"} {
		var page engine.ListPage
		for range 100 { // until the command is materialized
			if page, err = e.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{{Field: "email", Op: "prefix", Value: "中"}}}); err != nil {
				t.Fatal(err)
			}
			if len(page.Items) == 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if page, err = e.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{{Field: "email", Op: "prefix", Value: v}}}); err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"中": 1, "\xe4": 0}[v]; len(page.Items) != want {
			t.Errorf("prefix.email=%+q: %d items, want %d", v, len(page.Items), want)
		}
	}
}
