package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
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

// handOverLog is a command log that hands the engine's batch handler to
// the test, which calls it with the batches it makes up. What is appended
// to it goes nowhere.
type handOverLog struct {
	handle chan func(context.Context, engine.LogBatch) error
}

func (l *handOverLog) Append(context.Context, plait.Command, *plait.User) error { return nil }
func (l *handOverLog) Consume(ctx context.Context, h func(context.Context, engine.LogBatch) error) error {
	l.handle <- h
	<-ctx.Done()
	return nil
}

// slowFiller is the store whose commits of "filler" commands take 200 ms,
// so that the batches handled meanwhile wait, and go together into the
// next group commit.
type slowFiller struct{ *postgres.Store }

func (s slowFiller) CommitWithOffsets(ctx context.Context, batch []*engine.Processed, offsets []engine.Offset) error {
	for _, p := range batch {
		if strings.HasPrefix(p.Outcome.Command.ID, "filler") {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return s.Store.CommitWithOffsets(ctx, batch, offsets)
}

// TestOneCommandIDInTwoPartitionsCommitsOnce: a client sends one command id
// to two aggregates, whose partitions decide it at once and would commit
// it in one group. Before, the group failed with both in it, every time
// the two were decided again; now one commits, and the other loses its
// race to it, to find it done when decided again.
func TestOneCommandIDInTwoPartitionsCommitsOnce(t *testing.T) {
	st, _ := open(t)
	l := &handOverLog{handle: make(chan func(context.Context, engine.LogBatch) error, 1)}
	// Counters alone: a reactor's commands would go to this log, which
	// drops them, and their outcomes would never come.
	app := plait.App{Name: "counters", Aggregates: []plait.Definition{enginetest.CounterType}}
	startEngine(t, app, slowFiller{st}, engine.Options{CommandLog: l, Partitions: 4})
	handle := <-l.handle
	ctx := context.Background()
	cmd := func(id, agg string) plait.Command {
		return plait.Command{ID: id, Type: "counter", AggregateID: agg, Name: "add", Data: json.RawMessage(`{"by":1}`),
			CorrelationID: id, User: "u", At: time.Now().UTC().Truncate(time.Microsecond)}
	}
	batch := func(p int32, c plait.Command) engine.LogBatch {
		return engine.LogBatch{Commands: []plait.Command{c}, Senders: []*plait.User{nil}, Offset: engine.Offset{Topic: "commands", Partition: p, Next: 1}}
	}
	var wg sync.WaitGroup
	var filled atomic.Bool
	wg.Go(func() { filled.Store(handle(ctx, batch(0, cmd("filler", "f"))) == nil) })
	time.Sleep(50 * time.Millisecond) // the filler's commit runs
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = handle(ctx, batch(int32(i+1), cmd("dup", []string{"k0", "k1"}[i]))) })
	}
	wg.Wait()
	if !filled.Load() {
		t.Fatal("the filler's batch failed")
	}
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, engine.ErrLostRace):
			t.Errorf("the other batch: %v, want a lost race", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of the two batches committed (%v), want 1", won, errs)
	}
	out, ok, err := st.Outcome(ctx, "dup")
	if err != nil || !ok || out.Status != plait.StatusAccepted {
		t.Fatalf("the outcome of dup: %+v %v %v", out, ok, err)
	}
}
