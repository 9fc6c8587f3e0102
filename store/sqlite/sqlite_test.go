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

func TestContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) enginetest.Opener {
		path := filepath.Join(t.TempDir(), "plait.db")
		return func(t *testing.T) engine.Store {
			st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}

func TestKnownCommands(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC()
	var batch []*engine.Processed
	for _, id := range []string{"a", "b"} {
		batch = append(batch, &engine.Processed{Outcome: plait.Outcome{
			Command: plait.Command{ID: id, Type: "counter", AggregateID: "x", Name: "add", CorrelationID: id, At: at},
			Status:  plait.StatusRejected, Errors: []plait.FieldError{{Path: "by", Code: plait.CodeInvalid}},
		}})
	}
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	known, err := st.KnownCommands(ctx, []string{"a", "c", "b", "b", `"quoted"`})
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != 2 || !known["a"] || !known["b"] {
		t.Fatalf("known = %v, want a and b", known)
	}
	if known, err := st.KnownCommands(ctx, nil); err != nil || len(known) != 0 {
		t.Fatalf("no ids: %v %v", known, err)
	}
	// Past one IN list: 100 ids, "b" among the last.
	var many []string
	for i := 0; i < 99; i++ {
		many = append(many, fmt.Sprintf("n%d", i))
	}
	many = append(many, "b")
	if known, err := st.KnownCommands(ctx, many); err != nil || len(known) != 1 || !known["b"] {
		t.Fatalf("100 ids: %v %v", known, err)
	}
}
