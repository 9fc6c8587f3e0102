package orderdesk_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

// The embedded stores in testdata/store-COMMIT.db were each written by
// fixtureStory at the commit their name gives: store-15bf6bd.db by the
// first release, before the index of instances by owner, and the others by
// later ones. TestAnEarlierStoreServes opens every one with the current
// code: a change to the store's tables or to how it encodes commands,
// events, states, lineage, sealed values, keys or view copies, which would
// break the stores users already have, fails it.
//
// The current commit writes a fixture with
//
//	go test ./examples/orderdesk -run TestWriteStoreFixture -write-store-fixture testdata/store-$(git rev-parse --short HEAD).db
//
// (an earlier one, with this file copied into a checkout of it). Add one
// when the format changes on purpose, with a migration that brings older
// stores to it on open, and keep the older ones: every format users may
// still have stays tested.
var writeStoreFixture = flag.String("write-store-fixture", "", "write an embedded store made by fixtureStory to this file (TestWriteStoreFixture)")

// The users of fixtureStory: clerk owns all but customer c3, other's.
var (
	clerk = plait.User{ID: "clerk"}
	other = plait.User{ID: "other"}
)

// fixtureStory is what a fixture store holds: customers made, renamed and
// forgotten, orders placed and shipped, a command rejected, and the
// orderList view rebuilt, so that it lives in a copy of its own.
func fixtureStory(t *testing.T, l *live) {
	t.Helper()
	ctx := context.Background()
	send := func(user plait.User, id, typ, aggID, name string, data any) {
		t.Helper()
		raw, _ := json.Marshal(data)
		r, err := l.e.Submit(ctx, plait.Command{ID: id, Type: typ, AggregateID: aggID, Name: name, Data: raw}, user)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		l.corrs = append(l.corrs, r.Command.CorrelationID)
	}
	send(clerk, "fx-c1", "customer", "c1", "create", M{"name": "Ann", "email": "ann@example.com"})
	send(clerk, "fx-c2", "customer", "c2", "create", M{"name": "Bob", "email": "bob@example.com"})
	send(other, "fx-c3", "customer", "c3", "create", M{"name": "Cid", "email": "cid@example.com"})
	send(clerk, "fx-o1", "order", "o1", "place", M{"customerId": "c1", "currency": "USD", "lines": []M{{"sku": "A", "qty": 2, "price": 3.5}}})
	send(clerk, "fx-o2", "order", "o2", "place", M{"customerId": "c2", "lines": []M{{"sku": "B", "qty": 1, "price": 10}}})
	send(clerk, "fx-c1-rename", "customer", "c1", "rename", M{"name": "Anna"})
	send(clerk, "fx-o1-ship", "order", "o1", "ship", M{})
	send(clerk, "fx-o1-cancel", "order", "o1", "cancel", M{"reason": "too late"}) // rejected: shipped
	l.settle()
	if _, err := l.e.Forget(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.e.Rebuild(ctx, orderdesk.OrderListType, nil); err != nil {
		t.Fatal(err)
	}
}

// TestWriteStoreFixture writes the store of fixtureStory to the file
// -write-store-fixture names, in SQLite pages of 1 KiB to keep it small.
func TestWriteStoreFixture(t *testing.T) {
	if *writeStoreFixture == "" {
		t.Skip("-write-store-fixture FILE writes a fixture")
	}
	path := filepath.Join(t.TempDir(), "orderdesk.db")
	l := startAt(t, orderdesk.App(), path)
	fixtureStory(t, l)
	l.stop()
	db, err := sqlite.OpenSQL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`PRAGMA journal_mode = DELETE`, `PRAGMA page_size = 1024`, `VACUUM`, `PRAGMA journal_mode = WAL`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if err := copyFile(path, *writeStoreFixture); err != nil {
		t.Fatal(err)
	}
}

// TestAnEarlierStoreServes runs orderdesk on a copy of each fixture: what
// it holds reads as it was written, and new commands go on from it.
func TestAnEarlierStoreServes(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "store-*.db"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixture in testdata (%v)", err)
	}
	for _, f := range fixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "orderdesk.db")
			if err := copyFile(f, path); err != nil {
				t.Fatal(err)
			}
			l := startLiveAt(t, path)
			// The fixtures of releases that named no application are
			// claimed by orderdesk; the others were orderdesk's.
			if app, err := sqlite.ApplicationOf(context.Background(), path); err != nil || app != "orderdesk" {
				t.Errorf("the store's application: %q, %v", app, err)
			}
			checkFixtureReads(t, l)
			checkFixtureGoesOn(t, l)
		})
	}
}

