package engine_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// failingSync is the SQLite store with a Sync that fails once fail is set,
// as an fsync does when the disk reports an error.
type failingSync struct {
	*sqlite.Store
	fail *atomic.Bool
}

var errDisk = errors.New("input/output error")

func (s failingSync) Sync(ctx context.Context) error {
	if s.fail.Load() {
		return errDisk
	}
	return s.Store.Sync(ctx)
}

// TestAFailedSyncStopsTheEngine: the group commit writes a batch, then
// syncs it while it writes the next. When a sync fails, what it covered
// may be lost, and so may everything written after it. None of it may be
// acknowledged or published, and the engine stops with the error.
func TestAFailedSyncStopsTheEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the engine stops: cleanups run last first
	var fail atomic.Bool
	e, err := engine.New(enginetest.App(), failingSync{st, &fail}, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := enginetest.Background(t, e)

	var mu sync.Mutex
	acked := map[string]bool{}
	send := func(round, n int) (failures int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := plait.Command{ID: fmt.Sprintf("r%d-%d", round, i), Type: "counter", AggregateID: fmt.Sprintf("k%d", i%10), Name: "add", Data: []byte(`{"by":1}`)}
				_, err := e.Submit(ctx, cmd, plait.User{ID: "u"})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					acked[cmd.ID] = true
				} else {
					failures++
				}
			}()
		}
		wg.Wait()
		return failures
	}
	if f := send(0, 50); f != 0 {
		t.Fatalf("%d of 50 commands failed before any sync did", f)
	}
	fail.Store(true)
	for round := 1; round <= 20 && e.Stats().CommitErrors == 0; round++ {
		send(round, 50)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errDisk) {
			t.Fatalf("Run returned %v, want the sync's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the engine runs on after a failed sync")
	}
	if _, err := e.Submit(ctx, plait.Command{ID: "late", Type: "counter", AggregateID: "k1", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"}); err == nil {
		t.Fatal("a command was taken after the engine stopped")
	}
	// Nothing that was not acknowledged was published.
	items, err := e.ReadFeed(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Outcome != nil && it.Outcome.Command.Type == "counter" && !acked[it.Outcome.Command.ID] {
			t.Fatalf("the outcome of %s, which failed to sync, was published", it.Outcome.Command.ID)
		}
	}
}

// TestAFailedSyncStopsTheEngineWhileAReactorIdles: the engine stops on a
// failed sync even when its reactor has nothing to do (the commands are
// all rejected, so no event reaches it) and waits for the feed to move,
// which it never will.
func TestAFailedSyncStopsTheEngineWhileAReactorIdles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var fail atomic.Bool
	e, err := engine.New(enginetest.App(), failingSync{st, &fail}, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.App().Reactors) == 0 {
		t.Fatal("the test application has no reactor")
	}
	done, _ := enginetest.Background(t, e)
	fail.Store(true)
	for round := 0; round < 20 && e.Stats().CommitErrors == 0; round++ {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// by 0 is rejected: no event.
				e.Submit(ctx, plait.Command{ID: fmt.Sprintf("r%d-%d", round, i), Type: "counter", AggregateID: fmt.Sprintf("k%d", i%10), Name: "add", Data: []byte(`{"by":0}`)}, plait.User{ID: "u"})
			}()
		}
		wg.Wait()
	}
	if e.Stats().CommitErrors == 0 {
		t.Fatal("no sync failed")
	}
	select {
	case err := <-done:
		if !errors.Is(err, errDisk) {
			t.Fatalf("Run returned %v, want the sync's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sync failed but Run does not return: the idle reactor holds it")
	}
}
