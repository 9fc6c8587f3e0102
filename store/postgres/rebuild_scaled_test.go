package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
)

// runScaled runs an instance of app scaled out over st: the commands
// through a command log of its own, its offsets committed with st.
func runScaled(t *testing.T, app plait.App, st engine.Store, topic string) *engine.Engine {
	t.Helper()
	pg := st.(interface {
		Offset(ctx context.Context, topic string, partition int32) (int64, error)
	})
	return startEngine(t, app, st, engine.Options{CommandLog: enginetest.NewMemLog(topic, 4, pg.Offset), Partitions: 4})
}

// A view rebuilt scaled out, while two instances of the application take
// commands and react to them, each deciding the view's commands on its own
// partitions: every counter's tally counts every add exactly once, and the
// view answers list queries while the copy is written and while the swap
// holds the view's commits up.
func TestRebuildScaledOutWhileTwoInstancesServe(t *testing.T) {
	base, url := open(t)
	other, err := postgres.Open(context.Background(), url, postgres.Options{Schema: base.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	st := &spied{Store: base}
	a := runScaled(t, enginetest.App(), st, "commands.a")
	b := runScaled(t, enginetest.App(), other, "commands.b")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var corrs []string
	for i, e := range []*engine.Engine{a, b} {
		corrs = append(corrs, addAll(t, e, fmt.Sprintf("pre%d.", i), 500, 20))
	}
	for i, c := range corrs {
		if err := []*engine.Engine{a, b}[i].WaitSettled(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	var writes, swaps atomic.Int64
	st.beforeWrite = awaitList(ctx, t, b, "while the copy was written", &writes)
	st.beforeSwap = awaitList(ctx, t, b, "within the swap's fence", &swaps)

	// Both instances take commands during the rebuild. Their partitions
	// decide them in any order: each one's reactions are awaited.
	var writing sync.WaitGroup
	ids := make([][]string, 2)
	for i, e := range []*engine.Engine{a, b} {
		writing.Go(func() {
			for j := range 300 {
				r, err := e.Submit(ctx, plait.Command{ID: fmt.Sprintf("during%d.%d", i, j), Type: "counter",
					AggregateID: fmt.Sprintf("c%d", j%25), Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = append(ids[i], r.Command.CorrelationID)
			}
		})
	}
	var reports []engine.Progress
	p, err := a.Rebuild(ctx, "tally", func(p engine.Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	writing.Wait()
	for i, corrs := range ids {
		for _, c := range corrs { // on the instance that took the command, which knows it is pending
			if err := []*engine.Engine{a, b}[i].WaitSettled(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p.Phase != "done" || p.Events == 0 || len(reports) < 2 || writes.Load() == 0 || swaps.Load() != 1 {
		t.Fatalf("progress %+v, %d reports, %d writes and %d swaps of the copy", p, len(reports), writes.Load(), swaps.Load())
	}
	checkTalliesMatchCounters(ctx, t, b, base)
}

// A commit decided on a view's records from before a swap fails, whether
// it comes after the swap or during it (it waits for the swap first); one
// decided on the current generation commits.
func TestFencedCommitsFailAcrossASwap(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	w.put(t, "view", "a", "u", `{"n":1}`, nil)
	gens, err := st.ViewGenerations(ctx, []string{"view"})
	if err != nil || gens["view"] != 0 {
		t.Fatalf("generations %v, %v", gens, err)
	}
	swap := func(during func()) {
		c, err := st.StageView(ctx, "view", plait.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Cleanup(ctx)
		err = c.(engine.FencedCopy).SwapFenced(ctx, func(ctx context.Context, write func([]engine.Instance) error) error {
			during()
			return write([]engine.Instance{viewInstance("a", 1, `{"n":9}`)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Decided on seq 1 at generation 0; committed during the swap.
	stale := make(chan error, 1)
	swap(func() {
		go func() {
			stale <- st.CommitFenced(ctx, []*engine.Processed{w.processed("view", "a", "u", 2, `{"n":2}`, nil)}, nil, map[string]int64{"view": 0})
		}()
	})
	if err := <-stale; !errors.Is(err, postgres.ErrConflict) {
		t.Fatalf("a commit decided before the swap, committed during it: %v", err)
	}
	// And after it.
	if err := st.CommitFenced(ctx, []*engine.Processed{w.processed("view", "a", "u", 2, `{"n":2}`, nil)}, nil, map[string]int64{"view": 0}); !errors.Is(err, postgres.ErrConflict) {
		t.Fatalf("a commit decided before the swap, committed after it: %v", err)
	}
	if in, _ := st.Load(ctx, "view", "a"); in.Seq != 1 || !sameJSON(in.State, []byte(`{"n":9}`)) {
		t.Fatalf("a = seq %d %s, want the copy's", in.Seq, in.State)
	}
	if err := st.CommitFenced(ctx, []*engine.Processed{w.processed("view", "a", "u", 2, `{"n":10}`, nil)}, nil, map[string]int64{"view": 1}); err != nil {
		t.Fatalf("a commit decided on the swapped records: %v", err)
	}
}

// A view whose reactors react to another application's events is not
// rebuilt scaled out: those events are in the other application's log.
func TestRebuildScaledOutRefusesAnotherApplicationsEvents(t *testing.T) {
	st, _ := open(t)
	app := enginetest.App()
	app.Aggregates = []plait.Definition{enginetest.TallyType}
	e := runScaled(t, app, st, "commands")
	_, err := e.Rebuild(context.Background(), "tally", nil)
	if err == nil || !strings.Contains(err.Error(), "another application") {
		t.Fatalf("rebuild over another application's events: %v", err)
	}
}

// TestARebuildsDroppedItemGoesOnFromItsLastSeqScaledOut: scaled out as
// embedded, a view item a rebuild's new logic leaves out, made again,
// goes on from its last seq in the log rather than taking seq 1 again,
// which the log has: its reactor goes on.
func TestARebuildsDroppedItemGoesOnFromItsLastSeqScaledOut(t *testing.T) {
	st, _ := open(t)
	var dropSmall atomic.Bool
	e := runScaled(t, enginetest.DroppingApp(&dropSmall), st, "commands.drop")
	enginetest.CheckARebuildsDroppedItemGoesOn(t, e, &dropSmall)
}
