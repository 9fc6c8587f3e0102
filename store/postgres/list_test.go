package postgres_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/postgres"
)

// Thing is the state the list tests store.
type Thing struct {
	Name string  `json:"name"`
	N    float64 `json:"n"`
}

var thingType = plait.NewAggregate[Thing]("thing", plait.Indexed[Thing]("n", "name"))

// ids lists every item of a query, page by page with the given limit, and
// fails unless the pages chain to the end.
func ids(t *testing.T, st *postgres.Store, typ string, q engine.ListQuery) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		page, err := st.List(context.Background(), typ, q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.Next == "" {
			return got
		}
		if len(page.Items) != q.Limit {
			t.Fatalf("a page of %d items before the last, want %d", len(page.Items), q.Limit)
		}
		q.After = page.Next
	}
}

func flt(field, op, value string) engine.Filter {
	return engine.Filter{Field: field, Op: op, Value: value}
}

func TestListFilters(t *testing.T) {
	st, _ := open(t)
	if err := st.EnsureIndexes(context.Background(), []plait.Definition{thingType}); err != nil {
		t.Fatal(err)
	}
	w := &writer{st: st}
	for _, r := range []struct{ id, owner, state string }{
		{"a", "u1", `{"name":"apple","n":10,"flag":true,"tag":"x"}`},
		{"b", "u1", `{"name":"Banana","n":2,"flag":false,"tag":"10"}`},
		{"c", "u2", `{"name":"apricot","n":1.5,"tag":"true"}`},
		{"d", "u2", `{"name":"a_b","n":-3}`},
		{"e", "u2", `{"name":"cherry","n":100,"flag":null}`},
		{"f", "u2", `{"n":12345678901234567890}`},
		{"g", "u2", `{"name":"ab%","n":"10"}`},
	} {
		w.put(t, "thing", r.id, r.owner, r.state, nil)
	}
	w.put(t, "other", "a", "u1", `{"name":"apple","n":10}`, nil)

	for _, tc := range []struct {
		filters []engine.Filter
		owner   string
		want    string
	}{
		{[]engine.Filter{flt("name", "eq", "apple")}, "", "a"},
		{[]engine.Filter{flt("n", "eq", "10")}, "", "a g"},     // the number 10 and the string "10"
		{[]engine.Filter{flt("n", "eq", "10.0")}, "", "a"},     // numerically equal
		{[]engine.Filter{flt("n", "eq", "+10")}, "", "a"},      // a number, if not JSON
		{[]engine.Filter{flt("tag", "eq", "10")}, "", "b"},     // only the string
		{[]engine.Filter{flt("flag", "eq", "true")}, "", "a"},  // the boolean
		{[]engine.Filter{flt("tag", "eq", "true")}, "", "c"},   // the string "true"
		{[]engine.Filter{flt("flag", "eq", "false")}, "", "b"}, // not null, not missing
		{[]engine.Filter{flt("flag", "eq", "null")}, "", ""},   // null equals nothing
		{[]engine.Filter{flt("n", "eq", "12345678901234567890")}, "", "f"},
		{[]engine.Filter{flt("n", "eq", "12345678901234567891")}, "", ""}, // exact, past float64
		{[]engine.Filter{flt("name", "prefix", "a")}, "", "a c d g"},
		{[]engine.Filter{flt("name", "prefix", "a_")}, "", "d"}, // no LIKE wildcards
		{[]engine.Filter{flt("name", "prefix", "ab%")}, "", "g"},
		{[]engine.Filter{flt("name", "prefix", "")}, "", "a b c d e g"},
		{[]engine.Filter{flt("n", "prefix", "1")}, "", "g"}, // strings only
		{[]engine.Filter{flt("n", "eq", "10"), flt("name", "prefix", "a")}, "", "a g"},
		{[]engine.Filter{flt("name", "eq", "a\x00")}, "", ""},
		{[]engine.Filter{flt("name", "prefix", "\xff")}, "", ""},
		{[]engine.Filter{{Op: "eq", Value: "c", OnID: true}}, "", "c"},
		{[]engine.Filter{{Op: "prefix", Value: "", OnID: true}, flt("name", "prefix", "a")}, "", "a c d g"},
		{[]engine.Filter{{Op: "prefix", Value: "f", OnID: true}}, "", "f"},
		{[]engine.Filter{{Op: "eq", Value: "x", OnID: true}}, "", ""},
		{nil, "u1", "a b"},
		{[]engine.Filter{flt("n", "eq", "2")}, "u2", ""},
	} {
		for _, limit := range []int{1, 2, 50} {
			got := strings.Join(ids(t, st, "thing", engine.ListQuery{Filters: tc.filters, Owner: tc.owner, Limit: limit}), " ")
			if got != tc.want {
				t.Errorf("filters %v owner %q limit %d: got [%s], want [%s]", tc.filters, tc.owner, limit, got, tc.want)
			}
		}
	}
	if _, err := st.List(context.Background(), "thing", engine.ListQuery{Filters: []engine.Filter{flt("n", "gt", "1")}}); err == nil {
		t.Error("an unknown operator was accepted")
	}
}

