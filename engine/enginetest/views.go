package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// RunStagedViews runs the contract of engine.StagedViews against the stores
// newStore makes, each fresh and empty, implementing it: a copy of a view is
// written while the live one serves unchanged, Swap makes the whole copy
// live at once, each instance keeping its live seq, and Cleanup
// drops whichever copy lost. The live records are written through Commit,
// as the engine writes them.
func RunStagedViews(t *testing.T, newStore func(t *testing.T) engine.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st engine.Store)
	}{
		{"CopyIsInvisibleUntilSwapped", testCopyInvisibleUntilSwapped},
		{"WriteReplacesEarlierWritesOfTheSameIDs", testCopyWriteReplaces},
		{"CleanupWithoutSwapLeavesTheLiveView", testCopyCleanupWithoutSwap},
		{"CommitsGoOnAfterTheSwap", testCopyCommitsAfterSwap},
		{"ACopyAheadOfTheLogTakesTheLiveSeq", testCopyAheadTakesLiveSeq},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			if _, ok := st.(engine.StagedViews); !ok {
				t.Fatalf("%T does not implement engine.StagedViews", st)
			}
			tc.fn(t, st)
		})
	}
}

// viewWriter commits records straight through Commit: one "set" command and
// event each, at the instance's next seq.
type viewWriter struct {
	st engine.Store
	n  int
}

