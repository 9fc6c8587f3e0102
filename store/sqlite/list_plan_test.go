package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

type ticket struct {
	Status string `json:"status,omitempty"`
	Total  int    `json:"total"`
}

// indexedStore holds 3,000 tickets, a tenth of them with no status, beside
// as many instances of another type, with an index on status and one of
// its search keys.
func indexedStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lists.db"), Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	def := plait.NewAggregate("ticket", plait.Indexed[ticket]("status"), plait.Searchable[ticket]("status"))
	if err := s.EnsureIndexes(ctx, []plait.Definition{def}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		state := fmt.Sprintf(`{"status":"s%02d","total":%d}`, (i*7)%23, i)
		if i%10 == 0 {
			state = fmt.Sprintf(`{"total":%d}`, i)
		}
		for _, typ := range []string{"ticket", "other"} {
			if _, err := tx.Exec(`INSERT INTO instances(type, id, seq, state, owner, updated_at) VALUES(?, ?, 1, ?, 'u', 'x')`,
				typ, fmt.Sprintf("t%05d", (i*7919)%3000), state); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return s
}

// plan is the query plan of q, the plan of its first query (a bounded walk
// of the sort field's index, for an own list sorted by an indexed field).
func plan(t *testing.T, s *Store, q engine.ListQuery) string {
	t.Helper()
	return planOf(t, s, q, listMode{walk: true})
}

// planOf is the plan of q's query, read as mode says.
func planOf(t *testing.T, s *Store, q engine.ListQuery, mode listMode) string {
	t.Helper()
	sqlText, args, _, err := s.listQuery("ticket", q, mode)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	return strings.Join(steps, "; ")
}

// A list sorted on an indexed field walks that field's index in order and
// stops at the page's end, rather than sorting every instance of the type.
func TestSortedListsWalkTheFieldsIndex(t *testing.T) {
	s := indexedStore(t)
	page, err := s.List(context.Background(), "ticket", engine.ListQuery{Sort: "status", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []engine.ListQuery{
		{Sort: "status"},
		{Sort: "status", Desc: true},
		{Sort: "status", After: page.Next},
		{Sort: "status", Filters: []engine.Filter{{Field: "status", Op: "prefix", Value: "s1"}}},
		{Sort: "status", Filters: []engine.Filter{{Field: "total", Op: "eq", Value: "7"}}},
	} {
		p := plan(t, s, q)
		if !strings.Contains(p, "USING INDEX instances_ticket_status") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v: %s", q, p)
		}
	}
	// An equality on an indexed field narrows first, whether its value
	// could be a number or not.
	for _, v := range []string{"s03", "7", "true"} {
		if p := plan(t, s, engine.ListQuery{Sort: "total", Filters: []engine.Filter{{Field: "status", Op: "eq", Value: v}}}); !strings.Contains(p, "instances_ticket_status (<expr>=?)") {
			t.Errorf("eq %s on status: %s", v, p)
		}
	}
	if p := plan(t, s, engine.ListQuery{Filters: []engine.Filter{{Field: "status", Op: "prefix", Value: "s1"}}}); !strings.Contains(p, "instances_ticket_status (<expr>>? AND <expr><?)") {
		t.Errorf("prefix on status: %s", p)
	}
	// An equality on the id finds its one row by the primary key, whatever
	// the sort.
	if p := plan(t, s, engine.ListQuery{Sort: "status", Filters: []engine.Filter{{Op: "eq", Value: "t1", OnID: true}}}); !strings.Contains(p, "(type=? AND id=?)") {
		t.Errorf("eq on the id, sorted by status: %s", p)
	}
}

// A search is a range of the index of its field's keys, as a prefix is
// of its field's index.
func TestASearchIsARangeOfTheKeysIndex(t *testing.T) {
	s := indexedStore(t)
	search := []engine.Filter{{Field: "status", Op: "search", Value: "S1"}}
	for _, q := range []engine.ListQuery{{Filters: search}, {Filters: search, After: encodeCursor(cursor{ID: "t00100"})}} {
		if p := plan(t, s, q); !strings.Contains(p, "USING INDEX instances_ticket_status~search (<expr>>? AND <expr><?)") {
			t.Errorf("%+v: %s", q, p)
		}
		// Its first reading, of a window of the primary key, in order.
		if p := planOf(t, s, q, listMode{window: true, upTo: "t02000"}); !strings.Contains(p, "USING INDEX "+primaryKey+" (type=? AND id>? AND id<?)") &&
			!strings.Contains(p, "USING INDEX "+primaryKey+" (type=? AND id<?)") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v, in a window: %s", q, p)
		}
	}
	// Pages of a broad search (S: every status, read in windows of the
	// primary key) and of narrower ones (S1: s10 to s19, and S22, read by
	// the index), forwards and backwards, hold every match once, in order.
	if n, searched, err := s.searchMatches(context.Background(), "ticket", engine.ListQuery{Filters: []engine.Filter{{Field: "status", Op: "search", Value: "s"}}}); n < searchWalk || !searched || err != nil {
		t.Errorf("a search of s is broad: %d matches (searched %v), %v", n, searched, err)
	}
	// A user's own items, searched narrowly, are read by the keys' index
	// rather than by owner.
	own := engine.ListQuery{Owner: "u", Filters: []engine.Filter{{Field: "status", Op: "search", Value: "s22"}}}
	if p := planOf(t, s, own, listMode{byKeys: true}); !strings.Contains(p, "USING INDEX instances_ticket_status~search") {
		t.Errorf("%+v, by the keys: %s", own, p)
	}
	for _, tc := range []struct {
		value string
		match func(status int) bool
	}{{"S", func(int) bool { return true }}, {"S1", func(n int) bool { return n/10 == 1 }}, {"S22", func(n int) bool { return n == 22 }}} {
		var want []string
		for i := range 3000 {
			if i%10 != 0 && tc.match((i*7)%23) {
				want = append(want, fmt.Sprintf("t%05d", (i*7919)%3000))
			}
		}
		sort.Strings(want)
		for _, limit := range []int{7, 1000} {
			for _, desc := range []bool{false, true} {
				for _, owner := range []string{"", "u"} {
					var got []string
					for q := (engine.ListQuery{Filters: []engine.Filter{{Field: "status", Op: "search", Value: tc.value}}, Limit: limit, Desc: desc, Owner: owner}); ; {
						page, err := s.List(context.Background(), "ticket", q)
						if err != nil {
							t.Fatal(err)
						}
						for _, it := range page.Items {
							got = append(got, it.ID)
						}
						if q.After = page.Next; page.Next == "" {
							break
						}
					}
					if desc {
						slices.Reverse(got)
					}
					if !slices.Equal(got, want) {
						t.Errorf("search %s in pages of %d (descending %v, owner %q): %d tickets, want %d", tc.value, limit, desc, owner, len(got), len(want))
					}
				}
			}
		}
	}
}

// A user who sees only their own items lists them by the index by owner,
// so that their page costs what their items cost, not what every other
// user's do; an equality on an indexed field still narrows first. Sorted
// by an indexed field, the list walks that index first, for a bounded
// number of rows, and takes the owner's index if that found too few.
func TestOwnListsWalkTheOwnerIndex(t *testing.T) {
	s := indexedStore(t)
	for _, q := range []engine.ListQuery{
		{Owner: "u"},
		{Owner: "u", Desc: true},
		{Owner: "u", After: encodeCursor(cursor{ID: "t00100"})},
		{Owner: "u", Sort: "total"},
		{Owner: "u", Filters: []engine.Filter{{Field: "status", Op: "prefix", Value: "s1"}}},
	} {
		if p := plan(t, s, q); !strings.Contains(p, "USING INDEX instances_owner (type=? AND owner=?") {
			t.Errorf("%+v: %s", q, p)
		}
	}
	for _, q := range []engine.ListQuery{{Owner: "u", Sort: "status"}, {Owner: "u", Sort: "status", Desc: true}} {
		if p := planOf(t, s, q, listMode{walk: true}); !strings.Contains(p, "USING INDEX instances_ticket_status") {
			t.Errorf("%+v, walked: %s", q, p)
		}
		if p := planOf(t, s, q, listMode{}); !strings.Contains(p, "USING INDEX instances_owner (type=? AND owner=?") {
			t.Errorf("%+v, by owner: %s", q, p)
		}
	}
	if p := plan(t, s, engine.ListQuery{Owner: "u", Filters: []engine.Filter{{Field: "status", Op: "eq", Value: "s03"}}}); !strings.Contains(p, "instances_ticket_status (<expr>=?)") {
		t.Errorf("eq on status: %s", p)
	}
	if p := plan(t, s, engine.ListQuery{Owner: "u", Filters: []engine.Filter{{Op: "eq", Value: "t1", OnID: true}}}); !strings.Contains(p, "(type=? AND id=?)") {
		t.Errorf("eq on the id: %s", p)
	}
}

// An own list sorted by an indexed field pages through every item of its
// user once, in order, in either direction: for a user owning most of the
// type (the walk fills each page) as for one owning a few items spread
// thinly among the others' (the walk finds too few, the owner's index the
// page).
func TestOwnSortedListPagesInOrder(t *testing.T) {
	s := indexedStore(t)
	// Every 97th ticket is v's; the rest stay u's.
	if _, err := s.w.Exec(`UPDATE instances SET owner = 'v' WHERE type = 'ticket' AND CAST(substr(id, 2) AS INTEGER) % 97 = 0`); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"u", "v"} {
		rows, err := s.r.Query(`SELECT id FROM instances WHERE type = 'ticket' AND owner = ?
			ORDER BY json_extract(state, '$.status'), id`, owner)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		rows.Close()
		if owner == "v" && (len(want) < 20 || len(want) > 40) {
			t.Fatalf("v owns %d tickets", len(want))
		}
		for _, desc := range []bool{false, true} {
			got := allPages(t, s, engine.ListQuery{Owner: owner, Sort: "status", Desc: desc, Limit: 7})
			inOrder(t, fmt.Sprintf("%s, desc %v", owner, desc), got, want, desc)
		}
	}
}