func TestListSort(t *testing.T) {
	st, _ := open(t)
	if err := st.EnsureIndexes(context.Background(), []plait.Definition{thingType}); err != nil {
		t.Fatal(err)
	}
	w := &writer{st: st}
	// Numbers sort numerically (as text, "10" < "2"); a missing field first.
	for id, state := range map[string]string{
		"n1": `{"n":10}`, "n2": `{"n":2}`, "n3": `{"n":-3}`, "n4": `{"n":1.5}`, "n5": `{"n":100}`,
		"n6": `{"n":2}`, "n7": `{}`, "n8": `{"n":1e19}`, "n9": `{"n":null}`,
	} {
		w.put(t, "thing", id, "u", state, nil)
	}
	// Strings sort by bytes, as in the embedded store.
	for id, name := range map[string]string{"t1": "b", "t2": "a", "t3": "B", "t4": "aa", "t5": "ä", "t6": "a"} {
		w.put(t, "text", id, "u", fmt.Sprintf(`{"name":%q}`, name), nil)
	}
	for _, tc := range []struct {
		typ, sort string
		desc      bool
		want      string
	}{
		{"thing", "n", false, "n7 n9 n3 n4 n2 n6 n1 n5 n8"},
		{"thing", "n", true, "n8 n5 n1 n6 n2 n4 n3 n9 n7"},
		{"thing", "", false, "n1 n2 n3 n4 n5 n6 n7 n8 n9"},
		{"thing", "", true, "n9 n8 n7 n6 n5 n4 n3 n2 n1"},
		{"text", "name", false, "t3 t2 t6 t4 t1 t5"},
		{"text", "name", true, "t5 t1 t4 t6 t2 t3"},
	} {
		for _, limit := range []int{1, 2, 4, 100} {
			got := strings.Join(ids(t, st, tc.typ, engine.ListQuery{Sort: tc.sort, Desc: tc.desc, Limit: limit}), " ")
			if got != tc.want {
				t.Errorf("%s sort %q desc %v limit %d: got [%s], want [%s]", tc.typ, tc.sort, tc.desc, limit, got, tc.want)
			}
		}
	}
}

