package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
)

// note is an aggregate whose title lists sort on.
type note struct {
	Title string `json:"title"`
}

// A command that would leave more in an indexed field than PostgreSQL
// takes in an index entry is rejected too_large, and changes nothing;
// the instance's next command commits. Without the engine's check, the
// index refuses the entry and the whole commit fails with it.
func TestAnOversizedIndexedFieldIsRejectedNotFailed(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	notes := plait.NewAggregate[note]("note",
		plait.Handle("write", func(s note, c plait.Cmd[note]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Apply("written", func(s note, e note) note { return e }),
		plait.Indexed[note]("title"),
	)
	app := plait.App{Name: "notes", Aggregates: []plait.Definition{notes}}
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	write := func(id string, n int) plait.Outcome {
		t.Helper()
		data, _ := json.Marshal(note{Title: noise(n)})
		rec, err := e.Submit(ctx, plait.Command{ID: id, Type: "note", AggregateID: "n1", Name: "write", Data: data}, plait.User{ID: "u"})
		if err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
		return *rec.Outcome
	}
	if out := write("big", 3000); out.Status != plait.StatusRejected || len(out.Errors) != 1 ||
		out.Errors[0].Code != plait.CodeTooLarge || out.Errors[0].Path != "title" {
		t.Fatalf("a title of 3000 bytes: %s %+v, want rejected, too_large at title", out.Status, out.Errors)
	}
	if out := write("fits", engine.MaxIndexedValue-2); out.Status != plait.StatusAccepted { // its quotes make it MaxIndexedValue bytes
		t.Fatalf("a title of %d bytes: %s %+v", engine.MaxIndexedValue-2, out.Status, out.Errors)
	}
	if in, err := st.Load(ctx, "note", "n1"); err != nil || in.Seq != 1 {
		t.Fatalf("n1 at seq %d (%v), want 1", in.Seq, err)
	}
}

// noise is n letters that do not compress, as PostgreSQL compresses an
// index entry before it measures it.
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}
