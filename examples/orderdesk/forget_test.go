package orderdesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
)

// The personal data of the test's subject, each unlike anything else in
// the database so that a raw search finds only it.
var zelda = []string{"Zelda Forgetme-Quux", "Zelda Q. Forgetme-Renamed", "zelda.forgetme@example.org", "zelda-forgetme-not-an-address"}

// TestForgetErasesTheSubjectEverywhere: a customer's name and email are
// personal. At rest they are sealed from the start; after Forget they read
// as erased through every read of the engine — the customer, its history,
// the outcomes (a rejected command's data included), the feed the relay
// serves, the list items that copied the name (which the lineage names)
// and a rebuilt view — and no byte of them, nor of the key, is in the
// SQLite files.
func TestForgetErasesTheSubjectEverywhere(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orderdesk.db")
	ctx := context.Background()
	l := startAt(t, orderdesk.PrivateApp(), path)
	created := l.send("customer", "c1", "create", M{"name": zelda[0], "email": zelda[2]})
	l.send("customer", "c2", "create", M{"name": "Bob Stays", "email": "bob@example.com"})
	l.send("order", "o1", "place", M{"customerId": "c1", "lines": twoLines})
	l.send("order", "o2", "place", M{"customerId": "c2", "lines": twoLines})
	l.send("customer", "c1", "rename", M{"name": zelda[1]})
	rejected := l.send("customer", "c1", "changeEmail", M{"email": zelda[3]})
	l.settle()
	if rejected.Status != plait.StatusRejected || !strings.Contains(string(rejected.Command.Data), zelda[3]) {
		t.Fatalf("the rejected command as its sender sees it: %+v", rejected)
	}
	// Before: the engine's reads show the data; the file holds none of it.
	if it, _ := l.item("o1"); it.CustomerName != zelda[1] {
		t.Fatalf("o1 shows %q before forget", it.CustomerName)
	}
	if created.Events[0].Data == nil || !strings.Contains(string(created.Events[0].Data), zelda[0]) {
		t.Fatalf("the outcome as its sender sees it: %s", created.Events[0].Data)
	}
	key, ok, err := l.st.Key(ctx, "c1", false)
	if err != nil || !ok {
		t.Fatalf("c1's key: %v %v", ok, err)
	}
	checkpoint(t, l)
	rawSearch(t, dir, zelda, nil, "before forget")
	if !fileHolds(t, path, key) {
		t.Fatal("the key is not in the database file: the raw search would prove nothing")
	}

	f, err := l.e.Forget(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.ItemRef{{Type: "customerOrders", ID: "c1"}, {Type: "orderList", ID: "o1"}}
	if !reflect.DeepEqual(f.Items, want) {
		t.Errorf("items showing c1: %+v, want %+v", f.Items, want)
	}

	// After: erased through every read; Bob is untouched.
	var everything []any
	in, err := l.e.Load(ctx, "customer", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var cust orderdesk.CustomerState
	json.Unmarshal(in.State, &cust)
	if cust.Name != engine.Erased || cust.Email != engine.Erased {
		t.Errorf("customer c1 after forget: %s", in.State)
	}
	everything = append(everything, in)
	evs, err := l.e.Events(ctx, "customer", "c1", 0, 100)
	if err != nil || len(evs) != 2 {
		t.Fatalf("history: %v %v", evs, err)
	}
	everything = append(everything, evs)
	for _, id := range []string{created.Command.ID, rejected.Command.ID} {
		out, ok, err := l.e.Outcome(ctx, id)
		if err != nil || !ok {
			t.Fatalf("outcome %s: %v %v", id, ok, err)
		}
		everything = append(everything, out)
	}
	if !strings.Contains(string(evs[0].Data), engine.Erased) {
		t.Errorf("created after forget: %s", evs[0].Data)
	}
	items, err := l.e.ReadFeed(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	everything = append(everything, items)
	for _, typ := range []string{"customer", "orderList", "customerOrders"} {
		page, err := l.e.List(ctx, typ, engine.ListQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		everything = append(everything, page)
	}
	if it, _ := l.item("o1"); it.CustomerName != engine.Erased {
		t.Errorf("o1 shows %q after forget", it.CustomerName)
	}
	if it, _ := l.item("o2"); it.CustomerName != "Bob Stays" {
		t.Errorf("o2 shows %q after c1 was forgotten", it.CustomerName)
	}
	if _, err := l.e.Rebuild(ctx, orderdesk.OrderListType, nil); err != nil {
		t.Fatal(err)
	}
	if it, _ := l.item("o1"); it.CustomerName != engine.Erased {
		t.Errorf("o1 shows %q after a rebuild", it.CustomerName)
	}
	all, err := json.Marshal(everything)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range zelda {
		if bytes.Contains(all, []byte(s)) {
			t.Errorf("%q is still readable through the engine", s)
		}
	}
	if !bytes.Contains(all, []byte("Bob Stays")) {
		t.Error("Bob was erased too")
	}
	l.stop()
	rawSearch(t, dir, zelda, key, "after forget")
}

// checkpoint moves the write-ahead log into the database file.
func checkpoint(t *testing.T, l *live) {
	t.Helper()
	// Forget of a subject that has no key truncates the log, and nothing else.
	if err := l.st.Destroy(context.Background(), "nobody"); err != nil {
		t.Fatal(err)
	}
}

// rawSearch fails the test if any of the strings, or key, is in a file of
// dir (the SQLite database and its write-ahead log).
func rawSearch(t *testing.T, dir string, strs []string, key []byte, when string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strs {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s holds %q", when, filepath.Base(f), s)
			}
		}
		if key != nil && bytes.Contains(b, key) {
			t.Errorf("%s: %s holds the destroyed key", when, filepath.Base(f))
		}
	}
}

func fileHolds(t *testing.T, path string, b []byte) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, b)
}

