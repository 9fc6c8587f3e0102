//go:build unix

package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// flakyStore fails some commits, and slows every commit down so that the
// partitions have batches queued behind the one that fails.
type flakyStore struct {
	*sqlite.Store
	commits atomic.Int64
	failed  atomic.Int64
	failAt  func(n int64) bool
}

var errInjected = errors.New("injected commit failure")

func (s *flakyStore) Commit(ctx context.Context, batch []*engine.Processed) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Commit(ctx, batch)
}

// CommitUnsynced fails as Commit does: the engine writes through it.
func (s *flakyStore) CommitUnsynced(ctx context.Context, batch []*engine.Processed) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.CommitUnsynced(ctx, batch)
}

func (s *flakyStore) fail() error {
	n := s.commits.Add(1)
	time.Sleep(time.Millisecond)
	if s.failAt(n) {
		s.failed.Add(1)
		return errInjected
	}
	return nil
}

// unsyncableStore writes every batch but fails its second sync.
type unsyncableStore struct {
	*sqlite.Store
	syncs, failed atomic.Int64
}

func (s *unsyncableStore) Sync(ctx context.Context) error {
	time.Sleep(time.Millisecond)
	if s.syncs.Add(1) == 2 {
		s.failed.Add(1)
		return errInjected
	}
	return s.Store.Sync(ctx)
}

