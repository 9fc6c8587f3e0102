package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// TestAKeyMadeMeanwhileByAnotherWriterIsReturned: two instances make the
// key of one subject at once. The one whose insert waits on the other's
// gets the other's key, not an error.
func TestAKeyMadeMeanwhileByAnotherWriterIsReturned(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Key(ctx, "someone-else", true); err != nil { // the key table exists
		t.Fatal(err)
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	theirs := bytes.Repeat([]byte{7}, 32)
	table := pgx.Identifier{schema, "subject_keys"}.Sanitize()
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (subject, key) VALUES ('s1', $1)`, theirs); err != nil {
		t.Fatal(err)
	}
	type result struct {
		key []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		key, _, err := st.Key(ctx, "s1", true)
		got <- result{key, err}
	}()
	// Our insert waits on theirs: then theirs commits.
	for {
		var waiting bool
		err := st.Pool().QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO%subject_keys%ON CONFLICT%'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the second insert never waited on the first")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || !bytes.Equal(r.key, theirs) {
		t.Fatalf("Key of a subject made meanwhile: %x, %v; want the other writer's key", r.key, r.err)
	}
}
