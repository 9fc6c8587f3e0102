package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait/store/postgres/pgtest"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
)

// open opens a store in a fresh schema and closes it when t ends.
func open(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	st, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, url
}

// factory opens each contract test's store in a schema of its own.
func factory(url string) enginetest.Factory {
	return func(t *testing.T) enginetest.Opener {
		schema := pgtest.FreshSchema(t, url)
		return func(t *testing.T) engine.Store {
			ctx := context.Background()
			st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.EnsureIndexes(ctx, enginetest.App().Aggregates); err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
}

func TestContract(t *testing.T) {
	enginetest.Run(t, factory(pgtest.URL(t)))
}

// TestContractScaledOut runs the suite with the engine in its scaled-out
// mode: commands go through a partitioned command log, every commit records
// the consumed offset with CommitWithOffsets, a restarted engine resumes each
// partition from the offset the store holds, and the engine follows the
// store's feed.
func TestContractScaledOut(t *testing.T) {
	var mu sync.Mutex
	logs := map[string]*enginetest.MemLog{} // by schema: one log per test, kept across restarts
	enginetest.RunWith(t, factory(pgtest.URL(t)), func(st engine.Store, _ plait.App) engine.Options {
		pg := st.(*postgres.Store)
		mu.Lock()
		defer mu.Unlock()
		l, ok := logs[pg.Schema()]
		if !ok {
			l = enginetest.NewMemLog("commands", 4, nil)
			logs[pg.Schema()] = l
		}
		l.Resume = pg.Offset // the store opened now, after a restart
		return engine.Options{CommandLog: l, Partitions: 4}
	})
}

// TestReadOnlyOpensOnlyAStoreThatExists: a read-only store (another
// application's log, read by a rebuild) opens over a schema that holds a
// store, changes nothing, and refuses a schema that holds none rather than
// create it.
func TestReadOnlyOpensOnlyAStoreThatExists(t *testing.T) {
	ctx := context.Background()
	st, url := open(t)
	ro, err := postgres.New(ctx, st.Pool(), postgres.Options{Schema: st.Schema(), ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only over a store: %v", err)
	}
	if head, err := ro.Head(ctx); err != nil || head != 0 {
		t.Fatalf("the read-only store's head: %d, %v", head, err)
	}
	missing := pgtest.FreshSchema(t, url)
	if _, err := postgres.New(ctx, st.Pool(), postgres.Options{Schema: missing, ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "holds no Plait store") {
		t.Fatalf("read-only over a schema without a store: %v", err)
	}
	var created bool
	if err := st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, missing).Scan(&created); err != nil || created {
		t.Fatalf("the read-only open created schema %s (%v)", missing, err)
	}
}

// TestASchemaOfVersion5GetsFormerOwners: a schema whose events have no
// former owners, as version 5 left it, is read, by a store only reading
// it, with every event of no former owner, and migrated by one that
// writes; the events it held name none, new ones theirs.
func TestASchemaOfVersion5GetsFormerOwners(t *testing.T) {
	ctx := context.Background()
	st, url := open(t)
	w := &writer{st: st}
	moved := w.processed("case", "k", "bob", 1, `{}`, nil)
	moved.OwnerMoved, moved.FormerOwner = true, "ann"
	if err := st.Commit(ctx, []*engine.Processed{moved}); err != nil {
		t.Fatal(err)
	}
	toVersion5(t, st)
	formerOwners := func(st engine.Feed) string { return enginetest.FormerOwners(t, st) }
	ro, err := postgres.New(ctx, st.Pool(), postgres.Options{Schema: st.Schema(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := formerOwners(ro); got != "w1:" {
		t.Errorf("version 5's events, read only: %s", got)
	}
	up, err := postgres.Open(ctx, url, postgres.Options{Schema: st.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if v, err := up.SchemaVersion(ctx); err != nil || v != 7 {
		t.Fatalf("schema version %d (%v), want 7", v, err)
	}
	w.st = up
	moved = w.processed("case", "k", "sue", 2, `{}`, nil)
	moved.OwnerMoved, moved.FormerOwner = true, "bob"
	if err := up.Commit(ctx, []*engine.Processed{moved}); err != nil {
		t.Fatal(err)
	}
	if got := formerOwners(up); got != "w1: w2:bob" {
		t.Errorf("the events once migrated: %s", got)
	}
}

// TestASchemaIsOneApplications: the first application to open a schema
// for itself claims it; another is refused, writing or only reading,
// before anything is changed (a schema to migrate stays at its version); a
// schema of a release before the claim is claimed by the first.
func TestASchemaIsOneApplications(t *testing.T) {
	ctx := context.Background()
	st, url := open(t)
	if _, err := st.Pool().Exec(ctx, `DROP TABLE `+st.Schema()+`.store_meta; DELETE FROM `+st.Schema()+`.schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	opts := func(app string, readOnly bool) postgres.Options {
		return postgres.Options{Schema: st.Schema(), Application: app, ReadOnly: readOnly}
	}
	if _, err := postgres.New(ctx, st.Pool(), opts("helpdesk", true)); err != nil {
		t.Errorf("a schema of an earlier release, read by any application: %v", err)
	}
	for range 2 {
		up, err := postgres.New(ctx, st.Pool(), opts("orderdesk", false))
		if err != nil {
			t.Fatalf("orderdesk opens the schema: %v", err)
		}
		if v, err := up.SchemaVersion(ctx); err != nil || v != 7 {
			t.Fatalf("schema version %d (%v), want 7", v, err)
		}
	}
	// Another, on the schema as a program of a later version finds it,
	// with a migration to apply: refused, and the schema left as it is.
	if _, err := st.Pool().Exec(ctx, `DELETE FROM `+st.Schema()+`.schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		_, err := postgres.New(ctx, st.Pool(), opts("helpdesk", readOnly))
		if !errors.Is(err, engine.ErrOtherApplication) || !strings.Contains(err.Error(), `application "orderdesk", not "helpdesk"`) {
			t.Errorf("helpdesk on orderdesk's schema (read-only %v): %v", readOnly, err)
		}
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v != 6 {
		t.Errorf("the refused open moved the schema to version %d (%v)", v, err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO `+st.Schema()+`.schema_migrations (version, name) VALUES (7, 'store meta')`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{Schema: st.Schema()}); err != nil {
		t.Errorf("opened for no application in particular: %v", err)
	}
}

// TestAMigrationGivesWayToALongRead: a migration that alters the events
// table while a long transaction reads it does not hold the commits of a
// store already running behind it for as long as the read lasts; it gives
// way, and is done once the read ends.
func TestAMigrationGivesWayToALongRead(t *testing.T) {
	ctx := context.Background()
	st, url := open(t)
	toVersion5(t, st)
	endRead := readLong(t, st)
	var n int
	migrated := make(chan error, 1)
	go func() {
		up, err := postgres.Open(ctx, url, postgres.Options{Schema: st.Schema()})
		if err == nil {
			up.Close()
		}
		migrated <- err
	}()
	time.Sleep(300 * time.Millisecond) // the migration waits for the reader
	// Every other use of the table (the commits of processes still
	// running, their reads) goes on meanwhile: within a moment, not once
	// the long read is done.
	begun := time.Now()
	for range 3 {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := st.Pool().QueryRow(cctx, `SELECT count(*) FROM `+st.Schema()+`.events`).Scan(&n)
		cancel()
		if err != nil {
			t.Fatalf("a read while the migration waits: %v", err)
		}
	}
	if took := time.Since(begun); took > 1500*time.Millisecond {
		t.Errorf("three reads took %v while the migration waited for the long one", took)
	}
	select {
	case err := <-migrated:
		t.Fatalf("the migration ended while the reader read: %v", err)
	default:
	}
	endRead()
	if err := <-migrated; err != nil {
		t.Fatalf("the migration once the read ended: %v", err)
	}
}

// TestAMigrationThatKeepsGivingWaySaysWhy: a migration that gives way
// until its context ends says what it waited for, and leaves the schema at
// its version.
func TestAMigrationThatKeepsGivingWaySaysWhy(t *testing.T) {
	ctx := context.Background()
	st, url := open(t)
	toVersion5(t, st)
	endRead := readLong(t, st)
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err := postgres.Open(short, url, postgres.Options{Schema: st.Schema()})
	if err == nil || !strings.Contains(err.Error(), "gave way") || !strings.Contains(err.Error(), "pg_stat_activity") {
		t.Fatalf("a migration that kept giving way: %v", err)
	}
	endRead()
	if v, err := st.SchemaVersion(ctx); err != nil || v != 5 {
		t.Errorf("schema version %d (%v), want 5 still", v, err)
	}
}

// toVersion5 takes the schema of st back to version 5, as an earlier
// release left it: no former owners, no record of its application.
func toVersion5(t *testing.T, st *postgres.Store) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), `ALTER TABLE `+st.Schema()+`.events DROP COLUMN former_owner;
		DROP TABLE `+st.Schema()+`.store_meta;
		DELETE FROM `+st.Schema()+`.schema_migrations WHERE version >= 6`); err != nil {
		t.Fatal(err)
	}
}

// readLong begins a transaction that reads st's events table, and holds
// its lock until end is called (or the test ends).
func readLong(t *testing.T, st *postgres.Store) (end func()) {
	t.Helper()
	ctx := context.Background()
	reader, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	end = func() { reader.Rollback(ctx) }
	t.Cleanup(end)
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM `+st.Schema()+`.events`); err != nil {
		t.Fatal(err)
	}
	return end
}
