package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

func sqliteOpener(t *testing.T) enginetest.Opener {
	path := filepath.Join(t.TempDir(), "plait.db")
	return func(t *testing.T) engine.Store {
		st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func tallies(t *testing.T, n *enginetest.Node) map[string]engine.ListItem {
	t.Helper()
	page, err := n.Engine.List(context.Background(), "tally", engine.ListQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]engine.ListItem{}
	for _, it := range page.Items {
		out[it.ID] = it
	}
	return out
}

func TestRebuildEqualsLiveWhileWritesGoOn(t *testing.T) {
	n := enginetest.Start(t, sqliteOpener(t))
	ctx := context.Background()
	submit := func(id, agg string) string {
		r, err := n.Engine.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: agg, Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Command.CorrelationID
	}
	for i := 0; i < 3000; i++ {
		submit(fmt.Sprintf("a%d", i), fmt.Sprintf("c%d", i%20))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var last string
	go func() { // writes go on during the rebuild
		defer wg.Done()
		for i := 0; i < 500; i++ {
			last = submit(fmt.Sprintf("b%d", i), fmt.Sprintf("c%d", i%25))
		}
	}()
	var reports []engine.Progress
	p, err := n.Engine.Rebuild(ctx, "tally", func(p engine.Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := n.Engine.WaitSettled(ctx, last); err != nil {
		t.Fatal(err)
	}
	if p.Phase != "done" || p.Events == 0 || len(reports) < 2 {
		t.Fatalf("progress = %+v, %d reports", p, len(reports))
	}
	if p.Replaying <= 0 || p.Replaying > p.Elapsed {
		t.Fatalf("replaying took %s of the rebuild's %s", p.Replaying, p.Elapsed)
	}
	got := tallies(t, n)
	if len(got) != 25 {
		t.Fatalf("%d tallies, want 25", len(got))
	}
	talliesCountEveryAdd(t, n, got)
}

// talliesCountEveryAdd checks that each tally counts every add of its
// counter, once, and that its lineage is the counter's last event.
func talliesCountEveryAdd(t *testing.T, n *enginetest.Node, got map[string]engine.ListItem) {
	t.Helper()
	for id, it := range got {
		counter, err := n.Store.Load(context.Background(), "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		var tally enginetest.Tally
		json.Unmarshal(it.Fields["adds"], &tally.Adds)
		if int64(tally.Adds) != counter.Seq {
			t.Errorf("tally %s = %d adds, counter has %d events: an effect was lost or doubled", id, tally.Adds, counter.Seq)
		}
		if it.Lineage["adds"].Seq != counter.Seq {
			t.Errorf("tally %s lineage %+v, want seq %d", id, it.Lineage["adds"], counter.Seq)
		}
	}
}

// addSettled submits count adds of by, spread over that many counters,
// and waits until the last has settled.
func addSettled(t *testing.T, n *enginetest.Node, count, counters, by int) {
	t.Helper()
	ctx := context.Background()
	var corr string
	for i := 0; i < count; i++ {
		r, err := n.Engine.Submit(ctx, plait.Command{Type: "counter", AggregateID: fmt.Sprintf("c%d", i%counters), Name: "add",
			Data: json.RawMessage(fmt.Sprintf(`{"by":%d}`, by))}, plait.User{ID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		corr = r.Command.CorrelationID
	}
	if err := n.Engine.WaitSettled(ctx, corr); err != nil {
		t.Fatal(err)
	}
}

// plainStore offers only what every store must, no optional capability:
// a rebuild over it keeps its copy in memory and swaps it in with
// ReplaceView.
type plainStore struct{ engine.Store }

// Close closes the store, which Node.Stop finds only through io.Closer.
func (s plainStore) Close() error { return s.Store.(io.Closer).Close() }

func TestRebuildReproducesTheViewByteForByte(t *testing.T) {
	t.Run("staged", func(t *testing.T) { checkRebuildReproducesTheView(t, sqliteOpener(t)) })
	t.Run("in memory", func(t *testing.T) {
		open := sqliteOpener(t)
		checkRebuildReproducesTheView(t, func(t *testing.T) engine.Store { return plainStore{open(t)} })
	})
}

func checkRebuildReproducesTheView(t *testing.T, open enginetest.Opener) {
	n := enginetest.Start(t, open)
	ctx := context.Background()
	addSettled(t, n, 1000, 7, 2)
	before := map[string]engine.Instance{}
	for id := range tallies(t, n) {
		before[id], _ = n.Store.Load(ctx, "tally", id)
	}
	if _, err := n.Engine.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	for id, b := range before {
		a, _ := n.Store.Load(ctx, "tally", id)
		bl, _ := json.Marshal(b.Lineage)
		al, _ := json.Marshal(a.Lineage)
		if string(a.State) != string(b.State) || string(al) != string(bl) || a.Seq != b.Seq || a.Owner != b.Owner || !a.UpdatedAt.Equal(b.UpdatedAt) {
			t.Errorf("%s rebuilt as %+v, live was %+v", id, a, b)
		}
	}
	if _, err := n.Engine.Rebuild(ctx, "counter", nil); err == nil {
		t.Error("rebuilding an aggregate that is not a view succeeded")
	}
}

// TestARebuildsDroppedItemGoesOnFromItsLastSeq: a view's new logic leaves
// out an item the old logic made, so the rebuilt copy lacks it while its
// events stay in the log. When the item is made again, its events go on
// from the log's last seq; before, the first one took seq 1 again, its
// commit failed forever, and the reactor never moved on.
func TestARebuildsDroppedItemGoesOnFromItsLastSeq(t *testing.T) {
	var dropSmall atomic.Bool
	n := enginetest.StartApp(t, sqliteOpener(t), enginetest.DroppingApp(&dropSmall))
	enginetest.CheckARebuildsDroppedItemGoesOn(t, n.Engine, &dropSmall)
}

// TestAViewIsRebuiltOnceAtATime: a second rebuild or a replay of a view
// while a rebuild runs is refused at once with ErrRebuilding, and the view
// can be rebuilt again once the first is done.
func TestAViewIsRebuiltOnceAtATime(t *testing.T) {
	n := enginetest.Start(t, sqliteOpener(t))
	ctx := context.Background()
	addSettled(t, n, 50, 5, 1)
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := make(chan error, 1)
	go func() {
		_, err := n.Engine.Rebuild(ctx, "tally", func(engine.Progress) {
			once.Do(func() { close(inside); <-release })
		})
		first <- err
	}()
	<-inside
	if _, err := n.Engine.Rebuild(ctx, "tally", nil); !errors.Is(err, engine.ErrRebuilding) {
		t.Errorf("a second rebuild while one runs: %v, want ErrRebuilding", err)
	}
	if _, err := n.Engine.Replay(ctx, "tally", nil); !errors.Is(err, engine.ErrRebuilding) {
		t.Errorf("a replay of the view while it is rebuilt: %v, want ErrRebuilding", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first rebuild: %v", err)
	}
	if _, err := n.Engine.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatalf("a rebuild after the first: %v", err)
	}
	if got := tallies(t, n); len(got) != 5 {
		t.Fatalf("%d tallies after the rebuilds, want 5", len(got))
	}
}

// checkpointFailing is a SQLite store whose checkpoint saves fail while
// failing is set: a reactor's page then has its commands committed and
// its checkpoint before them.
type checkpointFailing struct {
	*sqlite.Store
	failing atomic.Bool
	failed  chan struct{} // closed at the first failure
	once    sync.Once
}

func (s *checkpointFailing) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	if s.failing.Load() {
		s.once.Do(func() { close(s.failed) })
		return errors.New("checkpoint write failed")
	}
	return s.Store.SaveCheckpoint(ctx, name, pos)
}

// TestARebuildWaitsForAReactorsUnfinishedPage: a reactor's page whose
// commands were committed but whose checkpoint failed is retried, and its
// retry finds those commands done. A rebuild that swapped in between would
// replay only up to the checkpoint and lose the page's effects for good;
// it waits for the retry instead.
func TestARebuildWaitsForAReactorsUnfinishedPage(t *testing.T) {
	st := &checkpointFailing{failed: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "plait.db")
	n := enginetest.Start(t, func(t *testing.T) engine.Store {
		var err error
		if st.Store, err = sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"}); err != nil {
			t.Fatal(err)
		}
		return st
	})
	ctx := context.Background()
	submit := func(i int) string {
		r, err := n.Engine.Submit(ctx, plait.Command{Type: "counter", AggregateID: fmt.Sprintf("c%d", i%4), Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Command.CorrelationID
	}
	addSettled(t, n, 40, 4, 1)
	st.failing.Store(true)
	for i := 40; i < 60; i++ {
		submit(i)
	}
	<-st.failed // the tally reactor's page is committed, its checkpoint not
	rebuilt := make(chan error, 1)
	go func() {
		_, err := n.Engine.Rebuild(ctx, "tally", nil)
		rebuilt <- err
	}()
	select {
	case err := <-rebuilt:
		t.Fatalf("the rebuild ended while the reactor's page was unfinished: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	st.failing.Store(false)
	if err := <-rebuilt; err != nil {
		t.Fatal(err)
	}
	if err := n.Engine.WaitSettled(ctx, submit(60)); err != nil {
		t.Fatal(err)
	}
	talliesCountEveryAdd(t, n, tallies(t, n))
}

// feedHeld is a SQLite store whose feed reads wait until release is
// closed: a freshly started engine's reactors have not read yet.
type feedHeld struct {
	*sqlite.Store
	release chan struct{}
}

func (s *feedHeld) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.ReadFeed(ctx, after, limit)
}

// TestARebuildAfterARestartWaitsForThePageACrashCut: a process stops after
// a reactor's commands are committed and before its checkpoint (the
// failing checkpoint stands in for a kill). Restarted, the reactor's
// checkpoint is before those commands; a rebuild begun before the reactor
// read again, as `plait replay --view` does offline, must wait for that
// page, or the retry finds its commands done and their effects never
// reach the new copy.
func TestARebuildAfterARestartWaitsForThePageACrashCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plait.db")
	ctx := context.Background()
	open := func(t *testing.T) *sqlite.Store {
		st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st1 := &checkpointFailing{failed: make(chan struct{})}
	n1 := enginetest.Start(t, func(t *testing.T) engine.Store { st1.Store = open(t); return st1 })
	addSettled(t, n1, 40, 4, 1)
	st1.failing.Store(true)
	for i := 40; i < 60; i++ {
		cmd := plait.Command{Type: "counter", AggregateID: fmt.Sprintf("c%d", i%4), Name: "add", Data: json.RawMessage(`{"by":1}`)}
		if _, err := n1.Engine.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	<-st1.failed
	n1.Stop()

	st2 := &feedHeld{release: make(chan struct{})}
	n2 := enginetest.Start(t, func(t *testing.T) engine.Store { st2.Store = open(t); return st2 })
	time.AfterFunc(300*time.Millisecond, func() { close(st2.release) })
	if _, err := n2.Engine.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	r, err := n2.Engine.Submit(ctx, plait.Command{Type: "counter", AggregateID: "c9", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.Engine.WaitSettled(ctx, r.Command.CorrelationID); err != nil {
		t.Fatal(err)
	}
	talliesCountEveryAdd(t, n2, tallies(t, n2))
}
