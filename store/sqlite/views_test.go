package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait"
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

// TestSwapCarriesTheLiveSeqsOver: an item written to a copy whose live
// twin moved on afterwards (its new events left alone by the copy's
// logic) goes on, once swapped in, from the live seq: its next event must
// not take a seq the log has.
func TestSwapCarriesTheLiveSeqsOver(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "swap.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	live := func(seq int64) *engine.Processed {
		id := fmt.Sprintf("c%d", seq)
		return &engine.Processed{
			Outcome:  plait.Outcome{Command: plait.Command{ID: id, Type: "v", AggregateID: "x", Name: "n", CorrelationID: id}, Status: plait.StatusAccepted, Owner: "u"},
			Instance: &engine.Instance{Type: "v", ID: "x", Seq: seq, State: []byte(`{"n":1}`), Owner: "u", UpdatedAt: time.Now()},
		}
	}
	if err := st.Commit(ctx, []*engine.Processed{live(1)}); err != nil {
		t.Fatal(err)
	}
	cp, err := st.StageView(ctx, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Cleanup(ctx)
	if err := cp.Write(ctx, []engine.Instance{{Type: "v", ID: "x", Seq: 1, State: []byte(`{"n":0}`), Owner: "u", UpdatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, []*engine.Processed{live(3)}); err != nil { // the live item moves on
		t.Fatal(err)
	}
	if err := cp.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := st.Load(ctx, "v", "x")
	if err != nil || in.Seq != 3 || string(in.State) != `{"n":0}` {
		t.Fatalf("the swapped-in item: seq %d state %s (%v), want seq 3 with the copy's state", in.Seq, in.State, err)
	}
}

// TestCountsAreOfTheLiveCopy: a view's count is its live copy's, not a
// copy being built beside it (or left by a crash).
func TestCountsAreOfTheLiveCopy(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "counts.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.ReplaceView(ctx, "v", []engine.Instance{{Type: "v", ID: "a", Seq: 1, State: []byte(`{}`), Owner: "u"}}); err != nil {
		t.Fatal(err)
	}
	cp, err := st.StageView(ctx, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Cleanup(ctx)
	var staged []engine.Instance
	for _, id := range []string{"a", "b", "c"} {
		staged = append(staged, engine.Instance{Type: "v", ID: id, Seq: 1, State: []byte(`{}`), Owner: "u"})
	}
	if err := cp.Write(ctx, staged); err != nil {
		t.Fatal(err)
	}
	counts, err := st.Counts(ctx)
	if err != nil || counts["v"].Instances != 1 {
		t.Fatalf("counts while a copy is built: %+v (%v), want the live copy's 1", counts["v"], err)
	}
	if err := cp.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	if counts, err = st.Counts(ctx); err != nil || counts["v"].Instances != 3 {
		t.Fatalf("counts after the swap: %+v (%v), want 3", counts["v"], err)
	}
}