func TestListProjectionAndCursors(t *testing.T) {
	st, _ := open(t)
	w := &writer{st: st}
	lin := map[string]plait.Lineage{
		"name": {Type: "customer", AggregateID: "c1", Seq: 3},
		"n":    {Type: "order", AggregateID: "o1", Seq: 1},
	}
	w.put(t, "thing", "x", "u", `{"name":"x","n":1,"extra":{"deep":[1,2]}}`, lin)
	ctx := context.Background()

	page, err := st.List(ctx, "thing", engine.ListQuery{Fields: []string{"name", "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	it := page.Items[0]
	if it.ID != "x" || it.Seq != 1 || len(it.Fields) != 1 || string(it.Fields["name"]) != `"x"` {
		t.Fatalf("projected item = %+v", it)
	}
	if !reflect.DeepEqual(it.Lineage, map[string]plait.Lineage{"name": lin["name"]}) {
		t.Fatalf("projected lineage = %+v", it.Lineage)
	}
	page, err = st.List(ctx, "thing", engine.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	it = page.Items[0]
	var extra struct{ Deep []int }
	if len(it.Fields) != 3 || json.Unmarshal(it.Fields["extra"], &extra) != nil || len(extra.Deep) != 2 || !reflect.DeepEqual(it.Lineage, lin) {
		t.Fatalf("whole item = %+v", it)
	}

	for _, bad := range []string{
		"!!!", base64.RawURLEncoding.EncodeToString([]byte(`{"i":""}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":"\u0000","i":"x"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`[1]`)),
	} {
		_, err := st.List(ctx, "thing", engine.ListQuery{Sort: "n", After: bad})
		if !errors.Is(err, engine.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
	// A cursor belongs to the order of the list that gave it.
	w.put(t, "thing", "y", "u", `{"n":2}`, nil)
	first, err := st.List(ctx, "thing", engine.ListQuery{Sort: "n", Limit: 1})
	if err != nil || first.Next == "" {
		t.Fatalf("first page by n: %+v %v", first, err)
	}
	if _, err := st.List(ctx, "thing", engine.ListQuery{Sort: "n", Limit: 1, After: first.Next}); err != nil {
		t.Errorf("the next page in the same order: %v", err)
	}
	for _, other := range []engine.ListQuery{{Sort: "n", Desc: true}, {}, {Desc: true}} {
		other.After = first.Next
		if _, err := st.List(ctx, "thing", other); !errors.Is(err, engine.ErrBadCursor) {
			t.Errorf("a cursor by n in the order %q: err = %v, want ErrBadCursor", other.Order(), err)
		}
	}
}

// TestListPaginationStableUnderConcurrentWrites pages through a sorted list
// while other instances change and appear: every instance that did not
// change is seen exactly once, and the order never goes back.
func TestListPaginationStableUnderConcurrentWrites(t *testing.T) {
	st, _ := open(t)
	if err := st.EnsureIndexes(context.Background(), []plait.Definition{thingType}); err != nil {
		t.Fatal(err)
	}
	w := &writer{st: st}
	const stable, volatile = 200, 40
	var batch []*engine.Processed
	for i := 0; i < stable; i++ {
		batch = append(batch, w.processed("thing", fmt.Sprintf("s%03d", i), "u", 1, fmt.Sprintf(`{"n":%d}`, i%20), nil))
	}
	for i := 0; i < volatile; i++ {
		batch = append(batch, w.processed("thing", fmt.Sprintf("v%02d", i), "u", 1, fmt.Sprintf(`{"n":%d}`, i%20), nil))
	}
	if err := st.Commit(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	seqs := make([]int64, volatile)
	for i := range seqs {
		seqs[i] = 1
	}
	for _, desc := range []bool{false, true} {
		stop, started := make(chan struct{}), make(chan struct{})
		wrote := make(chan struct{}, 1)
		var writes atomic.Int64
		var once sync.Once
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // moves volatile instances around and adds new ones
			defer wg.Done()
			defer once.Do(func() { close(started) }) // even if this stopped early
			for round := 0; round < 2000; round++ {
				select {
				case <-stop:
					return
				default:
				}
				v := rand.IntN(volatile)
				seqs[v]++
				b := []*engine.Processed{
					w.processed("thing", fmt.Sprintf("v%02d", v), "u", seqs[v], fmt.Sprintf(`{"n":%d}`, rand.IntN(20)), nil),
					w.processed("thing", fmt.Sprintf("new%v%d", desc, round), "u", 1, fmt.Sprintf(`{"n":%d}`, rand.IntN(20)), nil),
				}
				if err := st.Commit(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
				if writes.Add(1) == 5 {
					once.Do(func() { close(started) })
				}
				select {
				case wrote <- struct{}{}:
				default:
				}
			}
		}()
		<-started
		before := writes.Load()
		seen := map[string]int{}
		type key struct {
			n  float64
			id string
		}
		var prev *key
		q := engine.ListQuery{Sort: "n", Desc: desc, Limit: 5}
		for {
			page, err := st.List(context.Background(), "thing", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				seen[it.ID]++
				var th Thing
				json.Unmarshal(it.Fields["n"], &th.N)
				k := key{th.N, it.ID}
				if prev != nil {
					after := k.n > prev.n || (k.n == prev.n && k.id > prev.id)
					if desc {
						after = k.n < prev.n || (k.n == prev.n && k.id < prev.id)
					}
					if !after {
						t.Fatalf("desc %v: %+v came after %+v", desc, k, *prev)
					}
				}
				prev = &k
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
			select { // let at least one write land between two pages
			case <-wrote:
			case <-time.After(10 * time.Second):
				t.Fatal("the writer stalled")
			}
		}
		during := writes.Load() - before
		close(stop)
		wg.Wait()
		if during == 0 {
			t.Errorf("desc %v: no write happened while paging: the test proves nothing", desc)
		}
		t.Logf("desc %v: %d commits while paging through %d items", desc, during, len(seen))
		for i := 0; i < stable; i++ {
			if id := fmt.Sprintf("s%03d", i); seen[id] != 1 {
				t.Errorf("desc %v: %s seen %d times, want once", desc, id, seen[id])
			}
		}
	}
}

// TestLastSeqIsTheLogs: LastSeq is the seq of an instance's last event in
// the log, whatever its record says (a view rebuild may have dropped it),
// and 0 for one without events.
func TestLastSeqIsTheLogs(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	w := &writer{st: st}
	w.put(t, "v", "x", "u", `{"n":1}`, nil)
	w.put(t, "v", "x", "u", `{"n":2}`, nil)
	w.put(t, "v", "y", "u", `{"n":1}`, nil)
	for id, want := range map[string]int64{"x": 2, "y": 1, "z": 0} {
		if got, err := st.LastSeq(ctx, "v", id); err != nil || got != want {
			t.Errorf("LastSeq(v, %s) = %d (%v), want %d", id, got, err, want)
		}
	}
}

// A prefix finds every string that starts with it, those that go on with
// the largest code point (U+10FFFF) too.
func TestListPrefixOfTheLargestCodePoint(t *testing.T) {
	st, _ := open(t)
	if err := st.EnsureIndexes(context.Background(), []plait.Definition{thingType}); err != nil {
		t.Fatal(err)
	}
	w := &writer{st: st}
	for id, name := range map[string]string{
		"a": "a", "b": "ab", "c": "a\U0010FFFF", "d": "a\U0010FFFFb", "e": "b",
		"f": "\U0010FFFF", "g": "\U0010FFFF\U0010FFFF", "h": "é\U0010FFFF", "i": "e\u0301",
	} {
		state, _ := json.Marshal(map[string]string{"name": name})
		w.put(t, "thing", id, "u1", string(state), nil)
	}
	for _, tc := range []struct{ prefix, want string }{
		{"", "a b c d e f g h i"},
		{"a", "a b c d"},
		{"a\U0010FFFF", "c d"},
		{"\U0010FFFF", "f g"},
		{"é", "h"},
		{"e", "i"},
	} {
		q := engine.ListQuery{Filters: []engine.Filter{flt("name", "prefix", tc.prefix)}, Limit: 50}
		if got := strings.Join(ids(t, st, "thing", q), " "); got != tc.want {
			t.Errorf("prefix %+q: got [%s], want [%s]", tc.prefix, got, tc.want)
		}
	}
}
