package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/internal/syncbuf"
	"github.com/plaithq/plait/store/sqlite"
)

type value struct {
	V int `json:"v"`
}

// source holds a value; copies is a view that a reactor keeps equal to it,
// with no guard of its own against commands that arrive out of order.
var (
	source = plait.NewAggregate[value]("source",
		plait.Handle("set", func(s value, c plait.Cmd[value]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("was", c.Data)}, nil
		}),
		plait.Apply("was", func(s value, e value) value { return e }),
	)
	copies = plait.NewAggregate[value]("copy",
		plait.AsView[value](),
		plait.Handle("put", func(s value, c plait.Cmd[value]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("put", c.Data)}, nil
		}),
		plait.Apply("put", func(s value, e value) value { return e }),
	)
	// copier is slow to react to the value 2, so that its command for 2
	// comes after the commit of its command for 1 has failed.
	copier = plait.NewReactor("copier", plait.On("source", "was", func(e plait.Evt[value]) []plait.Dispatch {
		if e.Data.V == 2 {
			time.Sleep(100 * time.Millisecond)
		}
		return []plait.Dispatch{plait.Send("copy", e.AggregateID, "put", e.Data)}
	}))
)

// failingFirstPut is the SQLite store whose first commit of a copy's put
// of 1 fails, as a write does when the disk is full for a moment.
type failingFirstPut struct {
	*sqlite.Store
	failed atomic.Bool
}

func (s *failingFirstPut) check(batch []*engine.Processed) error {
	for _, p := range batch {
		c := p.Outcome.Command
		if c.Type == "copy" && string(c.Data) == `{"v":1}` && s.failed.CompareAndSwap(false, true) {
			return errors.New("database or disk is full")
		}
	}
	return nil
}

func (s *failingFirstPut) Commit(ctx context.Context, batch []*engine.Processed) error {
	if err := s.check(batch); err != nil {
		return err
	}
	return s.Store.Commit(ctx, batch)
}

func (s *failingFirstPut) CommitUnsynced(ctx context.Context, batch []*engine.Processed) error {
	if err := s.check(batch); err != nil {
		return err
	}
	return s.Store.CommitUnsynced(ctx, batch)
}

// TestAReactorsCommandsToOneInstanceKeepTheirOrderWhenOneFails: a page of
// the feed makes the commands put 1, then put 2, for one view instance.
// The commit of put 1 fails; put 2, sent after that, must fail too rather
// than commit before put 1, which the page's retry would then apply last.
func TestAReactorsCommandsToOneInstanceKeepTheirOrderWhenOneFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSQLite(t)
	app := plait.App{Name: "copies", Aggregates: []plait.Definition{source, copies}}
	// Both source events are written first, by an engine without the
	// reactor, so that the reactor's first page holds both.
	first, err := engine.New(app, st, engine.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := enginetest.Background(t, first)
	for v := 1; v <= 2; v++ {
		cmd := plait.Command{ID: fmt.Sprintf("set%d", v), Type: "source", AggregateID: "a", Name: "set", Data: []byte(fmt.Sprintf(`{"v":%d}`, v))}
		if _, err := first.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	<-first.Done()

	app.Reactors = []*plait.Reactor{copier}
	store := &failingFirstPut{Store: st}
	e, err := engine.New(app, store, engine.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	for _, id := range []string{"set1", "set2"} {
		if err := e.WaitSettled(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if !store.failed.Load() {
		t.Fatal("no commit failed")
	}
	in, err := e.Load(ctx, "copy", "a")
	if err != nil {
		t.Fatal(err)
	}
	var got value
	if err := json.Unmarshal(in.State, &got); err != nil {
		t.Fatal(err)
	}
	if got.V != 2 {
		evs, _ := e.Events(ctx, "copy", "a", 0, 10)
		var puts []string
		for _, ev := range evs {
			puts = append(puts, string(ev.Data))
		}
		t.Fatalf("the copy holds %d, want 2, the source's last value; its events: %v", got.V, puts)
	}
}

// failingCheckpoints is the SQLite store whose first saves of a
// checkpoint fail, as a write does while the disk is full.
type failingCheckpoints struct {
	*sqlite.Store
	left atomic.Int32
}

func (s *failingCheckpoints) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	if s.left.Add(-1) >= 0 {
		return errors.New("disk full")
	}
	return s.Store.SaveCheckpoint(ctx, name, pos)
}

// TestAFailingReactorLogsItsOutageOnceAndItsEnd: a reactor retrying a
// page through a run of failures logs the run when it begins and when it
// ends, not at every retry, and its work is done once the store answers.
func TestAFailingReactorLogsItsOutageOnceAndItsEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store := &failingCheckpoints{Store: openSQLite(t)}
	store.left.Store(5)
	var logs syncbuf.Buffer
	app := plait.App{Name: "copies", Aggregates: []plait.Definition{source, copies}, Reactors: []*plait.Reactor{copier}}
	e, err := engine.New(app, store, engine.Options{Partitions: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	cmd := plait.Command{ID: "set3", Type: "source", AggregateID: "a", Name: "set", Data: []byte(`{"v":3}`)}
	if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitSettled(ctx, "set3"); err != nil {
		t.Fatal(err)
	}
	if store.left.Load() >= 0 {
		t.Fatalf("the checkpoint failed fewer than 5 times (%d left)", store.left.Load())
	}
	// The checkpoint's move settles set3; the reactor logs its recovery
	// just after.
	eventually(t, "the reactor logs its recovery", func() bool { return strings.Contains(logs.String(), "reactor recovered") })
	out := logs.String()
	if n := strings.Count(out, "reactor failed; retrying"); n != 1 {
		t.Errorf("%d lines of the failure, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "reactor recovered") || !strings.Contains(out, "attempts=5") {
		t.Errorf("the end of the outage is not logged with its 5 attempts:\n%s", out)
	}
	in, err := e.Load(ctx, "copy", "a")
	if err != nil || string(in.State) != `{"v":3}` {
		t.Fatalf("the copy is %s (%v), want {\"v\":3}", in.State, err)
	}
}
