package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

type doc struct {
	Text string `json:"text"`
}

// TestScaledOutAccessHoldsWhenACommandIsDecided: scaled out, a command is
// checked against the access rules when it is taken, but the instance may
// be made by another user before it is decided (another instance took the
// creating command). It is checked again when decided, by the sender the
// log keeps with it: refused, it gets its one outcome, a rejection that is
// its sender's and changes nothing.
func TestScaledOutAccessHoldsWhenACommandIsDecided(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.URL(t)
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: pgtest.FreshSchema(t, url)}) // closed by the node
	if err != nil {
		t.Fatal(err)
	}
	app := plait.App{Name: "docs", Aggregates: []plait.Definition{plait.NewAggregate("doc",
		plait.WithAccess[doc](plait.Access{OwnerOnly: true, SeeAllRoles: []string{"admin"}}),
		plait.Handle("write", func(_ doc, c plait.Cmd[doc]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Apply("written", func(_ doc, e doc) doc { return e }),
	)}}
	log := enginetest.NewMemLog("commands", 2, st.Offset)
	e := enginetest.StartAppWith(t, func(*testing.T) engine.Store { return st }, app, func(engine.Store, plait.App) engine.Options {
		return engine.Options{CommandLog: log, Partitions: 2}
	}).Engine

	write := func(id, text string) plait.Command {
		data, _ := json.Marshal(doc{Text: text})
		return plait.Command{ID: id, Type: "doc", AggregateID: "d1", Name: "write", Data: data, CorrelationID: id}
	}
	outcome := func(id string) plait.Outcome { // as the store has it, once decided
		t.Helper()
		for ctx.Err() == nil {
			out, ok, err := st.Outcome(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return out
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no outcome for %s", id)
		return plait.Outcome{}
	}
	ann, bob, root := plait.User{ID: "ann"}, plait.User{ID: "bob"}, plait.User{ID: "root", Roles: []string{"admin"}}
	if _, err := e.Submit(ctx, write("a1", "ann's"), ann); err != nil {
		t.Fatal(err)
	}
	if out := outcome("a1"); out.Status != plait.StatusAccepted {
		t.Fatalf("ann's write: %+v", out)
	}

	// bob's command passed the check when it was taken, before ann's doc
	// was there: it is in the log.
	bobs := write("b1", "bob's now")
	bobs.User = bob.ID
	if err := log.Append(ctx, bobs, &bob); err != nil {
		t.Fatal(err)
	}
	out := outcome("b1")
	if out.Status != plait.StatusRejected || len(out.Errors) != 1 || out.Errors[0].Code != plait.CodeForbidden || out.Owner != bob.ID {
		t.Fatalf("bob's write on ann's doc: %+v, want a rejection, forbidden, bob's", out)
	}
	// A user who may see every doc may act on it.
	if err := log.Append(ctx, write("r1", "root's"), &root); err != nil {
		t.Fatal(err)
	}
	if out := outcome("r1"); out.Status != plait.StatusAccepted {
		t.Fatalf("root's write: %+v", out)
	}
	// The engine's own commands (a reactor's) have no sender: no rule.
	if err := log.Append(ctx, write("e1", "the engine's"), nil); err != nil {
		t.Fatal(err)
	}
	if out := outcome("e1"); out.Status != plait.StatusAccepted {
		t.Fatalf("the engine's write: %+v", out)
	}
	in, err := st.Load(ctx, "doc", "d1")
	if err != nil || in.Seq != 3 || in.Owner != ann.ID {
		t.Fatalf("the doc: %+v %v, want ann's at seq 3", in, err)
	}
	// Taken now, bob's command is refused at once, and nothing is stored.
	if _, err := e.Submit(ctx, write("b2", "again"), bob); !errors.Is(err, plait.ErrForbidden) {
		t.Fatalf("bob's submit: %v, want ErrForbidden", err)
	}
}
