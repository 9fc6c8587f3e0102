package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestSearch runs the search filters' contract, shared with the
// PostgreSQL store.
func TestSearch(t *testing.T) {
	enginetest.RunSearch(t, func(t *testing.T) enginetest.IndexingStore {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "search.db"), sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestOwnerFieldDeclaredLater runs the owner field's contract, shared with
// the PostgreSQL store.
func TestOwnerFieldDeclaredLater(t *testing.T) {
	enginetest.RunOwnerFieldDeclaredLater(t, func(t *testing.T) enginetest.IndexingStore {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "owners.db"), sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