// Walking the index gives the same pages as sorting: nulls first
// ascending, ties broken by id, every item once, in either direction.
func TestSortedListPagesThroughTheIndexInOrder(t *testing.T) {
	s := indexedStore(t)
	rows, err := s.r.Query(`SELECT id, coalesce(json_extract(state, '$.status'), '') FROM instances WHERE type = 'ticket'`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ id, status string }
	var want []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.status); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	rows.Close()
	sort.Slice(want, func(i, j int) bool {
		if want[i].status != want[j].status {
			return want[i].status < want[j].status // "" (no status) first
		}
		return want[i].id < want[j].id
	})
	ids := make([]string, len(want))
	for i, r := range want {
		ids[i] = r.id
	}
	for _, desc := range []bool{false, true} {
		got := allPages(t, s, engine.ListQuery{Sort: "status", Desc: desc, Limit: 97, Fields: []string{"status"}})
		inOrder(t, fmt.Sprintf("desc %v", desc), got, ids, desc)
	}
}

// allPages lists the ids of q's items, page after page.
func allPages(t *testing.T, s *Store, q engine.ListQuery) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		page, err := s.List(context.Background(), "ticket", q)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.Next == "" {
			return got
		}
		q.After = page.Next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

// inOrder fails the test unless got is want, or want reversed with desc.
func inOrder(t *testing.T, name string, got, want []string, desc bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d items, want %d", name, len(got), len(want))
	}
	for i := range got {
		w := want[i]
		if desc {
			w = want[len(want)-1-i]
		}
		if got[i] != w {
			t.Fatalf("%s: item %d is %s, want %s", name, i, got[i], w)
		}
	}
}

