package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestSearch runs the search filters' contract, shared with the
// PostgreSQL store.
func TestSearch(t *testing.T) { enginetest.RunSearch(t, openIndexing) }

// TestOwnerFieldDeclaredLater runs the owner field's contract, shared with
// the PostgreSQL store.
func TestOwnerFieldDeclaredLater(t *testing.T) {
	enginetest.RunOwnerFieldDeclaredLater(t, openIndexing)
}

// openIndexing opens a fresh store for a contract of EnsureIndexes.
func openIndexing(t *testing.T) enginetest.IndexingStore {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestAFieldNoLongerSearchableLosesItsIndex: EnsureIndexes drops the index
// of the keys of a field its type no longer declares searchable, and no
// other type's (the names of "a" and "a_b" share a beginning).
func TestAFieldNoLongerSearchableLosesItsIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drop.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	type doc struct {
		Name  string `json:"name"`
		BName string `json:"b_name"`
	}
	a := func(fields ...string) plait.Definition {
		return plait.NewAggregate("a", plait.Searchable[doc](fields...))
	}
	ab := plait.NewAggregate("a_b", plait.Searchable[doc]("name"))
	if err := st.EnsureIndexes(ctx, []plait.Definition{a("name", "b_name"), ab}); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureIndexes(ctx, []plait.Definition{a("name"), ab}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%~search' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	if want := []string{"instances_a_b_name~search", "instances_a_name~search"}; !slices.Equal(names, want) {
		t.Fatalf("search indexes %v, want %v", names, want)
	}
}
