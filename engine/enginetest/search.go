package enginetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// IndexingStore is a store that makes the indexes a type declares, as
// both of Plait's do when an application starts.
type IndexingStore interface {
	engine.Store
	engine.StagedViews
	EnsureIndexes(ctx context.Context, defs []plait.Definition) error
}

// person is the state of the type RunSearch searches.
type person struct {
	Name string `json:"name"`
	Note string `json:"note"`
}

// searchable is a definition of "person" whose name is searchable.
func searchable() *plait.Aggregate[person] {
	return plait.NewAggregate("person", plait.Searchable[person]("name"))
}

// RunSearch runs the contract of search filters (Op "search") against the
// stores newStore makes, each fresh and empty: a search finds the
// instances whose field starts with the value as their plait.SearchKeys
// compare, in pages, those stored before the field was declared
// searchable included, and in a view rebuilt on a staged copy.
func RunSearch(t *testing.T, newStore func(t *testing.T) IndexingStore) {
	ctx := context.Background()
	names := map[string]string{
		"a": "Ann Smith", "b": "anna", "c": "ANNE-Marie", "d": "Zoë", "e": "ZOE", "f": "Bob",
		"g": "Straße", "h": "strasse", "i": "Annﬁeld", "j": "zoe\u0308", "k": "An",
	}
	want := map[string][]string{
		"ann":     {"a", "b", "c", "i"},
		"ANN":     {"a", "b", "c", "i"},
		"anne-m":  {"c"},
		"ann s":   {"a"},
		"zoe":     {"d", "e", "j"},
		"Zoë":     {"d", "e", "j"},
		"strass":  {"g", "h"},
		"STRASSE": {"g", "h"},
		"annfi":   {"i"},
		"x":       nil,
		"":        {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"},
	}
	search := func(t *testing.T, st engine.Store, typ, v string, limit int, desc ...bool) []string {
		t.Helper()
		var ids []string
		q := engine.ListQuery{Filters: []engine.Filter{{Field: "name", Op: "search", Value: v}}, Limit: limit, Desc: len(desc) > 0}
		for pages := 0; ; pages++ {
			page, err := st.List(ctx, typ, q)
			if err != nil {
				t.Fatalf("search %q: %v", v, err)
			}
			for _, it := range page.Items {
				ids = append(ids, it.ID)
			}
			if page.Next == "" || pages > 20 {
				return ids
			}
			q.After = page.Next
		}
	}
	check := func(t *testing.T, st engine.Store, typ string) {
		t.Helper()
		for v, ids := range want {
			for _, limit := range []int{100, 2} {
				if got := search(t, st, typ, v, limit); !reflect.DeepEqual(got, ids) {
					t.Errorf("%s: search %q (pages of %d) = %v, want %v", typ, v, limit, got, ids)
				}
				backwards := slices.Clone(ids)
				slices.Reverse(backwards)
				if got := search(t, st, typ, v, limit, true); !reflect.DeepEqual(got, backwards) {
					t.Errorf("%s: search %q (pages of %d, descending) = %v, want %v", typ, v, limit, got, backwards)
				}
			}
		}
	}

	t.Run("Declared", func(t *testing.T) {
		st := newStore(t)
		if err := st.EnsureIndexes(ctx, []plait.Definition{searchable()}); err != nil {
			t.Fatal(err)
		}
		w := &viewWriter{st: st}
		for id, n := range names {
			w.put(t, "person", id, fmt.Sprintf(`{"name":%q,"note":"x"}`, n))
		}
		w.put(t, "person", "n", `{"name":12,"note":"x"}`) // not text: no key
		w.put(t, "person", "m", `{"note":"x"}`)
		check(t, st, "person")
		// A rename moves the instance to its new key.
		w.put(t, "person", "f", `{"name":"Annabel","note":"x"}`)
		if got := search(t, st, "person", "annab", 10); !reflect.DeepEqual(got, []string{"f"}) {
			t.Errorf("after a rename, search annab = %v, want [f]", got)
		}
		if got := search(t, st, "person", "bob", 10); got != nil {
			t.Errorf("after a rename, search bob = %v, want none", got)
		}
	})

	t.Run("StoredBeforeTheDeclaration", func(t *testing.T) {
		st := newStore(t)
		w := &viewWriter{st: st}
		for id, n := range names {
			w.put(t, "person", id, fmt.Sprintf(`{"name":%q}`, n))
		}
		if err := st.EnsureIndexes(ctx, []plait.Definition{searchable()}); err != nil {
			t.Fatal(err)
		}
		check(t, st, "person")
		// Once more, as every start does: nothing changes.
		if err := st.EnsureIndexes(ctx, []plait.Definition{searchable()}); err != nil {
			t.Fatal(err)
		}
		check(t, st, "person")
	})

	t.Run("RebuiltView", func(t *testing.T) {
		st := newStore(t)
		settings := searchable().Settings()
		if err := st.EnsureIndexes(ctx, []plait.Definition{plait.NewAggregate("view", plait.Searchable[person]("name"))}); err != nil {
			t.Fatal(err)
		}
		w := &viewWriter{st: st}
		w.put(t, "view", "a", `{"name":"Old"}`)
		c, err := st.StageView(ctx, "view", settings)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Cleanup(context.Background()) })
		var insts []engine.Instance
		for id, n := range names {
			insts = append(insts, copied(id, 1, fmt.Sprintf(`{"name":%q}`, n), nil))
		}
		if err := c.Write(ctx, insts); err != nil {
			t.Fatal(err)
		}
		if got := search(t, st, "view", "old", 10); !reflect.DeepEqual(got, []string{"a"}) {
			t.Errorf("before the swap, search old = %v, want [a]", got)
		}
		if err := c.Swap(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, st, "view")
		// The rebuilt view goes on: a commit after the swap is found.
		w.put(t, "view", "z", `{"name":"Ånnika"}`)
		if got := search(t, st, "view", "anni", 10); !reflect.DeepEqual(got, []string{"z"}) {
			t.Errorf("after the swap, search anni = %v, want [z]", got)
		}
	})
}
