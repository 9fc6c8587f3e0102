package postgres_test

import (
	"testing"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
)

// TestStagedViews runs the staged copies' contract, shared with the
// embedded store.
func TestStagedViews(t *testing.T) {
	enginetest.RunStagedViews(t, func(t *testing.T) engine.Store {
		st, _ := open(t)
		return st
	})
}
