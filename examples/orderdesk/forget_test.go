package orderdesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
