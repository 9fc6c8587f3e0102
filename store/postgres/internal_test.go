package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/store/postgres/pgtest"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

type planThing struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// openInternal opens a store in a schema of its own, dropped at the end.
func openInternal(t *testing.T) *Store {
	t.Helper()
	url := pgtest.URL(t)
	ctx := context.Background()
	schema := pgtest.FreshSchema(t, url)
	st, err := Open(ctx, url, Options{Schema: schema})
	if err != nil {
		t.Fatalf("%v\nRun scripts/ensure-postgres to install and start PostgreSQL with database \"test\".", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestListUsesIndexes checks that the SQL List builds matches the expression
// indexes EnsureIndexes creates: with sequential scans off, the planner picks
// the field's index for its filters and its order.
func TestListUsesIndexes(t *testing.T) {
	ctx := context.Background()
	st := openInternal(t)
	def := plait.NewAggregate[planThing]("thing", plait.Indexed[planThing]("n", "name"))
	if err := st.EnsureIndexes(ctx, []plait.Definition{def}); err != nil {
		t.Fatal(err)
	}
	// Some rows, so that the plans are not those of an empty table.
	var batch []*engine.Processed
	for i := 0; i < 300; i++ {
		id := string(rune('a'+i%26)) + strconv.Itoa(i)
		state := `{"name":"` + id + `","n":` + strconv.Itoa(i%50) + `}`
		cmd := plait.Command{ID: "c" + id, Type: "thing", AggregateID: id, Name: "set", CorrelationID: "c" + id, At: time.Now()}
		batch = append(batch, &engine.Processed{
			Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted},
			Instance: &engine.Instance{Type: "thing", ID: id, Seq: 1, State: []byte(state), UpdatedAt: time.Now()},
		})
	}
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := st.pool.Exec(ctx, `ANALYZE `+st.table("instances")); err != nil {
		t.Fatal(err)
	}
	after := encodeCursor(cursor{Value: []byte("3"), ID: "x", Order: "-n"})
	for _, tc := range []struct {
		q       engine.ListQuery
		index   string
		ordered bool // the index gives the order: no sort step
	}{
		{engine.ListQuery{Sort: "n"}, "instances_thing_n", true},
		{engine.ListQuery{Sort: "n", Desc: true, After: after}, "instances_thing_n", true},
		{engine.ListQuery{Sort: "n", Filters: []engine.Filter{{Field: "n", Op: "eq", Value: "3"}}}, "instances_thing_n", true},
		{engine.ListQuery{Filters: []engine.Filter{{Field: "n", Op: "eq", Value: "3"}}}, "instances_thing_n", false},
		{engine.ListQuery{Filters: []engine.Filter{{Field: "name", Op: "prefix", Value: "ab"}}}, "instances_thing_name", false},
		{engine.ListQuery{Sort: "name", Filters: []engine.Filter{{Field: "name", Op: "prefix", Value: "ab"}}}, "instances_thing_name", true},
	} {
		query, args, _, err := st.listQuery("thing", tc.q, false)
		if err != nil {
			t.Fatal(err)
		}
		var plan string
		err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
			settings := `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off`
			if tc.ordered {
				settings += `; SET LOCAL enable_sort = off`
			}
			if _, err := tx.Exec(ctx, settings); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			plan = strings.Join(lines, "\n")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, " using "+tc.index+" on ") || (tc.ordered && strings.Contains(plan, "Sort")) {
			t.Errorf("%+v: want a scan of %s (ordered: %v), got plan:\n%s", tc.q, tc.index, tc.ordered, plan)
		}
	}
}

func processed(id string) *engine.Processed {
	cmd := plait.Command{ID: id, Type: "thing", AggregateID: id, Name: "set", CorrelationID: id, At: time.Now()}
	return &engine.Processed{
		Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted,
			Events: []plait.Event{{ID: plait.EventID(id, 0), Type: "thing", AggregateID: id, Seq: 1, Name: "set",
				Data: []byte(`{}`), CorrelationID: id, CausationID: id, At: cmd.At}}},
		Instance: &engine.Instance{Type: "thing", ID: id, Seq: 1, State: []byte(`{}`), UpdatedAt: cmd.At},
	}
}

