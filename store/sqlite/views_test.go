package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestStagedViews runs the staged copies' contract, shared with the
// PostgreSQL store.
func TestStagedViews(t *testing.T) {
	enginetest.RunStagedViews(t, func(t *testing.T) engine.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "views.db"), sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
