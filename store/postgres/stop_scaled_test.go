package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// failingLog is a command log whose consumer fails on the first batch that
// holds a command of type failOn, before deciding it.
type failingLog struct {
	*enginetest.MemLog
	failOn string
}

var errConsumerDied = errors.New("the consumer died")

func (l failingLog) Consume(ctx context.Context, handle func(context.Context, engine.LogBatch) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var failed error
	err := l.MemLog.Consume(ctx, func(ctx context.Context, b engine.LogBatch) error {
		for _, cmd := range b.Commands {
			if cmd.Type == l.failOn {
				once.Do(func() { failed = errConsumerDied; cancel() })
				return errConsumerDied
			}
		}
		return handle(ctx, b)
	})
	if failed != nil {
		return failed
	}
	return err
}

// TestRunEndsWhenTheConsumerFailsUnderAWaitingReactor: scaled out, a
// reactor awaits the outcomes of the commands it sent, which only the
// command log's consumer produces. When the consumer fails, Run must still
// return its error, rather than wait for the reactor forever.
func TestRunEndsWhenTheConsumerFailsUnderAWaitingReactor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := pgtest.URL(t)
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: pgtest.FreshSchema(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	// After the engine stops: cleanups run last first.
	t.Cleanup(func() { st.Close() })
	log := failingLog{enginetest.NewMemLog("commands", 2, st.Offset), "tally"} // the reactor's view
	e, err := engine.New(enginetest.App(), st, engine.Options{CommandLog: log, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := enginetest.Background(t, e)

	add := plait.Command{ID: "c1", Type: "counter", AggregateID: "k1", Name: "add", Data: []byte(`{"by":1}`)}
	rc, err := e.Submit(ctx, add, plait.User{ID: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.Await(ctx, rc.Command.ID); err != nil || out.Status != plait.StatusAccepted {
		t.Fatalf("the add: %+v %v", out, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errConsumerDied) {
			t.Fatalf("Run returned %v, want the consumer's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its consumer failed: a reactor still waits for an outcome")
	}
}