// checkFixtureReads checks what fixtureStory left: instances, their owners
// and lineage, histories, outcomes, lists and the feed.
func checkFixtureReads(t *testing.T, l *live) {
	ctx := context.Background()
	c1 := load(t, l, "customer", "c1")
	if c1.Seq != 2 || c1.Owner != "clerk" || jsonField(t, c1.State, "name") != "Anna" || jsonField(t, c1.State, "email") != "ann@example.com" {
		t.Errorf("customer c1: seq %d owner %q state %s", c1.Seq, c1.Owner, c1.State)
	}
	if c2 := load(t, l, "customer", "c2"); jsonField(t, c2.State, "email") != engine.Erased {
		t.Errorf("forgotten customer c2: %s, want its email erased", c2.State)
	}
	if c3 := load(t, l, "customer", "c3"); c3.Owner != "other" {
		t.Errorf("customer c3: owner %q, want other", c3.Owner)
	}
	item := load(t, l, orderdesk.OrderListType, "o1")
	if jsonField(t, item.State, "customerName") != "Anna" || jsonField(t, item.State, "status") != "shipped" ||
		item.Lineage["customerName"] != (plait.Lineage{Type: "customer", AggregateID: "c1", Seq: 2}) {
		t.Errorf("orderList o1: %s lineage %v", item.State, item.Lineage)
	}
	evs, err := l.e.Events(ctx, "order", "o1", 0, 10)
	if err != nil || len(evs) != 2 || evs[0].ID != "fx-o1.1" || evs[0].Type != "order" || evs[0].AggregateID != "o1" ||
		evs[0].Name != "placed" || evs[0].Version != 2 || evs[0].CorrelationID != "fx-o1" || evs[0].User != "clerk" ||
		jsonField(t, evs[0].Data, "currency") != "USD" || evs[1].Seq != 2 {
		t.Errorf("history of order o1: %+v (%v)", evs, err)
	}
	if out, ok, err := l.e.Outcome(ctx, "fx-o1"); err != nil || !ok || out.Status != plait.StatusAccepted || len(out.Events) != 1 {
		t.Errorf("outcome fx-o1: %+v %v %v", out, ok, err)
	}
	if out, ok, err := l.e.Outcome(ctx, "fx-o1-cancel"); err != nil || !ok || out.Status != plait.StatusRejected ||
		len(out.Errors) != 1 || out.Errors[0].Code != orderdesk.CodeInvalidState {
		t.Errorf("outcome fx-o1-cancel: %+v %v %v", out, ok, err)
	}
	if ids := listIDs(t, l, "customer", engine.ListQuery{Sort: "name", Owner: "clerk"}); !equal(ids, "c1", "c2") {
		t.Errorf("clerk's customers by name: %v, want c1 c2", ids)
	}
	if ids := listIDs(t, l, orderdesk.OrderListType, engine.ListQuery{Sort: "customerName", Desc: true}); !equal(ids, "o2", "o1") {
		t.Errorf("orderList by customerName, descending: %v, want o2 o1", ids)
	}
	items, err := l.e.ReadFeed(ctx, 0, 1000)
	if err != nil || len(items) == 0 || items[len(items)-1].Position != l.e.Head() {
		t.Fatalf("feed: %d items to head %d (%v)", len(items), l.e.Head(), err)
	}
	for i := 1; i < len(items); i++ {
		if items[i].Position <= items[i-1].Position {
			t.Fatalf("feed: position %d after %d", items[i].Position, items[i-1].Position)
		}
	}
}

