package engine_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// writeHistory commits n "added" events of counter id straight through the
// store, as the engine would have, 1000 commands to a transaction.
func writeHistory(t *testing.T, st *sqlite.Store, id string, n int) {
	t.Helper()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seq := 1; seq <= n; {
		var batch []*engine.Processed
		for ; seq <= n && len(batch) < 1000; seq++ {
			cmdID := fmt.Sprintf("%s-%d", id, seq)
			cmd := plait.Command{ID: cmdID, Type: "counter", AggregateID: id, Name: "add", Data: json.RawMessage(`{"by":1}`),
				CorrelationID: cmdID, User: "u", At: at}
			ev := plait.Event{ID: plait.EventID(cmdID, 0), Type: "counter", AggregateID: id, Seq: int64(seq), Name: "added",
				Data: json.RawMessage(`{"by":1}`), CorrelationID: cmdID, CausationID: cmdID, User: "u", At: at}
			batch = append(batch, &engine.Processed{
				Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Events: []plait.Event{ev}, Owner: "u"},
				Instance: &engine.Instance{Type: "counter", ID: id, Seq: int64(seq), Owner: "u", UpdatedAt: at,
					State: json.RawMessage(fmt.Sprintf(`{"count":%d}`, seq))},
			})
		}
		if err := st.Commit(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func startOn(t *testing.T, app plait.App, st engine.Store) *engine.Engine {
	t.Helper()
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-e.Ready()
	return e
}

// TestReplayRebuildsTheSnapshotsFromTheLog: a materialized state that went
// wrong (here, written over behind the engine's back) is derived data: a
// replay of the type folds it again from the log, while the engine runs.
func TestReplayRebuildsTheSnapshotsFromTheLog(t *testing.T) {
	t.Run("staged", func(t *testing.T) { checkReplay(t, func(st *sqlite.Store) engine.Store { return st }) })
	// A store without copies of its own: the copy is kept in memory.
	t.Run("in memory", func(t *testing.T) { checkReplay(t, func(st *sqlite.Store) engine.Store { return plainStore{st} }) })
}

func checkReplay(t *testing.T, wrap func(*sqlite.Store) engine.Store) {
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := startOn(t, enginetest.App(), wrap(st))
	ctx := context.Background()
	for i := range 300 {
		cmd := plait.Command{ID: fmt.Sprintf("a%d", i), Type: "counter", AggregateID: fmt.Sprintf("c%d", i%7), Name: "add",
			Data: json.RawMessage(fmt.Sprintf(`{"by":%d}`, 1+i%3))}
		if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]engine.Instance{}
	for i := range 7 {
		id := fmt.Sprintf("c%d", i)
		in, err := e.Load(ctx, "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = in
	}
	// The engine's reactors write checkpoints meanwhile: wait for the lock
	// rather than fail on it.
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE instances SET state = '{"count":-1}' WHERE type = 'counter'`); err != nil {
		t.Fatal(err)
	}
	if in, _ := e.Load(ctx, "counter", "c3"); string(in.State) != `{"count":-1}` {
		t.Fatalf("the snapshot was not spoilt: %s", in.State)
	}
	p, err := e.Replay(ctx, "counter", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Events != 300 || p.Instances != 7 {
		t.Errorf("replayed %d events into %d instances, want 300 into 7", p.Events, p.Instances)
	}
	for id, w := range want {
		in, err := e.Load(ctx, "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		if in.Seq != w.Seq || string(in.State) != string(w.State) || in.Owner != w.Owner || !in.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("%s after the replay: %+v, want %+v", id, in, w)
		}
	}
	// The engine goes on from the replayed snapshots.
	if r, err := e.Submit(ctx, plait.Command{ID: "after", Type: "counter", AggregateID: "c3", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"}); err != nil || r.Outcome.Status != plait.StatusAccepted {
		t.Fatalf("submit after the replay: %+v %v", r, err)
	}
	var before struct{ Count int }
	json.Unmarshal(want["c3"].State, &before)
	in, _ := e.Load(ctx, "counter", "c3")
	if string(in.State) != fmt.Sprintf(`{"count":%d}`, before.Count+1) {
		t.Errorf("c3 after one more add: %s, want count %d", in.State, before.Count+1)
	}
	// A view folds from its own events to what the reactors made of it.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st := e.Stats(); st.Subscriptions[0].Position >= st.Head {
			break
		}
	}
	tally := tallies(t, &enginetest.Node{Engine: e})
	if _, err := e.Replay(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	again := tallies(t, &enginetest.Node{Engine: e})
	if fmt.Sprint(again) != fmt.Sprint(tally) {
		t.Errorf("tally folded: %v, want %v", again, tally)
	}
}