func (w *viewWriter) put(t *testing.T, typ, id, state string) {
	t.Helper()
	ctx := context.Background()
	in, err := w.st.Load(ctx, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	w.n++
	cmdID := fmt.Sprintf("put%d", w.n)
	at := time.Now().UTC().Truncate(time.Microsecond)
	seq := in.Seq + 1
	cmd := plait.Command{ID: cmdID, Type: typ, AggregateID: id, Name: "set", Data: json.RawMessage(state),
		CorrelationID: cmdID, User: "u", At: at}
	ev := plait.Event{ID: plait.EventID(cmdID, 0), Type: typ, AggregateID: id, Seq: seq, Name: "set",
		Data: json.RawMessage(state), CorrelationID: cmdID, CausationID: cmdID, User: "u", At: at}
	p := &engine.Processed{
		Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Events: []plait.Event{ev}, Owner: "u"},
		Instance: &engine.Instance{Type: typ, ID: id, Seq: seq, State: json.RawMessage(state), Owner: "u", UpdatedAt: at},
	}
	if err := w.st.Commit(ctx, []*engine.Processed{p}); err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

// record is what a test expects of a stored instance.
type record struct {
	seq   int64
	state string
}

// expect checks the view's instances, through Load and List.
func expect(t *testing.T, st engine.Store, typ string, want map[string]record) {
	t.Helper()
	ctx := context.Background()
	page, err := st.List(ctx, typ, engine.ListQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var listed, wanted []string
	for _, it := range page.Items {
		listed = append(listed, it.ID)
	}
	for id := range want {
		wanted = append(wanted, id)
	}
	sort.Strings(wanted)
	if !reflect.DeepEqual(listed, wanted) {
		t.Errorf("%s lists %v, want %v", typ, listed, wanted)
	}
	for id, w := range want {
		in, err := st.Load(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		if in.Seq != w.seq || !sameState(in.State, w.state) {
			t.Errorf("%s/%s = seq %d %s, want seq %d %s", typ, id, in.Seq, in.State, w.seq, w.state)
		}
	}
}

func sameState(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func stage(t *testing.T, st engine.Store, typ string) engine.ViewCopy {
	t.Helper()
	c, err := st.(engine.StagedViews).StageView(context.Background(), typ, plait.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Cleanup(context.Background()) })
	return c
}

func copied(id string, seq int64, state string, lineage map[string]plait.Lineage) engine.Instance {
	return engine.Instance{Type: "view", ID: id, Seq: seq, State: json.RawMessage(state), Lineage: lineage,
		Owner: "rebuild", UpdatedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

func testCopyInvisibleUntilSwapped(t *testing.T, st engine.Store) {
	ctx := context.Background()
	w := &viewWriter{st: st}
	w.put(t, "view", "a", `{"n":1}`)
	w.put(t, "view", "a", `{"n":2}`) // seq 2
	w.put(t, "view", "gone", `{"n":1}`)
	w.put(t, "other", "a", `{"n":1}`)
	live := map[string]record{"a": {2, `{"n":2}`}, "gone": {1, `{"n":1}`}}
	c := stage(t, st, "view")
	lin := map[string]plait.Lineage{"n": {Type: "src", AggregateID: "s", Seq: 9}}
	if err := c.Write(ctx, []engine.Instance{copied("a", 1, `{"n":10}`, lin), copied("new", 3, `{"n":30}`, nil)}); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", live) // the live view serves as it was
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	swapped := map[string]record{"a": {2, `{"n":10}`}, "new": {3, `{"n":30}`}}
	expect(t, st, "view", swapped)
	if in, _ := st.Load(ctx, "view", "a"); !reflect.DeepEqual(in.Lineage, lin) || in.Owner != "rebuild" {
		t.Errorf("a after the swap = %+v, want the copy's lineage and owner", in)
	}
	expect(t, st, "other", map[string]record{"a": {1, `{"n":1}`}})
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", swapped) // dropping the replaced copy leaves the live one
}

func testCopyWriteReplaces(t *testing.T, st engine.Store) {
	ctx := context.Background()
	c := stage(t, st, "view")
	for _, n := range []int{1, 2, 3} {
		if err := c.Write(ctx, []engine.Instance{copied("a", int64(n), fmt.Sprintf(`{"n":%d}`, n), nil)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", map[string]record{"a": {3, `{"n":3}`}})
}

func testCopyCleanupWithoutSwap(t *testing.T, st engine.Store) {
	ctx := context.Background()
	w := &viewWriter{st: st}
	w.put(t, "view", "a", `{"n":1}`)
	live := map[string]record{"a": {1, `{"n":1}`}}
	c := stage(t, st, "view")
	if err := c.Write(ctx, []engine.Instance{copied("a", 5, `{"n":5}`, nil), copied("b", 1, `{"n":1}`, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", live)
	// The view can be staged and swapped again after an abandoned copy.
	c = stage(t, st, "view")
	if err := c.Write(ctx, []engine.Instance{copied("b", 1, `{"n":2}`, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", map[string]record{"b": {1, `{"n":2}`}})
}

func testCopyCommitsAfterSwap(t *testing.T, st engine.Store) {
	ctx := context.Background()
	w := &viewWriter{st: st}
	for range 3 {
		w.put(t, "view", "a", `{"n":1}`) // seq 3
	}
	c := stage(t, st, "view")
	if err := c.Write(ctx, []engine.Instance{copied("a", 1, `{"n":7}`, nil), copied("b", 4, `{"n":4}`, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	// Each instance's next event follows the seq the swap kept: no
	// collision with the history, and the records move on.
	w.put(t, "view", "a", `{"n":8}`)
	w.put(t, "view", "b", `{"n":5}`)
	expect(t, st, "view", map[string]record{"a": {4, `{"n":8}`}, "b": {5, `{"n":5}`}})
	evs, err := st.Events(ctx, "view", "a", 0, 10)
	if err != nil || len(evs) != 4 || evs[3].Seq != 4 {
		t.Errorf("a's events after the swap: %d, %v", len(evs), err)
	}
}

// testCopyAheadTakesLiveSeq: a rebuild whose logic makes more events than
// the live one's folds an instance to a seq past its last event in the
// log. Swapped in, it takes the live seq, so that its next event follows
// its history with no gap.
func testCopyAheadTakesLiveSeq(t *testing.T, st engine.Store) {
	ctx := context.Background()
	w := &viewWriter{st: st}
	w.put(t, "view", "a", `{"n":1}`)
	w.put(t, "view", "a", `{"n":2}`) // seq 2
	c := stage(t, st, "view")
	if err := c.Write(ctx, []engine.Instance{copied("a", 5, `{"n":5}`, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "view", map[string]record{"a": {2, `{"n":5}`}})
	w.put(t, "view", "a", `{"n":6}`)
	evs, err := st.Events(ctx, "view", "a", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("a's events have seq %d at %d: a gap", ev.Seq, i)
		}
	}
	expect(t, st, "view", map[string]record{"a": {3, `{"n":6}`}})
}
