package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/postgres"
)

// writer commits instance records straight through Commit, without an
// engine: one command and one "set" event each.
type writer struct {
	st *postgres.Store
	n  atomic.Int64
}

// processed makes the command that sets typ/id to state, at seq.
func (w *writer) processed(typ, id, owner string, seq int64, state string, lineage map[string]plait.Lineage) *engine.Processed {
	cmdID := fmt.Sprintf("w%d", w.n.Add(1))
	at := time.Now().UTC()
	cmd := plait.Command{ID: cmdID, Type: typ, AggregateID: id, Name: "set", Data: json.RawMessage(state),
		CorrelationID: cmdID, User: owner, At: at}
	ev := plait.Event{ID: plait.EventID(cmdID, 0), Type: typ, AggregateID: id, Seq: seq, Name: "set",
		Data: json.RawMessage(state), CorrelationID: cmdID, CausationID: cmdID, User: owner, At: at, Lineage: lineage}
	return &engine.Processed{
		Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Events: []plait.Event{ev}, Owner: owner},
		Instance: &engine.Instance{Type: typ, ID: id, Seq: seq, State: json.RawMessage(state),
			Lineage: lineage, Owner: owner, UpdatedAt: at},
	}
}

// put sets typ/id to state, one seq past its stored record.
func (w *writer) put(t testing.TB, typ, id, owner, state string, lineage map[string]plait.Lineage) {
	t.Helper()
	ctx := context.Background()
	in, err := w.st.Load(ctx, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.Commit(ctx, []*engine.Processed{w.processed(typ, id, owner, in.Seq+1, state, lineage)}); err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}
