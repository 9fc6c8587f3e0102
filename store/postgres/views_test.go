package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
)

// TestStagedViews runs the staged copies' contract, shared with the
// embedded store.
func TestStagedViews(t *testing.T) {
	enginetest.RunStagedViews(t, func(t *testing.T) engine.Store {
		st, _ := open(t)
		return st
	})
}

// copyRows counts the rows of every staged copy of typ.
func copyRows(t *testing.T, st *postgres.Store, typ string) int {
	t.Helper()
	var n int
	err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{st.Schema(), "instances"}.Sanitize()+
		` WHERE type LIKE $1`, typ+"~%").Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func viewInstance(id string, seq int64, state string) engine.Instance {
	return engine.Instance{Type: "view", ID: id, Seq: seq, State: json.RawMessage(state), Owner: "u", UpdatedAt: time.Now()}
}

// One copy of a view is staged at a time among every process sharing the
// schema; the copy a crashed process left behind is dropped by the next.
func TestOneCopyOfAViewAtATime(t *testing.T) {
	a, url := open(t)
	ctx := context.Background()
	// b's sessions carry a name of their own, so that its crash ends them
	// and no other test's.
	name := "plait_crashed_" + a.Schema()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	b, err := postgres.Open(ctx, url+sep+"application_name="+name, postgres.Options{Schema: a.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cb, err := b.StageView(ctx, "view", plait.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Cleanup(ctx) // gives its connection back, so that b closes
	if err := cb.Write(ctx, []engine.Instance{viewInstance("x", 1, `{}`), viewInstance("y", 1, `{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StageView(ctx, "view", plait.Settings{}); !errors.Is(err, postgres.ErrCopyStaged) {
		t.Fatalf("a second copy of the view staged: %v", err)
	}
	other, err := a.StageView(ctx, "other", plait.Settings{}) // another view is not held up
	if err != nil {
		t.Fatal(err)
	}
	other.Cleanup(ctx)

	// b crashes: its session ends, and its copy stays behind.
	if _, err := a.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
		WHERE application_name = $1`, name); err != nil {
		t.Fatal(err)
	}
	if n := copyRows(t, a, "view"); n != 2 {
		t.Fatalf("%d rows of the crashed copy, want 2", n)
	}
	ca, err := a.StageView(ctx, "view", plait.Settings{})
	if err != nil {
		t.Fatalf("stage after the holder crashed: %v", err)
	}
	if n := copyRows(t, a, "view"); n != 0 {
		t.Errorf("%d rows of the crashed copy left once another is staged", n)
	}
	if err := ca.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
}

// The swap sets each instance's seq to the live one's as it is at the
// swap, whatever was committed after the copy was written.
func TestSwapKeepsSeqsCommittedAfterTheCopyWasWritten(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	w.put(t, "view", "a", "u", `{"n":1}`, nil)
	c, err := st.StageView(ctx, "view", plait.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cleanup(ctx)
	if err := c.Write(ctx, []engine.Instance{viewInstance("a", 1, `{"n":9}`)}); err != nil {
		t.Fatal(err)
	}
	w.put(t, "view", "a", "u", `{"n":2}`, nil) // seq 2, after the copy's write
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	if in, _ := st.Load(ctx, "view", "a"); in.Seq != 2 || !sameJSON(in.State, []byte(`{"n":9}`)) {
		t.Fatalf("a = seq %d %s, want the copy's state at seq 2", in.Seq, in.State)
	}
	w.put(t, "view", "a", "u", `{"n":3}`, nil) // its next event, seq 3, commits
	if err := c.Write(ctx, nil); err == nil {
		t.Error("a swapped copy took a write")
	}
}
