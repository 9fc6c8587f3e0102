package postgres_test

import (
	"testing"

	"github.com/plaithq/plait/engine/enginetest"
)

// TestSearch runs the search filters' contract, shared with the embedded
// store.
func TestSearch(t *testing.T) {
	enginetest.RunSearch(t, func(t *testing.T) enginetest.IndexingStore {
		st, _ := open(t)
		return st
	})
}