// TestUndeclaredPersonalCopiesAreWarnedAbout: under PrivateApp the order
// list and the customerOrders view copy the customer's sealed name.
// Declared (plait.PersonalCopies, as PrivateApp does), nothing is said;
// undeclared, the engine warns once a field, naming the type and the
// field, however many instances copy it.
func TestUndeclaredPersonalCopiesAreWarnedAbout(t *testing.T) {
	undeclared := orderdesk.PrivateApp()
	for i, d := range undeclared.Aggregates {
		switch d.Type() {
		case orderdesk.OrderListType:
			undeclared.Aggregates[i] = orderdesk.OrderList()
		case orderdesk.CustomerOrdersType:
			undeclared.Aggregates[i] = orderdesk.CustomerOrders()
		}
	}
	for _, c := range []struct {
		name string
		app  plait.App
		want int
	}{{"undeclared", undeclared, 2}, {"declared", orderdesk.PrivateApp(), 0}} {
		t.Run(c.name, func(t *testing.T) {
			warnings := &warningLog{}
			l := startWith(t, c.app, filepath.Join(t.TempDir(), "orderdesk.db"), engine.Options{Logger: slog.New(warnings)})
			l.send(orderdesk.CustomerType, "c1", orderdesk.CmdCreate, map[string]string{"name": zelda[0], "email": zelda[2]})
			for _, o := range []string{"o1", "o2", "o3"} {
				l.send(orderdesk.OrderType, o, orderdesk.CmdPlace, map[string]any{
					"customerId": "c1", "lines": []map[string]any{{"sku": "A", "qty": 1, "price": 2}}})
			}
			l.send(orderdesk.CustomerType, "c1", orderdesk.CmdRename, map[string]string{"name": zelda[1]})
			l.settle()
			if item, _ := l.item("o3"); item.CustomerName != zelda[1] {
				t.Fatalf("o3's customer name %q, want %q: the copies were not made", item.CustomerName, zelda[1])
			}
			got := warnings.about("plait.PersonalCopies")
			if len(got) != c.want {
				t.Fatalf("%d warnings about personal copies, want %d: %v", len(got), c.want, got)
			}
			named := map[string]bool{}
			for _, w := range got {
				named[w["type"]+"."+w["field"]] = true
			}
			if c.want > 0 && (!named["orderList.customerName"] || !named["customerOrders.name"]) {
				t.Errorf("the warnings name %v, want orderList.customerName and customerOrders.name", got)
			}
		})
	}
}

// warningLog is a slog.Handler that keeps the attributes of the warnings.
type warningLog struct {
	mu   sync.Mutex
	recs []struct {
		msg   string
		attrs map[string]string
	}
}

func (w *warningLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warningLog) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warningLog) WithGroup(string) slog.Handler                { return w }

func (w *warningLog) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recs = append(w.recs, struct {
		msg   string
		attrs map[string]string
	}{r.Message, attrs})
	return nil
}

// about returns the attributes of the warnings whose message holds s.
func (w *warningLog) about(s string) []map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]string
	for _, r := range w.recs {
		if strings.Contains(r.msg, s) {
			out = append(out, r.attrs)
		}
	}
	return out
}
