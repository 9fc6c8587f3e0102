package engine_test

import (
	"context"
	"encoding/json"
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

// failingSync is the SQLite store with a Sync that fails once fail is set,
// as an fsync does when the disk reports an error.
type failingSync struct {
	*sqlite.Store
	fail *atomic.Bool
}

var errDisk = errors.New("input/output error")

// newFailingSync makes an engine of the test application over a SQLite
// store whose syncs fail once the returned flag is set.
func newFailingSync(t *testing.T) (*engine.Engine, *atomic.Bool) {
	t.Helper()
	fail := new(atomic.Bool)
	e, err := engine.New(enginetest.App(), failingSync{openSQLite(t), fail}, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	return e, fail
}

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
	e, fail := newFailingSync(t)
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

// TestACommandWhoseSyncFailedIsNeverAnsweredAsDone: a group written but
// not synced is visible to reads. When its sync fails, its commands fail,
// and neither the same id sent again (a client retrying after the error)
// nor a wait for it may answer with the outcome the failed group wrote.
func TestACommandWhoseSyncFailedIsNeverAnsweredAsDone(t *testing.T) {
	for trial := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e, fail := newFailingSync(t)
		done, _ := enginetest.Background(t, e)
		// One command synced before the failure is answered after it.
		if _, err := e.Submit(ctx, plait.Command{ID: "durable", Type: "counter", AggregateID: "d", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
		fail.Store(true)
		var mu sync.Mutex
		failed := map[string]bool{}
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 100 {
					id := fmt.Sprintf("c%d", (g+k)%20)
					cmd := plait.Command{ID: id, Type: "counter", AggregateID: fmt.Sprintf("k%d", k%10), Name: "add", Data: []byte(`{"by":1}`)}
					r, err := e.Submit(ctx, cmd, plait.User{ID: "u"})
					mu.Lock()
					if errors.Is(err, errDisk) {
						failed[id] = true
					} else if err == nil && failed[id] && r.Duplicate {
						t.Errorf("trial %d: %s failed to sync, then was answered as a duplicate, %s", trial, id, r.Outcome.Status)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := <-done; !errors.Is(err, errDisk) {
			t.Fatalf("Run returned %v, want the sync's error", err)
		}
		for id := range failed {
			if out, err := e.Await(ctx, id); err == nil {
				t.Errorf("trial %d: %s failed to sync, and Await answers %s", trial, id, out.Status)
			}
		}
		if out, err := e.Await(ctx, "durable"); err != nil || out.Status != plait.StatusAccepted {
			t.Errorf("trial %d: the command synced before the failure: %+v, %v", trial, out.Status, err)
		}
		if t.Failed() {
			return
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
	e, fail := newFailingSync(t)
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

// openSQLite opens a store in a fresh directory, closed when the test ends
// (after its engine stops: cleanups run last first).
func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// heldSync is the SQLite store with every Sync held until release is
// closed, and then failed if fail is set.
type heldSync struct {
	*sqlite.Store
	release chan struct{}
	fail    *atomic.Bool
}

func (s heldSync) Sync(ctx context.Context) error {
	<-s.release
	if s.fail.Load() {
		return errDisk
	}
	return s.Store.Sync(ctx)
}

// holdSyncs returns st with its syncs held until let is called, at the
// test's end at the latest; then they fail if fail is set.
func holdSyncs(t *testing.T, st *sqlite.Store, fail *atomic.Bool) (held heldSync, let func()) {
	release := make(chan struct{})
	var once sync.Once
	let = func() { once.Do(func() { close(release) }) }
	t.Cleanup(let)
	return heldSync{st, release, fail}, let
}

// eventually fails the test unless cond holds within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s, not yet: %s", what)
		}
	}
}

// awaitWritten returns once the store's head stands still for 100 ms: the
// groups the commands sent so far make are written, and with the syncs
// held, wait for them.
func awaitWritten(t *testing.T, st *sqlite.Store) {
	t.Helper()
	for last := int64(-1); ; time.Sleep(100 * time.Millisecond) {
		head, err := st.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if head == last {
			return
		}
		last = head
	}
}

// TestReadsShowOnlyWhatIsDurable: the group commit writes a group, which
// reads could see at once, before its sync. A client reading an outcome or
// a state in that window must not be shown it: should the sync fail (or
// the power go), it is lost, and its command, never acknowledged, is
// decided again, perhaps otherwise. So whatever a read showed was
// acknowledged, a read waiting for a sync that fails gets its error, and
// so does whoever awaits the outcome of a command the failure took.
func TestReadsShowOnlyWhatIsDurable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSQLite(t)
	var fail atomic.Bool
	held, let := holdSyncs(t, st, &fail)
	e, err := engine.New(enginetest.App(), held, engine.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := enginetest.Background(t, e)
	const n = 64
	type result struct {
		i   int
		err error
	}
	submitted := make(chan result, n)
	for i := range n {
		go func() {
			_, err := e.Submit(ctx, plait.Command{ID: fmt.Sprintf("c%d", i), Type: "counter", AggregateID: fmt.Sprintf("k%d", i), Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
			submitted <- result{i, err}
		}()
	}
	// Until the syncs are let go, some groups are written and not durable.
	awaitWritten(t, st)
	shown := map[int]string{}
	read, stopRead := context.WithTimeout(ctx, 200*time.Millisecond)
	for i := range n {
		if out, ok, err := e.Outcome(read, fmt.Sprintf("c%d", i)); err == nil && ok {
			shown[i] = "the outcome " + string(out.Status)
		}
		if in, err := e.Load(read, "counter", fmt.Sprintf("k%d", i)); err == nil && in.Seq > 0 {
			shown[i] = fmt.Sprintf("the state at seq %d", in.Seq)
		}
	}
	stopRead()
	fail.Store(true)
	waiting := make(chan error, 1)
	go func() {
		_, _, err := e.Outcome(ctx, fmt.Sprintf("c%d", n-1))
		waiting <- err
	}()
	// Whoever awaits a command is answered when its sync fails: with
	// plait.ErrNotFound, as the command has no outcome.
	awaited := make(chan error, n)
	for i := range n {
		go func() {
			_, err := e.Await(ctx, fmt.Sprintf("c%d", i))
			awaited <- err
		}()
	}
	eventually(t, "every Await waits", func() bool {
		for i := range n {
			if id := fmt.Sprintf("c%d", i); e.Pending(id) && e.AwaitersOf(id) == 0 {
				return false
			}
		}
		return true
	})
	let()
	for range n {
		select {
		case err := <-awaited:
			if err != nil && !errors.Is(err, plait.ErrNotFound) {
				t.Errorf("Await after the sync failed: %v, want an outcome or plait.ErrNotFound", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Await is not answered when the sync of its command fails")
		}
	}
	if err := <-waiting; !errors.Is(err, errDisk) {
		t.Errorf("a read waiting for the sync that failed: %v, want the sync's error", err)
	}
	failed := 0
	for range n {
		r := <-submitted
		if r.err == nil {
			continue
		}
		failed++
		if what, ok := shown[r.i]; ok {
			t.Errorf("c%d was not acknowledged (%v), yet a read showed %s", r.i, r.err, what)
		}
	}
	if failed == 0 {
		t.Fatal("every command was durable before the syncs were held: the test saw no unsynced group")
	}
	<-done
}

// TestWaitSettledWakesWhenItsCommandIsDone: a correlation whose last
// command is in flight settles when that command is answered, with no
// reactor to move a checkpoint after it: WaitSettled, called meanwhile,
// returns then rather than at its deadline.
func TestWaitSettledWakesWhenItsCommandIsDone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSQLite(t)
	app := plait.App{Name: "counters", Aggregates: []plait.Definition{enginetest.CounterType}}
	store, let := holdSyncs(t, st, new(atomic.Bool))
	e, err := engine.New(app, store, engine.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	const n = 16
	for i := range n {
		go e.Submit(ctx, plait.Command{ID: fmt.Sprintf("c%d", i), Type: "counter", AggregateID: fmt.Sprintf("k%d", i), Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
	}
	awaitWritten(t, st)
	var held []string
	for i := range n {
		if id := fmt.Sprintf("c%d", i); e.Pending(id) {
			held = append(held, id)
		}
	}
	if len(held) == 0 {
		t.Fatal("no command waits for its sync")
	}
	settled := make(chan error, len(held))
	for _, id := range held {
		go func() {
			wait, stop := context.WithTimeout(ctx, 10*time.Second)
			defer stop()
			settled <- e.WaitSettled(wait, id) // a command is its own correlation
		}()
	}
	eventually(t, "every WaitSettled waits", func() bool {
		for _, id := range held {
			if !e.WaitsForIdle(id) {
				return false
			}
		}
		return true
	})
	let()
	for range held {
		select {
		case err := <-settled:
			if err != nil {
				t.Fatalf("WaitSettled: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("WaitSettled does not return once its command is done")
		}
	}
}

// readRace is the SQLite store whose commits and syncs can be held, and
// whose read of the outcome of "late0" first runs duringRead.
type readRace struct {
	*sqlite.Store
	holdCommit, holdSync atomic.Bool
	commitGate, syncGate chan struct{}
	entered              chan struct{} // a commit is held
	enterOnce            sync.Once
	duringRead           atomic.Pointer[func()]
}

func (s *readRace) Commit(ctx context.Context, batch []*engine.Processed) error {
	if s.holdCommit.Load() {
		s.enterOnce.Do(func() { close(s.entered) })
		<-s.commitGate
	}
	return s.Store.Commit(ctx, batch)
}

func (s *readRace) Sync(ctx context.Context) error {
	if s.holdSync.Load() {
		<-s.syncGate
	}
	return s.Store.Sync(ctx)
}

func (s *readRace) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	if f := s.duringRead.Swap(nil); id == "late0" && f != nil {
		(*f)()
	}
	return s.Store.Outcome(ctx, id)
}

// TestAReadWaitsForWhatWasWrittenWhileItRead: a group written while a read
// runs, after the read began and before it looked, is seen by it. The read
// must then wait for that group's sync too, not only for those written
// before it began.
func TestAReadWaitsForWhatWasWrittenWhileItRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSQLite(t)
	s := &readRace{Store: st, commitGate: make(chan struct{}), syncGate: make(chan struct{}), entered: make(chan struct{})}
	var commitOnce, syncOnce sync.Once
	letCommit := func() { commitOnce.Do(func() { close(s.commitGate) }) }
	letSync := func() { syncOnce.Do(func() { close(s.syncGate) }) }
	// Before the engine is stopped, which waits for its syncs.
	defer letCommit()
	defer letSync()
	app := plait.App{Name: "counters", Aggregates: []plait.Definition{enginetest.CounterType}}
	e, err := engine.New(app, s, engine.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	send := func(id string) {
		e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: id, Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
	}
	send("first")
	before, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A lone command, committed and synced in one step, is held; the late
	// ones queue behind it, to be written as one group with its sync held.
	s.holdCommit.Store(true)
	s.holdSync.Store(true)
	go send("lone")
	<-s.entered
	const late = 8
	for i := range late {
		go send(fmt.Sprintf("late%d", i))
	}
	eventually(t, "the late commands are in flight", func() bool {
		for i := range late {
			if !e.Pending(fmt.Sprintf("late%d", i)) {
				return false
			}
		}
		return true
	})
	during := func() {
		s.holdCommit.Store(false)
		letCommit()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if head, _ := st.Head(ctx); head >= before+2*(1+late) {
				return
			}
		}
		t.Error("the late commands were not written")
	}
	s.duringRead.Store(&during)
	read, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if out, ok, err := e.Outcome(read, "late0"); err == nil && ok {
		t.Fatalf("Outcome(late0) = %s, read while its group was written and shown before its sync", out.Status)
	}
	letSync()
	if _, err := e.Await(ctx, "late0"); err != nil {
		t.Fatal(err)
	}
}

// damagedStore is the SQLite store whose commits fail once fail is set:
// with an error of damaged data if corrupt, else with a passing one.
type damagedStore struct {
	*sqlite.Store
	fail    *atomic.Bool
	corrupt bool
}

func (s damagedStore) err() error {
	if s.corrupt {
		return fmt.Errorf("%w: database disk image is malformed", engine.ErrCorrupt)
	}
	return errors.New("database is locked")
}

func (s damagedStore) Commit(ctx context.Context, b []*engine.Processed) error {
	if s.fail.Load() {
		return s.err()
	}
	return s.Store.Commit(ctx, b)
}

func (s damagedStore) CommitUnsynced(ctx context.Context, b []*engine.Processed) error {
	if s.fail.Load() {
		return s.err()
	}
	return s.Store.CommitUnsynced(ctx, b)
}

// TestACommitOverDamagedDataStopsTheEngine: a commit that fails because
// the store's data is damaged stops the engine; one that fails for a
// passing reason does not.
func TestACommitOverDamagedDataStopsTheEngine(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("corrupt=%v", corrupt), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var fail atomic.Bool
			e, err := engine.New(enginetest.App(), damagedStore{openSQLite(t), &fail, corrupt}, engine.Options{Partitions: 2})
			if err != nil {
				t.Fatal(err)
			}
			done, _ := enginetest.Background(t, e)
			add := func(id string) error {
				_, err := e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: "k", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
				return err
			}
			if err := add("c1"); err != nil {
				t.Fatal(err)
			}
			fail.Store(true)
			if err := add("c2"); err == nil {
				t.Fatal("a failed commit was acknowledged")
			}
			select {
			case err := <-done:
				if !corrupt || !errors.Is(err, engine.ErrCorrupt) {
					t.Fatalf("Run returned %v (corrupt=%v)", err, corrupt)
				}
			case <-time.After(500 * time.Millisecond):
				if corrupt {
					t.Fatal("the engine runs on over damaged data")
				}
				fail.Store(false)
				if err := add("c3"); err != nil {
					t.Fatalf("after a passing failure: %v", err)
				}
			}
		})
	}
}

// TestARunOfFailedCommitsIsLoggedOnce: while every commit fails (a full
// disk), the log says so when it begins, not at every group commit, and
// once more when commits succeed again.
func TestARunOfFailedCommitsIsLoggedOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var fail atomic.Bool
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	e, err := engine.New(enginetest.App(), damagedStore{openSQLite(t), &fail, false}, engine.Options{Partitions: 2, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	add := func(id string) error {
		_, err := e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: "k", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
		return err
	}
	fail.Store(true)
	for i := range 20 {
		if add(fmt.Sprintf("f%d", i)) == nil {
			t.Fatal("a failed commit was acknowledged")
		}
	}
	fail.Store(false)
	if err := add("ok"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, `msg="commit failed"`); n != 1 {
		t.Errorf("%d lines of failed commits for a run of 20, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `msg="commits succeed again"`) || !strings.Contains(out, "attempts=20") {
		t.Errorf("no line says commits succeed again after 20 failures:\n%s", out)
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// failingHead is the SQLite store failing to read its head, as at a start
// on a disk that fails.
type failingHead struct{ *sqlite.Store }

func (failingHead) Head(context.Context) (int64, error) { return 0, errDisk }

// TestARunThatCannotStartIsDone: Run returns the error, and Done is closed,
// so that nothing waiting for the engine to stop waits for ever.
func TestARunThatCannotStartIsDone(t *testing.T) {
	e, err := engine.New(enginetest.App(), failingHead{openSQLite(t)}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); !errors.Is(err, errDisk) {
		t.Fatalf("Run returned %v, want the store's error", err)
	}
	select {
	case <-e.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done is not closed after Run returned")
	}
}

// slowOutcome delays every read of an outcome while slow is set, as a
// reader descheduled between its look at the commands in flight and its
// read of the store.
type slowOutcome struct {
	heldSync
	slow *atomic.Bool
}

func (s slowOutcome) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	if s.slow.Load() {
		time.Sleep(100 * time.Millisecond)
	}
	return s.heldSync.Outcome(ctx, id)
}

// TestAnAwaitRacingASubmitWhoseSyncFails: an Await that looked before its
// command was submitted, and read the store once the command's group was
// written but not synced, waits for that sync; when it fails, the Await
// answers its error, not the outcome the lost group wrote.
func TestAnAwaitRacingASubmitWhoseSyncFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fail := new(atomic.Bool)
	fail.Store(true)
	held, let := holdSyncs(t, openSQLite(t), fail)
	slow := new(atomic.Bool)
	e, err := engine.New(enginetest.App(), slowOutcome{held, slow}, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := enginetest.Background(t, e)
	slow.Store(true)
	type answer struct {
		out plait.Outcome
		err error
	}
	awaited := make(chan answer, 1)
	go func() {
		out, err := e.Await(ctx, "x")
		awaited <- answer{out, err}
	}()
	time.Sleep(10 * time.Millisecond) // Await has looked: x is not in flight
	for i := range 8 {
		go e.Submit(ctx, plait.Command{ID: fmt.Sprintf("o%d", i), Type: "counter", AggregateID: fmt.Sprintf("o%d", i), Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
	}
	time.Sleep(10 * time.Millisecond) // a group is written, its sync held
	submitted := make(chan error, 1)
	go func() {
		_, err := e.Submit(ctx, plait.Command{ID: "x", Type: "counter", AggregateID: "k", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
		submitted <- err
	}()
	time.Sleep(200 * time.Millisecond) // Await has read x's group, written, not synced
	let()
	a := <-awaited
	if err := <-submitted; err != nil && a.err == nil {
		t.Fatalf("x failed to sync (%v), yet Await answered %s", err, a.out.Status)
	}
	<-done
}

// missedOutcome answers its first Outcome read "unknown" once gate is
// closed, as a read that ran before the command was submitted, by a
// reader descheduled until after; and it holds every commit until commits
// is closed, so that the command stays in flight meanwhile.
type missedOutcome struct {
	*sqlite.Store
	gate, commits chan struct{}
	first         *atomic.Bool
}

func (s missedOutcome) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	if s.first.CompareAndSwap(true, false) {
		<-s.gate
		return plait.Outcome{}, false, nil
	}
	return s.Store.Outcome(ctx, id)
}

func (s missedOutcome) Commit(ctx context.Context, batch []*engine.Processed) error {
	<-s.commits
	return s.Store.Commit(ctx, batch)
}

func (s missedOutcome) CommitUnsynced(ctx context.Context, batch []*engine.Processed) error {
	<-s.commits
	return s.Store.CommitUnsynced(ctx, batch)
}

// TestAnAwaitOfACommandSubmittedAfterItLooked: an Await that found its
// command neither in flight nor stored, and then in flight, waits for its
// outcome, rather than until its context ends.
func TestAnAwaitOfACommandSubmittedAfterItLooked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := new(atomic.Bool)
	store := missedOutcome{openSQLite(t), make(chan struct{}), make(chan struct{}), first}
	e, err := engine.New(enginetest.App(), store, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	t.Cleanup(func() {
		select {
		case <-store.commits:
		default:
			close(store.commits)
		}
	})
	first.Store(true)
	awaited := make(chan error, 1)
	go func() {
		wait, stop := context.WithTimeout(ctx, 3*time.Second)
		defer stop()
		out, err := e.Await(wait, "x")
		if err == nil && out.Status != plait.StatusAccepted {
			err = fmt.Errorf("status %s", out.Status)
		}
		awaited <- err
	}()
	eventually(t, "Await reads the store", func() bool { return !first.Load() })
	submitted := make(chan error, 1)
	go func() {
		_, err := e.Submit(ctx, plait.Command{ID: "x", Type: "counter", AggregateID: "k", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
		submitted <- err
	}()
	eventually(t, "x is in flight", func() bool { return e.Pending("x") })
	close(store.gate) // the read answers: unknown; x is in flight, its commit held
	time.Sleep(50 * time.Millisecond)
	close(store.commits)
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	if err := <-awaited; err != nil {
		t.Fatalf("Await of x, submitted after it looked: %v", err)
	}
}

// TestAFullCacheDoesNotWaitForACommit: a partition whose cache is over its
// caps at every batch (as with one batch of large states) still decides a
// batch while the ones before it commit. It keeps the records those
// commits have not stored yet, so the next command of the same instance is
// decided against them, and written before their syncs are done.
func TestAFullCacheDoesNotWaitForACommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := openSQLite(t)
	var fail atomic.Bool
	held, let := holdSyncs(t, st, &fail)
	defer let() // before the engine stops, should the test fail
	e, err := engine.New(enginetest.App(), held, engine.Options{Partitions: 1, CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := enginetest.Background(t, e)
	const n = 16
	answered := make(chan error, n+1)
	submit := func(id string) {
		go func() {
			_, err := e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: "k", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"})
			answered <- err
		}()
	}
	// A lone command is synced as it is committed; the ones queued behind
	// it make groups whose syncs are held.
	for i := range n {
		submit(fmt.Sprintf("c%d", i))
	}
	awaitWritten(t, st)
	if len(answered) == n {
		t.Fatal("every command was synced as it was committed: no sync is held")
	}
	written, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	submit("last")
	eventually(t, "the last command written while syncs before it are held", func() bool {
		head, err := st.Head(ctx)
		return err == nil && head > written
	})
	let()
	for range n + 1 {
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
	}
	inst, err := e.Load(ctx, "counter", "k")
	if err != nil {
		t.Fatal(err)
	}
	var c enginetest.Counter
	if err := json.Unmarshal(inst.State, &c); err != nil || inst.Seq != n+1 || c.Count != n+1 {
		t.Fatalf("after %d adds: seq %d, state %s (%v)", n+1, inst.Seq, inst.State, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the engine stopped: %v", err)
	default:
	}
}