// checkFixtureGoesOn sends commands to the fixture's instances: a
// repeated id answers its stored outcome, expectedSeq counts from the
// stored seqs, and the reactors go on from their checkpoints (they do
// not react again to what the fixture holds).
func checkFixtureGoesOn(t *testing.T, l *live) {
	ctx := context.Background()
	r, err := l.e.Submit(ctx, plait.Command{ID: "fx-o1", Type: "order", AggregateID: "o1", Name: "place", Data: json.RawMessage(`{}`)}, clerk)
	if err != nil || !r.Duplicate || r.Outcome.Status != plait.StatusAccepted {
		t.Errorf("fx-o1 sent again: %+v (%v), want its stored outcome", r, err)
	}
	before := len(events(t, l, orderdesk.OrderListType, "o1"))
	seq := int64(2)
	rename := func(id, name string) plait.Outcome {
		t.Helper()
		r, err := l.e.Submit(ctx, plait.Command{ID: id, Type: "customer", AggregateID: "c1", Name: "rename",
			Data: json.RawMessage(`{"name":"` + name + `"}`), ExpectedSeq: &seq}, clerk)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		l.corrs = append(l.corrs, r.Command.CorrelationID)
		return *r.Outcome
	}
	if out := rename("new-rename", "Annie"); out.Status != plait.StatusAccepted || out.Events[0].Seq != 3 {
		t.Fatalf("rename at expectedSeq 2: %+v", out)
	}
	if out := rename("new-rename-stale", "X"); out.Status != plait.StatusRejected || out.Errors[0].Code != plait.CodeConflict {
		t.Errorf("a second rename at expectedSeq 2: %+v, want a conflict", out)
	}
	l.send("order", "o3", "place", M{"customerId": "c1", "lines": []M{{"sku": "C", "qty": 1, "price": 1}}})
	l.settle()
	if got := len(events(t, l, orderdesk.OrderListType, "o1")); got != before+1 {
		t.Errorf("orderList o1 has %d events after a rename, want %d: the reactors did not go on from their checkpoints", got, before+1)
	}
	for _, id := range []string{"o1", "o3"} {
		if it := load(t, l, orderdesk.OrderListType, id); jsonField(t, it.State, "customerName") != "Annie" {
			t.Errorf("orderList %s after the rename: %s", id, it.State)
		}
	}
	// A rebuild replaces the fixture's copy of the view; its items go on
	// from their seqs in the log.
	seqBefore := load(t, l, orderdesk.OrderListType, "o1").Seq
	if _, err := l.e.Rebuild(ctx, orderdesk.OrderListType, nil); err != nil {
		t.Fatalf("rebuild orderList: %v", err)
	}
	if it := load(t, l, orderdesk.OrderListType, "o1"); it.Seq != seqBefore || jsonField(t, it.State, "customerName") != "Annie" {
		t.Errorf("orderList o1 rebuilt: seq %d (was %d) %s", it.Seq, seqBefore, it.State)
	}
	l.send("order", "o1", "cancel", M{"reason": "shipped: refused"})
	l.send("order", "o3", "ship", M{})
	l.settle()
	if it := load(t, l, orderdesk.OrderListType, "o3"); jsonField(t, it.State, "status") != "shipped" {
		t.Errorf("orderList o3 after its shipment, rebuilt: %s", it.State)
	}
}

// startLiveAt runs orderdesk on the store at path as plait serve does,
// its list indexes made.
func startLiveAt(t *testing.T, path string) *live {
	t.Helper()
	l := startAt(t, orderdesk.App(), path)
	if err := l.st.EnsureIndexes(context.Background(), orderdesk.App().Aggregates); err != nil {
		t.Fatal(err)
	}
	return l
}

func load(t *testing.T, l *live, typ, id string) engine.Instance {
	t.Helper()
	in, err := l.e.Load(context.Background(), typ, id)
	if err != nil {
		t.Fatalf("load %s/%s: %v", typ, id, err)
	}
	return in
}

func events(t *testing.T, l *live, typ, id string) []plait.Event {
	t.Helper()
	evs, err := l.e.Events(context.Background(), typ, id, 0, 1000)
	if err != nil {
		t.Fatalf("events of %s/%s: %v", typ, id, err)
	}
	return evs
}

func listIDs(t *testing.T, l *live, typ string, q engine.ListQuery) []string {
	t.Helper()
	page, err := l.e.List(context.Background(), typ, q)
	if err != nil {
		t.Fatalf("list %s: %v", typ, err)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// jsonField is the string field of a JSON object, "" if it has none.
func jsonField(t *testing.T, obj json.RawMessage, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	s, _ := m[field].(string)
	return s
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// copyFile copies the file from to a new file to, readable by its owner
// only, as a store is.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
