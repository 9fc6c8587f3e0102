package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// TestASearchReadsTheKeysIndex: in the ids' order, as sorted by a field, a
// search of a rare key reads the index of the keys rather than walk every
// instance of the type, with the planner's statistics of the table.
func TestASearchReadsTheKeysIndex(t *testing.T) {
	ctx := context.Background()
	st := openInternal(t)
	type person struct {
		Name string `json:"name"`
	}
	def := plait.NewAggregate("person", plait.Searchable[person]("name"), plait.Indexed[person]("name"))
	if err := st.EnsureIndexes(ctx, []plait.Definition{def}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.pool.Exec(ctx, `INSERT INTO `+st.table("instances")+` (type, id, seq, state, owner, updated_at, search)
		SELECT 'person', 'p' || lpad(i::text, 6, '0'), 1, jsonb_build_object('name', 'Name ' || i), 'u', now(),
			jsonb_build_object('name', 'name ' || i, '@seq', 1)
		FROM generate_series(1, 100000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.pool.Exec(ctx, `ANALYZE `+st.table("instances")); err != nil {
		t.Fatal(err)
	}
	search := []engine.Filter{{Field: "name", Op: "search", Value: "NAME 99999"}}
	for _, q := range []engine.ListQuery{{Filters: search}, {Filters: search, Desc: true}, {Filters: search, Sort: "name"}} {
		query, args, _, err := st.listQuery("person", q, false)
		if err != nil {
			t.Fatal(err)
		}
		if plan := explain(t, st, query, args...); !strings.Contains(plan, st.searchIndexName("person", "name")) {
			t.Errorf("%+v: want a read of the keys' index, got plan:\n%s", q, plan)
		}
		page, err := st.List(ctx, "person", q)
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != "p099999" {
			t.Errorf("%+v: %v, %v", q, page.Items, err)
		}
	}
	// At the next start, the instances whose keys are stale are found by
	// their index, which holds none here, not by a scan of the type.
	if plan := explain(t, st, "SELECT id FROM "+st.table("instances")+" WHERE type = 'person' AND "+staleKeys([]string{"name"})); !strings.Contains(plan, st.staleIndexName("person")) {
		t.Errorf("the stale keys: plan:\n%s", plan)
	}

	// A broad search finds its page in a short walk of the primary key,
	// and the next page from its cursor.
	broad := engine.ListQuery{Filters: []engine.Filter{{Field: "name", Op: "search", Value: "name 1"}}, Limit: 5}
	query, args, _, err := st.listQuery("person", broad, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan := explain(t, st, query, args...); !strings.Contains(plan, "instances_pkey") || strings.Contains(plan, "Seq Scan") {
		t.Errorf("the walk of a broad search: plan:\n%s", plan)
	}
	var got []string
	for range 2 {
		page, err := st.List(ctx, "person", broad)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		broad.After = page.Next
	}
	if want := "[p000001 p000010 p000011 p000012 p000013 p000014 p000015 p000016 p000017 p000018]"; fmt.Sprint(got) != want {
		t.Errorf("two pages of the broad search: %v, want %s", got, want)
	}
}

// explain is the plan of query, as the planner chooses it.
func explain(t *testing.T, st *Store, query string, args ...any) string {
	t.Helper()
	rows, err := st.pool.Query(context.Background(), "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