// TestCommittedResolvesAnAmbiguousCommit: when the connection fails during
// COMMIT, committed tells whether the transaction went through, waiting for
// it if it is still in flight.
func TestCommittedResolvesAnAmbiguousCommit(t *testing.T) {
	ctx := context.Background()
	st := openInternal(t)
	done := processed("done")
	if err := st.Commit(ctx, []*engine.Processed{done}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.committed(ctx, []*engine.Processed{done}); err != nil || !ok {
		t.Fatalf("committed(done) = %v, %v", ok, err)
	}
	never := processed("never")
	never.Outcome.Position = 99
	if ok, err := st.committed(ctx, []*engine.Processed{never}); err != nil || ok {
		t.Fatalf("committed(never) = %v, %v", ok, err)
	}

	// A transaction that has written its batch but not yet committed, as
	// one whose client vanished mid-COMMIT may be.
	for _, commit := range []bool{true, false} {
		p := processed(fmt.Sprintf("inflight-%v", commit))
		tx, err := st.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue(st.sql.advance, 2)
		queueBatch(b, &st.sql, &st.search, []*engine.Processed{p}, 2)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		answer := make(chan bool, 1)
		go func() {
			ok, err := st.committed(ctx, []*engine.Processed{p})
			if err != nil {
				t.Error(err)
			}
			answer <- ok
		}()
		select {
		case <-answer:
			t.Fatal("committed answered while the transaction was still open")
		case <-time.After(200 * time.Millisecond):
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if ok := <-answer; ok != commit {
			t.Fatalf("committed = %v for a transaction that committed: %v", ok, commit)
		}
		if commit && (p.Outcome.Events[0].Position != 3 || p.Outcome.Position != 4) {
			t.Fatalf("positions %d, %d after committed, want 3, 4", p.Outcome.Events[0].Position, p.Outcome.Position)
		}
	}
}

func TestBytewise(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		collate  string
		provider *string
		want     bool
	}{
		{"C", nil, true}, {"C.UTF-8", str("c"), true}, {"POSIX", str("c"), true},
		{"en_US.UTF-8", str("c"), false}, {"C", str("i"), false}, {"C.UTF-8", str("b"), true},
	} {
		if got := bytewise(tc.collate, tc.provider); got != tc.want {
			t.Errorf("bytewise(%q, %v) = %v", tc.collate, tc.provider, got)
		}
	}
	if !openInternal(t).bytewise {
		t.Error("the test database (C.UTF-8) is not taken as bytewise")
	}
}

// TestPrefixWithoutBytewiseCollation: under a linguistic collation a prefix
// filter cannot be an index range; it must still match exactly the same.
func TestPrefixWithoutBytewiseCollation(t *testing.T) {
	ctx := context.Background()
	st := openInternal(t)
	var batch []*engine.Processed
	for i, name := range []string{"ab", "a-b", "abc", "b", "A", "a", "äb"} {
		p := processed(fmt.Sprintf("p%d", i))
		p.Instance.State = []byte(fmt.Sprintf(`{"name":%q}`, name))
		batch = append(batch, p)
	}
	p := processed("p-number")
	p.Instance.State = []byte(`{"name":12}`)
	batch = append(batch, p)
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"a", "ab", "a-", "", "ä", "1", "\U0010FFFF"} {
		var got [2][]string
		for i, bw := range []bool{true, false} {
			st.bytewise = bw
			page, err := st.List(ctx, "thing", engine.ListQuery{Filters: []engine.Filter{{Field: "name", Op: "prefix", Value: prefix}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				got[i] = append(got[i], it.ID)
			}
		}
		if strings.Join(got[0], " ") != strings.Join(got[1], " ") {
			t.Errorf("prefix %q: %v as a range, %v without", prefix, got[0], got[1])
		}
	}
}

func TestAfterPrefix(t *testing.T) {
	for _, tc := range []struct {
		p, want string
		ok      bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"é", "ê", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF\U0010FFFF", "", false},
		{"x\uD7FF", "x\uE000", true},
		{"\U0001F600", "\U0001F601", true},
	} {
		if got, ok := afterPrefix(tc.p); got != tc.want || ok != tc.ok {
			t.Errorf("afterPrefix(%+q) = %+q, %v; want %+q, %v", tc.p, got, ok, tc.want, tc.ok)
		}
	}
}
