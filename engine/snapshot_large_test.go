//go:build !race

package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestLoadingFromTheSnapshotTakesAtMostFivePercentOfFolding: an instance
// with 100,000 events loads from its snapshot (plus the events after it,
// none) in at most 5% of the time it takes to fold its history, on a real
// SQLite store, and both give the same record. It is left out of
// race-detector runs, which would make it take minutes, and runs in every
// plain go test.
func TestLoadingFromTheSnapshotTakesAtMostFivePercentOfFolding(t *testing.T) {
	const n = 100_000
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	writeHistory(t, st, "big", n)
	e := startOn(t, enginetest.App(), st)
	ctx := context.Background()

	var folded, loaded engine.Instance
	fold, snap := time.Duration(1<<62), time.Duration(1<<62)
	for range 2 { // the best of two of each, so a busy machine is fair to both
		start := time.Now()
		if folded, err = e.Fold(ctx, "counter", "big", engine.Instance{}); err != nil {
			t.Fatal(err)
		}
		fold = min(fold, time.Since(start))
		start = time.Now()
		in, err := e.Load(ctx, "counter", "big")
		if err == nil {
			loaded, err = e.Fold(ctx, "counter", "big", in)
		}
		if err != nil {
			t.Fatal(err)
		}
		snap = min(snap, time.Since(start))
	}
	if folded.Seq != n || string(folded.State) != fmt.Sprintf(`{"count":%d}`, n) || folded.Owner != "u" {
		t.Fatalf("folded %d events into seq %d, state %s, owner %q", n, folded.Seq, folded.State, folded.Owner)
	}
	if loaded.Seq != folded.Seq || string(loaded.State) != string(folded.State) || !loaded.UpdatedAt.Equal(folded.UpdatedAt) {
		t.Fatalf("from the snapshot: seq %d, state %s; folded: seq %d, state %s", loaded.Seq, loaded.State, folded.Seq, folded.State)
	}
	t.Logf("%d events: folded in %v, loaded from the snapshot in %v (%.3f%%)", n, fold, snap, 100*float64(snap)/float64(fold))
	if snap*20 > fold {
		t.Errorf("loading from the snapshot took %v, more than 5%% of folding the history (%v)", snap, fold)
	}
}
