package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/plaithq/plait/store/postgres/pgtest"

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
	enginetest.RunWith(t, factory(pgtest.URL(t)), func(st engine.Store) engine.Options {
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
