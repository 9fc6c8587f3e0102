package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/sqlite"
)

// TestDedupLookupOfNewCommandsReadsNothing: once the command filter has
// loaded the ids stored before the store opened (more than one page of
// them), KnownCommands still finds every stored id, old or new, and looks
// up new ids without reading, but for the filter's rare false positives.
func TestDedupLookupOfNewCommandsReadsNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	commit := func(st *sqlite.Store, from, to int) {
		t.Helper()
		for i := from; i < to; i += 500 {
			var batch []*engine.Processed
			for j := i; j < min(i+500, to); j++ {
				batch = append(batch, processed(j, at))
			}
			if err := st.Commit(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	commit(st, 0, 6000)
	st.Close()

	st, err = sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.AwaitCommandFilter() {
		t.Fatal("the command filter did not load")
	}
	commit(st, 6000, 6100)
	var stored, fresh []string
	for i := 0; i < 6100; i += 7 {
		stored = append(stored, fmt.Sprintf("c%d", i))
	}
	for i := 0; i < 1000; i++ {
		fresh = append(fresh, fmt.Sprintf("new%d", i))
	}
	known, err := st.KnownCommands(ctx, append(append([]string{}, stored...), fresh...))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range stored {
		if !known[id] {
			t.Errorf("stored command %s is not known", id)
		}
	}
	if len(known) != len(stored) {
		t.Errorf("%d ids known, want the %d stored", len(known), len(stored))
	}
	// New ids one at a time, as a partition with one command asks.
	before := st.DedupReads()
	for _, id := range fresh {
		known, err := st.KnownCommands(ctx, []string{id})
		if err != nil || len(known) != 0 {
			t.Fatalf("new id %s: known %v, %v", id, known, err)
		}
	}
	if reads := st.DedupReads() - before; reads > 20 {
		t.Errorf("looking up 1000 new ids read %d times, want about 1%% of them", reads)
	}
}
