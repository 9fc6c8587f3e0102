package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/plaithq/plait/store/postgres/pgtest"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
)

// TestConcurrentMigration starts several stores on one fresh schema at once,
// as instances of one application starting together would: every one of them
// opens, each migration is applied exactly once, and the indexes all build.
func TestConcurrentMigration(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	const n = 8
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx := context.Background()
			st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema, MaxConns: 2})
			if err == nil {
				err = st.EnsureIndexes(ctx, []plait.Definition{thingType, enginetest.CounterType})
			}
			stores[i], errs[i] = st, err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	st := stores[0]
	ctx := context.Background()
	var versions, valid, invalid int
	err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM `+schema+`.schema_migrations`).Scan(&versions)
	if err != nil || versions != 7 {
		t.Fatalf("%d migrations recorded (%v), want each once", versions, err)
	}
	err = st.Pool().QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE i.indisvalid), count(*) FILTER (WHERE NOT i.indisvalid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname LIKE 'instances\_%\_%' AND c.relname <> 'instances_by_owner'`, schema).Scan(&valid, &invalid)
	if err != nil || valid != 3 || invalid != 0 {
		t.Fatalf("%d valid and %d invalid list indexes (%v), want 3 and 0", valid, invalid, err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v != 7 {
		t.Fatalf("schema version %d, %v", v, err)
	}
	// Every store works on the one schema.
	w := &writer{st: stores[n-1]}
	w.put(t, "thing", "x", "u", `{"n":1}`, nil)
	if in, err := st.Load(ctx, "thing", "x"); err != nil || in.Seq != 1 {
		t.Fatalf("load through another store: %+v %v", in, err)
	}
}

// TestPositionsDenseAcrossStores commits from two stores on one schema, as
// two processes would, while a reader follows the feed: at every moment the
// reader sees positions 1 to Head with no gap, and each batch's positions
// are contiguous, events before their outcome.
func TestPositionsDenseAcrossStores(t *testing.T) {
	a, url := open(t)
	b, err := postgres.Open(context.Background(), url, postgres.Options{Schema: a.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stores := []*postgres.Store{a, b}
	const writers, commits = 6, 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() { // the follower: whatever it sees is dense
		var checks int
		for {
			select {
			case <-stop:
				if checks == 0 {
					readerDone <- errors.New("the reader never checked")
				}
				readerDone <- nil
				return
			default:
			}
			head, err := a.Head(context.Background())
			if err != nil {
				readerDone <- err
				return
			}
			items, err := a.ReadFeed(context.Background(), 0, int(head)+1000)
			if err != nil {
				readerDone <- err
				return
			}
			if int64(len(items)) < head {
				readerDone <- fmt.Errorf("head %d but only %d items readable", head, len(items))
				return
			}
			for i, it := range items {
				if it.Position != int64(i+1) {
					readerDone <- fmt.Errorf("item %d has position %d: a gap", i, it.Position)
					return
				}
			}
			checks++
		}
	}()
	for wi := 0; wi < writers; wi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &writer{st: stores[wi%2]}
			for c := 0; c < commits; c++ {
				var batch []*engine.Processed
				for k := 0; k < 1+rand.IntN(5); k++ {
					p := w.processed("thing", fmt.Sprintf("w%d-%d-%d", wi, c, k), "u", 1, `{"n":1}`, nil)
					p.Outcome.Command.ID = fmt.Sprintf("cmd-%d-%d-%d", wi, c, k)
					for i := range p.Outcome.Events {
						p.Outcome.Events[i].ID = plait.EventID(p.Outcome.Command.ID, i)
					}
					batch = append(batch, p)
				}
				if err := w.st.Commit(context.Background(), batch); err != nil {
					t.Error(err)
					return
				}
				next := batch[0].Outcome.Events[0].Position
				for _, p := range batch {
					for _, ev := range p.Outcome.Events {
						if ev.Position != next {
							t.Errorf("event at %d, want %d: positions of a batch are not contiguous", ev.Position, next)
						}
						next++
					}
					if p.Outcome.Position != next {
						t.Errorf("outcome at %d, want %d", p.Outcome.Position, next)
					}
					next++
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	head, _ := a.Head(context.Background())
	items, err := a.ReadFeed(context.Background(), 0, int(head)+10)
	if err != nil || int64(len(items)) != head {
		t.Fatalf("%d items for head %d (%v)", len(items), head, err)
	}
	outcomes := 0
	for _, it := range items {
		if it.Outcome != nil {
			outcomes++
		}
	}
	if outcomes*2 != len(items) {
		t.Fatalf("%d outcomes among %d items, want one event each", outcomes, len(items))
	}
}

// TestCommitIsAllOrNothing fails a batch in its middle and finds nothing of
// it stored, and its positions given back to the next commit.
func TestCommitIsAllOrNothing(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	w.put(t, "thing", "taken", "u", `{"n":1}`, nil)
	head, _ := st.Head(ctx)

	for name, bad := range map[string]*engine.Processed{
		"stale instance":    w.processed("thing", "taken", "u", 1, `{"n":2}`, nil), // seq 1 is stored
		"duplicate command": withID(w.processed("thing", "other", "u", 1, `{"n":2}`, nil), "w1"),
		"unstorable data":   w.processed("thing", "nul", "u", 1, `{"name":"a\u0000b"}`, nil),
	} {
		good := w.processed("thing", "fresh", "u", 1, `{"n":1}`, nil)
		err := st.Commit(ctx, []*engine.Processed{good, bad})
		want := postgres.ErrConflict
		if name == "unstorable data" {
			want = postgres.ErrUnstorable
		}
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", name, err, want)
		}
		if good.Outcome.Position != 0 || good.Outcome.Events[0].Position != 0 {
			t.Errorf("%s: a failed commit left positions in the batch", name)
		}
		if _, ok, _ := st.Outcome(ctx, good.Outcome.Command.ID); ok {
			t.Errorf("%s: the good command of a failed batch was stored", name)
		}
		if in, _ := st.Load(ctx, "thing", "fresh"); in.Seq != 0 {
			t.Errorf("%s: the good instance of a failed batch was stored", name)
		}
		if h, _ := st.Head(ctx); h != head {
			t.Errorf("%s: head moved from %d to %d", name, head, h)
		}
	}
	w.put(t, "thing", "fresh", "u", `{"n":1}`, nil)
	if h, _ := st.Head(ctx); h != head+2 {
		t.Errorf("head %d after one more command, want %d: positions were lost", h, head+2)
	}
}

func withID(p *engine.Processed, id string) *engine.Processed {
	p.Outcome.Command.ID = id
	for i := range p.Outcome.Events {
		p.Outcome.Events[i].ID = plait.EventID(id, i)
	}
	return p
}

func TestCommitWithOffsets(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	commit := func(next int64, commands int) error {
		var batch []*engine.Processed
		for i := 0; i < commands; i++ {
			batch = append(batch, w.processed("thing", fmt.Sprintf("o%d-%d", next, i), "u", 1, `{"n":1}`, nil))
		}
		return st.CommitWithOffsets(ctx, batch, []postgres.Offset{{Topic: "cmds", Partition: 3, Next: next}, {Topic: "cmds", Partition: 1, Next: 7}})
	}
	if err := commit(10, 2); err != nil {
		t.Fatal(err)
	}
	if offs, err := st.Offsets(ctx, "cmds"); err != nil || !reflect.DeepEqual(offs, map[int32]int64{3: 10, 1: 7}) {
		t.Fatalf("offsets = %v, %v", offs, err)
	}
	if err := commit(10, 0); err != nil { // the same offsets again, nothing else
		t.Fatalf("recommitting the stored offset: %v", err)
	}
	head, _ := st.Head(ctx)
	err := commit(9, 1) // another consumer went further: fenced off
	if !errors.Is(err, postgres.ErrConflict) || !errors.Is(err, engine.ErrLostRace) {
		t.Fatalf("an offset going back: err = %v, want ErrConflict, an engine.ErrLostRace", err)
	}
	if n := strings.Count(err.Error(), "postgres:"); n != 1 {
		t.Errorf("the error names its package %d times: %v", n, err)
	}
	if h, _ := st.Head(ctx); h != head {
		t.Fatal("a fenced-off commit stored its batch")
	}
	if err := commit(12, 1); err != nil {
		t.Fatal(err)
	}
	if offs, _ := st.Offsets(ctx, "cmds"); offs[3] != 12 {
		t.Fatalf("offsets = %v", offs)
	}
	if next, err := st.Offset(ctx, "cmds", 3); err != nil || next != 12 {
		t.Fatalf("offset of cmds/3 = %d, %v", next, err)
	}
	if next, err := st.Offset(ctx, "cmds", 0); err != nil || next != 0 {
		t.Fatalf("offset of cmds/0, never committed = %d, %v", next, err)
	}
	if offs, _ := st.Offsets(ctx, "other"); len(offs) != 0 {
		t.Fatalf("offsets of an unknown topic = %v", offs)
	}
}

// TestCommitRoundTrips checks that what Commit leaves in the batch, which the
// engine announces at once, is exactly what reads return later: times are
// rounded to the microsecond by Commit itself, and JSON keeps its meaning.
func TestCommitRoundTrips(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	exp := int64(4)
	lin := map[string]plait.Lineage{"name": {Type: "customer", AggregateID: "c", Seq: 2}}
	cmd := plait.Command{ID: "c1", Type: "thing", AggregateID: "a", Name: "set", Data: json.RawMessage(`{"name":"é \ud83d\ude00 \"q\"","n":1.50}`),
		ExpectedSeq: &exp, CorrelationID: "corr", CausationID: "cause", User: "ann", At: at}
	ev := func(i int) plait.Event {
		return plait.Event{ID: plait.EventID("c1", i), Type: "thing", AggregateID: "a", Seq: int64(5 + i), Name: "set",
			Data: json.RawMessage(`{"b":[1,{"c":null}],"a":true}`), CorrelationID: "corr", CausationID: "c1", User: "ann", At: at, Lineage: lin}
	}
	p := &engine.Processed{
		Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Events: []plait.Event{ev(0), ev(1)}, Owner: "ann"},
		Instance: &engine.Instance{Type: "thing", ID: "a", Seq: 6, State: json.RawMessage(`{"name":"x"}`), Lineage: lin, Owner: "ann", UpdatedAt: at},
	}
	rej := &engine.Processed{Outcome: plait.Outcome{
		Command: plait.Command{ID: "c2", Type: "thing", AggregateID: "a", Name: "set", CorrelationID: "c2", User: "bob", At: at},
		Status:  plait.StatusRejected, Errors: []plait.FieldError{{Path: "n", Code: "invalid", Message: "no"}}, Owner: "ann",
	}}
	if err := st.Commit(ctx, []*engine.Processed{p, rej}); err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Truncate(time.Microsecond)
	if !p.Outcome.Command.At.Equal(want) || p.Outcome.Command.At.Location() != time.UTC || !p.Instance.UpdatedAt.Equal(want) {
		t.Fatalf("Commit left times %v / %v, want %v in UTC", p.Outcome.Command.At, p.Instance.UpdatedAt, want)
	}
	for _, announced := range []plait.Outcome{p.Outcome, rej.Outcome} {
		stored, ok, err := st.Outcome(ctx, announced.Command.ID)
		if err != nil || !ok {
			t.Fatalf("outcome %s: %v %v", announced.Command.ID, ok, err)
		}
		sameOutcome(t, "stored", stored, announced)
	}
	items, err := st.ReadFeed(ctx, 0, 10)
	if err != nil || len(items) != 4 {
		t.Fatalf("feed = %d items, %v", len(items), err)
	}
	sameEvent(t, "feed", *items[0].Event, p.Outcome.Events[0])
	sameEvent(t, "feed", *items[1].Event, p.Outcome.Events[1])
	out := p.Outcome
	out.Events = nil
	sameOutcome(t, "feed", *items[2].Outcome, out)
	sameOutcome(t, "feed", *items[3].Outcome, rej.Outcome)
	if all, err := st.ReadFeed(ctx, 0, -1); err != nil || len(all) != 4 {
		t.Fatalf("feed without a limit = %d items, %v", len(all), err)
	}
	evs, err := st.ReadEvents(ctx, 0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("read events = %d, %v", len(evs), err)
	}
	sameEvent(t, "read events", evs[1], p.Outcome.Events[1])
	in, err := st.Load(ctx, "thing", "a")
	if err != nil || in.Seq != 6 || in.Owner != "ann" || !in.UpdatedAt.Equal(want) || !reflect.DeepEqual(in.Lineage, lin) || !sameJSON(in.State, p.Instance.State) {
		t.Fatalf("load = %+v, %v", in, err)
	}
	if known, err := st.KnownCommands(ctx, []string{"c2", "nope", "c1"}); err != nil || !reflect.DeepEqual(known, map[string]bool{"c1": true, "c2": true}) {
		t.Fatalf("known commands = %v, %v", known, err)
	}
	if pos, err := st.LastEventOf(ctx, "corr", []string{"thing.set", "x.y"}); err != nil || pos != 2 {
		t.Fatalf("last event of corr = %d, %v; want 2", pos, err)
	}
	if pos, _ := st.LastEventOf(ctx, "corr", []string{"thing.other"}); pos != 0 {
		t.Fatalf("last event of corr among none = %d", pos)
	}
	// A command's data is kept as sent, escapes JSONB refuses included; an
	// event's data is JSONB, which refuses them.
	for i, data := range []string{`{"s":"\ud800"}`, `{"s":"\udc00x"}`, `{"s":"\u0000"}`, "{\"s\":\"\xff\"}"} {
		id := fmt.Sprintf("rejected%d", i)
		rejected := &engine.Processed{Outcome: plait.Outcome{Command: plait.Command{ID: id, Type: "thing", AggregateID: "b", Name: "set",
			Data: json.RawMessage(data), CorrelationID: id, At: at}, Status: plait.StatusRejected}}
		err := st.Commit(ctx, []*engine.Processed{rejected})
		if utf8.ValidString(data) {
			stored, _, _ := st.Outcome(ctx, id)
			if err != nil || string(stored.Command.Data) != data {
				t.Errorf("rejected command with data %q: err = %v, stored %q", data, err, stored.Command.Data)
			}
		} else if !errors.Is(err, postgres.ErrUnstorable) {
			t.Errorf("data %q: err = %v, want ErrUnstorable", data, err)
		}
		accepted := (&writer{st: st}).processed("thing", "b", "u", 1, data, nil)
		if err := st.Commit(ctx, []*engine.Processed{accepted}); !errors.Is(err, postgres.ErrUnstorable) {
			t.Errorf("event data %q: err = %v, want ErrUnstorable", data, err)
		}
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func sameEvent(t *testing.T, where string, got, want plait.Event) {
	t.Helper()
	if !sameJSON(got.Data, want.Data) {
		t.Errorf("%s: event data %s, want %s", where, got.Data, want.Data)
	}
	got.Data, want.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: event\n got %+v\nwant %+v", where, got, want)
	}
}

func sameOutcome(t *testing.T, where string, got, want plait.Outcome) {
	t.Helper()
	if !bytes.Equal(got.Command.Data, want.Command.Data) {
		t.Errorf("%s: command data %s, want exactly %s", where, got.Command.Data, want.Command.Data)
	}
	got.Command.Data, want.Command.Data = nil, nil
	if len(got.Events) != len(want.Events) {
		t.Fatalf("%s: %d events, want %d", where, len(got.Events), len(want.Events))
	}
	for i := range got.Events {
		sameEvent(t, where, got.Events[i], want.Events[i])
	}
	got.Events, want.Events = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: outcome\n got %+v\nwant %+v", where, got, want)
	}
}

func TestReplaceView(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	w.put(t, "view", "a", "u", `{"n":1}`, nil)
	w.put(t, "view", "a", "u", `{"n":2}`, nil) // seq 2
	w.put(t, "view", "gone", "u", `{"n":1}`, nil)
	w.put(t, "other", "a", "u", `{"n":1}`, nil)
	lin := map[string]plait.Lineage{"n": {Type: "src", AggregateID: "s", Seq: 9}}
	err := st.ReplaceView(ctx, "view", []engine.Instance{
		{Type: "view", ID: "a", Seq: 1, State: json.RawMessage(`{"n":10}`), Owner: "v", UpdatedAt: time.Now(), Lineage: lin},
		{Type: "view", ID: "new", Seq: 3, State: json.RawMessage(`{"n":30}`), Owner: "v", UpdatedAt: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := st.Load(ctx, "view", "a"); in.Seq != 2 || !sameJSON(in.State, []byte(`{"n":10}`)) || !reflect.DeepEqual(in.Lineage, lin) {
		t.Fatalf("a = %+v, want the new state at the old seq 2", in)
	}
	if in, _ := st.Load(ctx, "view", "new"); in.Seq != 3 {
		t.Fatalf("new = %+v", in)
	}
	if in, _ := st.Load(ctx, "view", "gone"); in.Seq != 0 {
		t.Fatalf("gone = %+v, want removed", in)
	}
	if in, _ := st.Load(ctx, "other", "a"); in.Seq != 1 {
		t.Fatalf("another type was touched: %+v", in)
	}
	if err := st.ReplaceView(ctx, "view", nil); err != nil { // and again, on the same connection's temp table name
		t.Fatal(err)
	}
	counts, err := st.Counts(ctx)
	if err != nil || counts["view"].Instances != 0 || counts["view"].Events != 3 || counts["other"].Instances != 1 {
		t.Fatalf("counts = %+v, %v", counts, err)
	}
}

// TestPrefixesShareASchema runs two applications in one schema under two
// prefixes: neither sees the other's log.
func TestPrefixesShareASchema(t *testing.T) {
	a, url := open(t)
	b, err := postgres.Open(context.Background(), url, postgres.Options{Schema: a.Schema(), Prefix: "app2_"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	(&writer{st: a}).put(t, "thing", "x", "u", `{"n":1}`, nil)
	if h, _ := b.Head(context.Background()); h != 0 {
		t.Fatalf("the second application's head is %d", h)
	}
	if _, err := postgres.Open(context.Background(), url, postgres.Options{Schema: "bad-name"}); err == nil {
		t.Fatal("a schema name that needs quoting was accepted")
	}
}

func TestCheckpoints(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if pos, err := st.Checkpoint(ctx, "r"); err != nil || pos != 0 {
		t.Fatalf("checkpoint = %d, %v", pos, err)
	}
	st.SaveCheckpoint(ctx, "r", 5)
	st.SaveCheckpoint(ctx, "r", 7)
	st.SaveCheckpoint(ctx, "s", 1)
	if cps, err := st.Checkpoints(ctx); err != nil || !reflect.DeepEqual(cps, map[string]int64{"r": 7, "s": 1}) {
		t.Fatalf("checkpoints = %v, %v", cps, err)
	}
}
