package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// spied is the PostgreSQL store with a hook on the staged copy's writes and
// swap, called before each.
type spied struct {
	*postgres.Store
	beforeWrite, beforeSwap func()
}

func (s *spied) StageView(ctx context.Context, typ string, settings plait.Settings) (engine.ViewCopy, error) {
	c, err := s.Store.StageView(ctx, typ, settings)
	if err != nil {
		return nil, err
	}
	return &spiedCopy{ViewCopy: c, s: s}, nil
}

type spiedCopy struct {
	engine.ViewCopy
	s *spied
}

func (c *spiedCopy) Write(ctx context.Context, insts []engine.Instance) error {
	if c.s.beforeWrite != nil {
		c.s.beforeWrite()
	}
	return c.ViewCopy.Write(ctx, insts)
}

func (c *spiedCopy) Swap(ctx context.Context) error {
	if c.s.beforeSwap != nil {
		c.s.beforeSwap()
	}
	return c.ViewCopy.Swap(ctx)
}

// runEngine runs an engine of app over st until the test ends.
func runEngine(t *testing.T, app plait.App, st engine.Store) *engine.Engine {
	t.Helper()
	return startEngine(t, app, st, engine.Options{Partitions: 4})
}

// startEngine runs an engine of app over st with opts until the test ends.
func startEngine(t *testing.T, app plait.App, st engine.Store, opts engine.Options) *engine.Engine {
	t.Helper()
	e, err := engine.New(app, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-e.Ready():
	case err := <-done:
		t.Fatalf("engine: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not start")
	}
	return e
}

