package sqlite_test

import (
	"context"
	"database/sql"
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
	cp, err := st.StageView(ctx, "v", plait.Settings{})
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
	cp, err := st.StageView(ctx, "v", plait.Settings{})
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

// TestAbandonedCopiesAreDroppedWhenTheViewIsStagedAgain: a process stopped
// in the middle of a rebuild leaves copies behind, one staged and never
// swapped in, or the one a swap replaced. The next rebuild of the view
// drops them, rows and indexes, and leaves the live copy alone.
func TestAbandonedCopiesAreDroppedWhenTheViewIsStagedAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "abandoned.db")
	open := func() *sqlite.Store {
		t.Helper()
		st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	item := func(id string, n int) engine.Instance {
		return engine.Instance{Type: "v", ID: id, Seq: 1, State: []byte(fmt.Sprintf(`{"n":%d}`, n)), Owner: "u", UpdatedAt: time.Now()}
	}
	stageAndWrite := func(st *sqlite.Store, ids ...string) engine.ViewCopy {
		t.Helper()
		cp, err := st.StageView(ctx, "v", plait.Settings{Indexes: []string{"n"}})
		if err != nil {
			t.Fatal(err)
		}
		var insts []engine.Instance
		for i, id := range ids {
			insts = append(insts, item(id, i))
		}
		if err := cp.Write(ctx, insts); err != nil {
			t.Fatal(err)
		}
		return cp
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	stored := func() (rows map[string]int, indexes []string) {
		t.Helper()
		rows = map[string]int{}
		r, err := raw.Query(`SELECT type, count(*) FROM instances WHERE type >= 'v' AND type < ? GROUP BY type`, "v\x7f")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var typ string
			var n int
			if err := r.Scan(&typ, &n); err != nil {
				t.Fatal(err)
			}
			rows[typ] = n
		}
		ir, err := raw.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'instances\_v~%' ESCAPE '\'`)
		if err != nil {
			t.Fatal(err)
		}
		defer ir.Close()
		for ir.Next() {
			var n string
			if err := ir.Scan(&n); err != nil {
				t.Fatal(err)
			}
			indexes = append(indexes, n)
		}
		return rows, indexes
	}

	st := open()
	live := &engine.Processed{
		Outcome:  plait.Outcome{Command: plait.Command{ID: "c1", Type: "v", AggregateID: "live", Name: "n", CorrelationID: "c1"}, Status: plait.StatusAccepted, Owner: "u"},
		Instance: &engine.Instance{Type: "v", ID: "live", Seq: 1, State: []byte(`{"n":1}`), Owner: "u", UpdatedAt: time.Now()},
	}
	if err := st.Commit(ctx, []*engine.Processed{live}); err != nil {
		t.Fatal(err)
	}
	stageAndWrite(st, "a", "b") // stopped before the swap: never cleaned up
	st.Close()
	if rows, indexes := stored(); len(rows) != 2 || rows["v"] != 1 || len(indexes) != 1 {
		t.Fatalf("after a stop before the swap: rows by copy %v, copy indexes %v; want the live original and the staged copy with its index", rows, indexes)
	}

	st = open()
	swapped := stageAndWrite(st, "c")
	if rows, indexes := stored(); len(rows) != 2 || rows["v"] != 1 || len(indexes) != 1 {
		t.Fatalf("after staging again: rows by copy %v, copy indexes %v; want the live original and the new copy with its index", rows, indexes)
	}
	if err := swapped.Swap(ctx); err != nil { // stopped after the swap, before the replaced copy is dropped
		t.Fatal(err)
	}
	st.Close()

	st = open()
	defer st.Close()
	if in, err := st.Load(ctx, "v", "c"); err != nil || in.Seq != 1 {
		t.Fatalf("the swapped-in item after a restart: %+v (%v)", in, err)
	}
	next, err := st.StageView(ctx, "v", plait.Settings{Indexes: []string{"n"}})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Cleanup(ctx)
	rows, indexes := stored()
	if len(rows) != 1 || rows["v"] != 0 {
		t.Errorf("after staging the next copy: rows by copy %v, want only the live copy's", rows)
	}
	if len(indexes) != 2 {
		t.Errorf("copy indexes after staging the next copy: %v, want the live copy's and the new one's", indexes)
	}
	if in, err := st.Load(ctx, "v", "c"); err != nil || in.Seq != 1 {
		t.Errorf("the live item after staging: %+v (%v)", in, err)
	}
	if in, err := st.Load(ctx, "v", "live"); err != nil || in.Seq != 0 {
		t.Errorf("the replaced item after staging: %+v (%v), want none", in, err)
	}
}