// TestPagesSortedByWholeNumbersBeyondFloats: sorted by whole numbers
// beyond 2^53 (timestamps in nanoseconds), a list pages through every
// item once, in order: a cursor keeps its number as written, not as the
// float64 nearest to it, from which the next page would start again.
func TestPagesSortedByWholeNumbersBeyondFloats(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "big.db"), Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const base = int64(1763900000000000000)
	var insts []engine.Instance
	for i := range 6 {
		insts = append(insts, engine.Instance{Type: "v", ID: fmt.Sprintf("i%d", i), Seq: 1, Owner: "u",
			State: []byte(fmt.Sprintf(`{"t":%d}`, base+int64(5-i)))})
	}
	if err := st.ReplaceView(ctx, "v", insts); err != nil {
		t.Fatal(err)
	}
	for _, desc := range []bool{false, true} {
		q := engine.ListQuery{Sort: "t", Desc: desc, Limit: 1}
		var seen []string
		for range 12 {
			page, err := st.List(ctx, "v", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				seen = append(seen, it.ID)
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
		want := "i5 i4 i3 i2 i1 i0"
		if desc {
			want = "i0 i1 i2 i3 i4 i5"
		}
		if got := strings.Join(seen, " "); got != want {
			t.Errorf("desc %v: pages %s, want %s", desc, got, want)
		}
	}
}