// A failed sync stops the engine: the batches it covered, and those written
// after it, are refused, and nothing more is taken. Restarted on the file,
// the engine gives each refused command, resubmitted, an outcome (the one
// recorded, or a new one), and everything acknowledged is there exactly
// once.
func TestAFailedSyncStopsTheEngineAndARestartRecovers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "unsyncable.db")
	inner, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &unsyncableStore{Store: inner}
	e, err := engine.New(enginetest.App(), st, engine.Options{Partitions: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()

	var mu sync.Mutex
	acked := map[string]string{}
	var refused []plait.Command
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				cmd := crashCommand(fmt.Sprintf("w%d-%d", w, i))
				cmd.AggregateID = fmt.Sprintf("hot%d", (w+i)%4)
				r, err := e.Submit(ctx, cmd, crashUser)
				mu.Lock()
				switch {
				case err == nil:
					acked[cmd.ID] = outcomeSummary(*r.Outcome)
				case errors.Is(err, errInjected) || errors.Is(err, plait.ErrStopped) ||
					strings.Contains(err.Error(), "an earlier batch of the same partition failed"):
					refused = append(refused, cmd)
				default:
					t.Errorf("submit %s: %v", cmd.ID, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := <-done; !errors.Is(err, errInjected) {
		t.Fatalf("Run returned %v, want the failed sync's error", err)
	}
	if st.failed.Load() == 0 || len(refused) == 0 {
		t.Fatalf("%d syncs failed, %d commands refused: the test tested nothing", st.failed.Load(), len(refused))
	}
	inner.Close()

	// Restarted, the engine gives every refused command its outcome.
	inner, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err = engine.New(enginetest.App(), inner, engine.Options{Partitions: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()
	for _, cmd := range refused {
		r, err := e.Submit(ctx, cmd, crashUser)
		if err != nil {
			t.Fatalf("resubmit %s: %v", cmd.ID, err)
		}
		acked[cmd.ID] = outcomeSummary(*r.Outcome)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	inner.Close()
	t.Logf("%d acknowledged in the end, %d refused at first", len(acked), len(refused))
	checkCrashInvariants(t, path, acked)
}

// A partition decides its next batches while a commit runs. When that
// commit fails, the batches decided on top of it must fail too, and what
// comes next must be decided on what the store holds: no acknowledged
// command is lost, every seq stays gap-free, every state is the fold of its
// events.
func TestFailedCommitFailsTheBatchesDecidedOnTopOfIt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flaky.db")
	inner, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	st := &flakyStore{Store: inner, failAt: func(n int64) bool { return n%7 == 3 }}
	e, err := engine.New(enginetest.App(), st, engine.Options{Partitions: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()

	var mu sync.Mutex
	acked := map[string]string{}
	var refused, stale int
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				cmd := crashCommand(fmt.Sprintf("w%d-%d", w, i))
				cmd.AggregateID = fmt.Sprintf("hot%d", (w+i)%4) // few instances: batches build on each other
				r, err := e.Submit(ctx, cmd, crashUser)
				mu.Lock()
				switch {
				case err == nil:
					acked[cmd.ID] = outcomeSummary(*r.Outcome)
				case errors.Is(err, errInjected):
					refused++
				case strings.Contains(err.Error(), "an earlier batch of the same partition failed"):
					stale++
				default:
					t.Errorf("submit %s: %v", cmd.ID, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	inner.Close()
	t.Logf("%d commits, %d failed; %d acknowledged, %d refused by a failed commit, %d refused as decided on top of one",
		st.commits.Load(), st.failed.Load(), len(acked), refused, stale)
	if st.failed.Load() == 0 || refused == 0 {
		t.Fatal("no commit failed: the test tested nothing")
	}
	if stale == 0 {
		t.Error("no batch was refused for having been decided on top of a failed one: the pipeline never had a batch queued behind a failing commit")
	}
	checkCrashInvariants(t, path, acked)
}

// heldSyncStore holds every Sync until release is closed.
type heldSyncStore struct {
	*sqlite.Store
	release chan struct{}
}

func (s *heldSyncStore) Sync(ctx context.Context) error {
	<-s.release
	return s.Store.Sync(ctx)
}

// TestFeedReadFromTheStoreStopsAtWhatIsPublished: a reader behind the
// engine's ring of recent items reads the feed from the store, which
// already holds batches written but not yet synced. It must not get them
// before they are published: they are not acknowledged yet, and a client
// resuming from one would be told it is beyond the head.
func TestFeedReadFromTheStoreStopsAtWhatIsPublished(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "held.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	st := &heldSyncStore{Store: inner, release: make(chan struct{})}
	// The counter type alone: no reactor sends commands of its own.
	app := plait.App{Name: "held", Aggregates: []plait.Definition{enginetest.CounterType}}
	e, err := engine.New(app, st, engine.Options{TailSize: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()
	defer func() { stop(); <-done }()

	add := func(id string) plait.Command {
		return plait.Command{ID: id, Type: "counter", AggregateID: "n" + id, Name: "add", Data: []byte(`{"by":1}`)}
	}
	// Alone, each command is committed and synced in one step, past the
	// held Sync: ten of them fill the ring many times over.
	for i := range 10 {
		if _, err := e.Submit(ctx, add(fmt.Sprintf("a%d", i)), crashUser); err != nil {
			t.Fatal(err)
		}
	}
	// Together, they are written and wait for the held Sync.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := e.Submit(ctx, add(fmt.Sprintf("b%d", i)), crashUser); err != nil {
				t.Errorf("submit: %v", err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		stored, err := inner.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored > e.Head() {
			break
		}
		if time.Now().After(deadline) {
			close(st.release)
			t.Fatalf("nothing written beyond the published head %d: the test tested nothing", e.Head())
		}
		time.Sleep(time.Millisecond)
	}
	published := e.Head()
	items, err := e.ReadFeed(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(items); n == 0 || items[n-1].Position != published {
		last := int64(0)
		if n > 0 {
			last = items[n-1].Position
		}
		t.Errorf("a read from the store behind the ring ended at position %d, want the published head %d", last, published)
	}
	close(st.release)
	wg.Wait()
	if items, err = e.ReadFeed(ctx, 0, 1000); err != nil || len(items) == 0 || items[len(items)-1].Position != e.Head() {
		t.Fatalf("after the sync, the feed reads %d items (%v), want up to the head %d", len(items), err, e.Head())
	}
}

// TestStatsWhileTheEngineStarts: Stats may be asked for (a metrics scrape)
// while Run starts; under -race this is the check that it reads nothing
// Run is still setting up.
func TestStatsWhileTheEngineStarts(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "stats.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	app := plait.App{Name: "stats", Aggregates: []plait.Definition{enginetest.CounterType}}
	e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			e.Stats()
			select {
			case <-e.Ready():
				return
			default:
			}
		}
	}()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	<-scraped
	if _, err := e.Submit(ctx, plait.Command{Type: "counter", AggregateID: "n1", Name: "add", Data: []byte(`{"by":1}`)}, crashUser); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Head != 2 || s.Committed != 1 {
		t.Errorf("stats after one command: head %d, %d committed; want 2 and 1", s.Head, s.Committed)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