// addAll adds 1 to counters c0…c(n-1), count times in all, and returns the
// last correlation id.
func addAll(t *testing.T, e *engine.Engine, prefix string, count, n int) string {
	t.Helper()
	var corr string
	for i := range count {
		r, err := e.Submit(context.Background(), plait.Command{ID: fmt.Sprintf("%s%d", prefix, i), Type: "counter",
			AggregateID: fmt.Sprintf("c%d", i%n), Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.User{ID: "u"})
		if err != nil {
			t.Error(err)
			return corr
		}
		corr = r.Command.CorrelationID
	}
	return corr
}

// listTallies lists the tally view through the engine, by id.
func listTallies(ctx context.Context, e *engine.Engine) (map[string]engine.ListItem, error) {
	page, err := e.List(ctx, "tally", engine.ListQuery{Limit: 1000})
	if err != nil {
		return nil, err
	}
	out := map[string]engine.ListItem{}
	for _, it := range page.Items {
		out[it.ID] = it
	}
	return out, nil
}

// awaitList returns a hook that counts its calls in hits, has another
// goroutine list e's tallies, and waits for the answer (at least 20 items)
// up to 10 s: a rebuild that calls it stands still until a query is
// answered at that point, named by when.
func awaitList(ctx context.Context, t *testing.T, e *engine.Engine, when string, hits *atomic.Int64) func() {
	return func() {
		hits.Add(1)
		answer := make(chan error, 1)
		go func() {
			items, err := listTallies(ctx, e)
			if err == nil && len(items) < 20 {
				err = fmt.Errorf("the live view lists %d tallies, want at least 20", len(items))
			}
			answer <- err
		}()
		select {
		case err := <-answer:
			if err != nil {
				t.Errorf("list %s: %v", when, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("no list query answered %s", when)
		}
	}
}

// A view rebuilt on PostgreSQL, while commands and their reactions go on,
// equals what the live view would be: each counter's tally counts every
// add exactly once. The live view answers list queries throughout: while
// the copy is written and while the world is stopped for the swap.
func TestRebuildAViewWhileItServes(t *testing.T) {
	base, _ := open(t)
	if err := base.EnsureIndexes(context.Background(), enginetest.App().Aggregates); err != nil {
		t.Fatal(err)
	}
	st := &spied{Store: base}
	e := runEngine(t, enginetest.App(), st)
	ctx := context.Background()
	if err := e.WaitSettled(ctx, addAll(t, e, "a", 1000, 20)); err != nil {
		t.Fatal(err)
	}

	// Each hook has another goroutine list the view, and waits for the
	// answer: the rebuild stands still at that point until it comes.
	var writes, swaps atomic.Int64
	st.beforeWrite = awaitList(ctx, t, e, "while the copy was written", &writes)
	st.beforeSwap = awaitList(ctx, t, e, "with the world stopped for the swap", &swaps)

	var writing sync.WaitGroup
	var last string
	writing.Go(func() { last = addAll(t, e, "b", 200, 25) }) // writes go on during the rebuild
	p, err := e.Rebuild(ctx, "tally", nil)
	if err != nil {
		t.Fatal(err)
	}
	writing.Wait()
	if err := e.WaitSettled(ctx, last); err != nil {
		t.Fatal(err)
	}
	if p.Phase != "done" || p.Events == 0 || writes.Load() == 0 || swaps.Load() != 1 {
		t.Fatalf("progress %+v, %d writes and %d swaps of the copy", p, writes.Load(), swaps.Load())
	}
	checkTalliesMatchCounters(ctx, t, e, base)
}

// checkTalliesMatchCounters checks that e lists the 25 tallies, each with
// as many adds as its counter in st has events, its lineage at the
// counter's last seq: no effect lost or doubled.
func checkTalliesMatchCounters(ctx context.Context, t *testing.T, e *engine.Engine, st engine.Store) {
	t.Helper()
	got, err := listTallies(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 25 {
		t.Fatalf("%d tallies, want 25", len(got))
	}
	for id, it := range got {
		counter, err := st.Load(ctx, "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		var adds int64
		json.Unmarshal(it.Fields["adds"], &adds)
		if adds != counter.Seq || it.Lineage["adds"].Seq != counter.Seq {
			t.Errorf("tally %s = %d adds from seq %d, counter has %d events: an effect was lost or doubled",
				id, adds, it.Lineage["adds"].Seq, counter.Seq)
		}
	}
}

// A rebuild with nothing new to replay gives back the live view exactly,
// and rewrites none of its rows.
func TestRebuildReproducesTheView(t *testing.T) {
	st, _ := open(t)
	e := runEngine(t, enginetest.App(), st)
	ctx := context.Background()
	if err := e.WaitSettled(ctx, addAll(t, e, "a", 500, 7)); err != nil {
		t.Fatal(err)
	}
	before := map[string]engine.Instance{}
	versions := func() map[string]string {
		rows, err := st.Pool().Query(ctx, `SELECT id, xmin::text FROM `+pgx.Identifier{st.Schema(), "instances"}.Sanitize()+` WHERE type = 'tally'`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var id, xmin string
		if _, err := pgx.ForEachRow(rows, []any{&id, &xmin}, func() error { out[id] = xmin; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i := range 7 {
		id := fmt.Sprintf("c%d", i)
		before[id], _ = st.Load(ctx, "tally", id)
	}
	xmins := versions()
	if _, err := e.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	for id, b := range before {
		a, _ := st.Load(ctx, "tally", id)
		bl, _ := json.Marshal(b.Lineage)
		al, _ := json.Marshal(a.Lineage)
		if string(a.State) != string(b.State) || string(al) != string(bl) || a.Seq != b.Seq || a.Owner != b.Owner || !a.UpdatedAt.Equal(b.UpdatedAt) {
			t.Errorf("%s rebuilt as %+v, live was %+v", id, a, b)
		}
	}
	if after := versions(); fmt.Sprint(after) != fmt.Sprint(xmins) {
		t.Errorf("the swap rewrote rows it left unchanged: versions %v, were %v", after, xmins)
	}
	if n := pgtest.CheckInvariants(t, pgtest.URL(t), st.Schema(), nil); n == 0 {
		t.Error("no instance checked")
	}
}

// tallyV2 is a changed projection of the tally view: it also remembers the
// seq of the last add it counted.
type tallyV2 struct {
	Adds int   `json:"adds"`
	Last int64 `json:"last"`
}

var tallyV2Type = plait.NewAggregate[tallyV2]("tally",
	plait.AsView[tallyV2](),
	plait.Handle("note", func(s tallyV2, c plait.Cmd[enginetest.Note]) ([]plait.Change, error) {
		return []plait.Change{plait.Emit("noted", c.Data).From(c.Data.From, "adds", "last")}, nil
	}),
	plait.Apply("noted", func(s tallyV2, e enginetest.Note) tallyV2 { s.Adds++; s.Last = e.From.Seq; return s }),
)

// After the view's projection changes, a rebuild on PostgreSQL gives every
// item the new shape, computed from the whole history.
func TestRebuildPicksUpAChangedProjection(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	{
		e := runEngine(t, enginetest.App(), st)
		if err := e.WaitSettled(ctx, addAll(t, e, "a", 300, 5)); err != nil {
			t.Fatal(err)
		}
	}
	v2 := enginetest.App()
	v2.Aggregates = []plait.Definition{enginetest.CounterType, tallyV2Type}
	e := runEngine(t, v2, st)
	if in, _ := st.Load(ctx, "tally", "c0"); sameFields(in.State, `{"adds":60}`) != nil {
		t.Fatalf("before the rebuild c0 = %s: %v", in.State, sameFields(in.State, `{"adds":60}`))
	}
	if _, err := e.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	checkTallies(ctx, t, e, 5, `{"adds":60,"last":60}`, "last", 60)
}

// checkTallies checks that the tallies c0 to c(n-1) hold the fields of
// want, and that the lineage of field names the counter's event seq.
func checkTallies(ctx context.Context, t *testing.T, e *engine.Engine, n int, want, field string, seq int64) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		in, err := e.Load(ctx, "tally", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameFields(in.State, want); err != nil || in.Lineage[field].Seq != seq {
			t.Errorf("%s rebuilt as %s, lineage %v: %v", id, in.State, in.Lineage, err)
		}
	}
}

func sameFields(got json.RawMessage, want string) error {
	var a, b map[string]any
	if err := json.Unmarshal(got, &a); err != nil {
		return err
	}
	json.Unmarshal([]byte(want), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return fmt.Errorf("got %s, want %s", got, want)
	}
	return nil
}

// addedV2 is version 2 of the counter's "added": it carries a weight,
// ten times the amount for the events recorded in version 1.
type addedV2 struct {
	By     int `json:"by"`
	Weight int `json:"weight"`
}

// weighed is what the tally's reactor sends in the second release.
type weighed struct {
	From   plait.Lineage `json:"from"`
	Weight int           `json:"weight"`
}

// weighedTally is the tally of the second release: adds and their weight.
type weighedTally struct {
	Adds   int `json:"adds"`
	Weight int `json:"weight"`
}

// weighedApp is the suite's application in a second release: "added" is at
// version 2, upcast from 1, and the tally sums the weights its reactor
// reads from it.
func weighedApp() plait.App {
	counter := plait.NewAggregate[enginetest.Counter]("counter",
		plait.Handle("add", func(s enginetest.Counter, c plait.Cmd[enginetest.Add]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("added", addedV2{By: c.Data.By, Weight: c.Data.By})}, nil
		}),
		plait.Apply("added", func(s enginetest.Counter, e addedV2) enginetest.Counter { s.Count += e.By; return s }),
		plait.Version[enginetest.Counter]("added", 2),
	)
	tally := plait.NewAggregate[weighedTally]("tally",
		plait.AsView[weighedTally](),
		plait.Handle("note", func(s weighedTally, c plait.Cmd[weighed]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("noted", c.Data).From(c.Data.From, "adds", "weight")}, nil
		}),
		plait.Apply("noted", func(s weighedTally, e weighed) weighedTally { s.Adds++; s.Weight += e.Weight; return s }),
	)
	reactor := plait.NewReactor("tally",
		plait.On("counter", "added", func(e plait.Evt[addedV2]) []plait.Dispatch {
			return []plait.Dispatch{plait.Send("tally", e.AggregateID, "note", weighed{From: e.Source(), Weight: e.Data.Weight})}
		}),
	)
	return plait.App{Name: "contract", Aggregates: []plait.Definition{counter, tally}, Reactors: []*plait.Reactor{reactor},
		Upcasters: []plait.Upcaster{plait.UpcastAs("counter", "added", 1, func(o enginetest.Added) addedV2 {
			return addedV2{By: o.By, Weight: 10 * o.By}
		})}}
}

// After an event's shape changes, a rebuild on PostgreSQL reads the events
// recorded in the old shape through the upcaster, and the view's items get
// what the new release's reactor makes of them.
func TestRebuildReadsEventsThroughTheUpcasters(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	{
		e := runEngine(t, enginetest.App(), st)
		if err := e.WaitSettled(ctx, addAll(t, e, "a", 300, 5)); err != nil {
			t.Fatal(err)
		}
	}
	e := runEngine(t, weighedApp(), st)
	// A new add, recorded in version 2 with weight 1, beside 60 old ones each.
	if err := e.WaitSettled(ctx, addAll(t, e, "b", 5, 5)); err != nil {
		t.Fatal(err)
	}
	if in, _ := e.Load(ctx, "tally", "c0"); sameFields(in.State, `{"adds":61,"weight":1}`) != nil {
		t.Fatalf("before the rebuild c0 = %s", in.State)
	}
	if _, err := e.Rebuild(ctx, "tally", nil); err != nil {
		t.Fatal(err)
	}
	checkTallies(ctx, t, e, 5, `{"adds":61,"weight":601}`, "weight", 61)
}

// SwapFenced passes the copy's fenced swap through, calling beforeSwap
// within the fence, once the view's commits are held up.
func (c *spiedCopy) SwapFenced(ctx context.Context, finish func(ctx context.Context, write func([]engine.Instance) error) error) error {
	return c.ViewCopy.(engine.FencedCopy).SwapFenced(ctx, func(ctx context.Context, write func([]engine.Instance) error) error {
		if c.s.beforeSwap != nil {
			c.s.beforeSwap()
		}
		return finish(ctx, write)
	})
}
