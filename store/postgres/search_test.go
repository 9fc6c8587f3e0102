package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// TestSearch runs the search filters' contract, shared with the embedded
// store.
func TestSearch(t *testing.T) { enginetest.RunSearch(t, openIndexing) }

// openIndexing opens a fresh store for a contract of EnsureIndexes.
func openIndexing(t *testing.T) enginetest.IndexingStore {
	st, _ := open(t)
	return st
}

// TestSearchKeysAreWrittenByEveryStore: a store of the schema that did not
// declare the searchable fields itself (it never called EnsureIndexes)
// keys what it writes all the same, and keys a process of an older
// version left behind are written again by the next EnsureIndexes.
func TestSearchKeysAreWrittenByEveryStore(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	openStore := func() *postgres.Store {
		st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	type person struct {
		Name string `json:"name"`
	}
	defs := []plait.Definition{plait.NewAggregate("person", plait.Searchable[person]("name"))}
	a := openStore()
	if err := a.EnsureIndexes(ctx, defs); err != nil {
		t.Fatal(err)
	}
	b := openStore()
	w := &writer{st: b}
	w.put(t, "person", "p1", "u", `{"name":"Anna"}`, nil)
	search := func(v string) string {
		t.Helper()
		page, err := a.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{{Field: "name", Op: "search", Value: v}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		return fmt.Sprint(ids)
	}
	if got := search("ann"); got != "[p1]" {
		t.Fatalf("search ann finds %s, want the instance the other store wrote", got)
	}
	// A process of an older version writes the state and leaves the keys.
	if _, err := a.Pool().Exec(ctx, `UPDATE `+pgx.Identifier{schema, "instances"}.Sanitize()+
		` SET state = '{"name":"Bob"}', seq = seq + 1 WHERE id = 'p1'`); err != nil {
		t.Fatal(err)
	}
	if got := search("bob"); got != "[]" {
		t.Fatalf("search bob finds %s before the keys are written again", got)
	}
	if err := openStore().EnsureIndexes(ctx, defs); err != nil {
		t.Fatal(err)
	}
	if got, old := search("bob"), search("ann"); got != "[p1]" || old != "[]" {
		t.Fatalf("after EnsureIndexes, search bob finds %s and ann %s, want [p1] and []", got, old)
	}

	// A field declared searchable later is keyed in the instances keyed
	// before, at their seq, and a field no longer declared loses its index.
	type contact struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	w.put(t, "person", "p2", "u", `{"name":"Cy","email":"Cy@Example.com"}`, nil)
	both := []plait.Definition{plait.NewAggregate("person", plait.Searchable[contact]("name", "email"))}
	if err := openStore().EnsureIndexes(ctx, both); err != nil {
		t.Fatal(err)
	}
	page, err := a.List(ctx, "person", engine.ListQuery{Filters: []engine.Filter{{Field: "email", Op: "search", Value: "cy@"}}})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "p2" {
		t.Fatalf("search email cy@: %v, %v", page.Items, err)
	}
	searchIndexes := func() int {
		var n int
		if err := a.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE '%~search%'`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := searchIndexes(); n != 3 { // name, email, the stale keys
		t.Fatalf("%d search indexes, want 3", n)
	}
	if err := openStore().EnsureIndexes(ctx, []plait.Definition{plait.NewAggregate("person", plait.Searchable[contact]("email"))}); err != nil {
		t.Fatal(err)
	}
	if n := searchIndexes(); n != 2 {
		t.Fatalf("with name no longer searchable, %d search indexes, want 2", n)
	}
	if err := openStore().EnsureIndexes(ctx, []plait.Definition{plait.NewAggregate[contact]("person")}); err != nil {
		t.Fatal(err)
	}
	if n := searchIndexes(); n != 0 {
		t.Fatalf("with no field searchable, %d search indexes, want none", n)
	}
}

// TestOwnerFieldDeclaredLater runs the owner field's contract, shared with
// the embedded store.
func TestOwnerFieldDeclaredLater(t *testing.T) {
	enginetest.RunOwnerFieldDeclaredLater(t, openIndexing)
}
