package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
)

// BenchmarkCommit commits batches of n commands, each with one event and a
// new instance record, as the engine's group commit does: one transaction
// per batch. Run it with
//
//	go test -run '^$' -bench Commit -benchtime 3s ./store/postgres/
//
// commands/s is the figure to compare with the baseline.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			st, _ := open(b)
			w := &writer{st: st}
			ctx := context.Background()
			batches := make([][]*engine.Processed, b.N)
			for i := range batches {
				for k := 0; k < n; k++ {
					batches[i] = append(batches[i], w.processed("thing", fmt.Sprintf("i%d-%d", i, k), "u", 1,
						`{"name":"customer name","n":42,"lines":[{"sku":"A-1","qty":2,"price":9.5}]}`, nil))
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := st.Commit(ctx, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

// BenchmarkBaselineUpsert is the raw pgx baseline for BenchmarkCommit: the
// same number of JSONB rows upserted in one transaction per batch, with one
// unnest statement, and no log, dedup record or positions.
func BenchmarkBaselineUpsert(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			st, _ := open(b)
			ctx := context.Background()
			table := pgx.Identifier{st.Schema(), "baseline"}.Sanitize()
			if _, err := st.Pool().Exec(ctx, `CREATE TABLE `+table+` (id text PRIMARY KEY, doc jsonb NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			doc := `{"name":"customer name","n":42,"lines":[{"sku":"A-1","qty":2,"price":9.5}]}`
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ids, docs := make([]string, n), make([]string, n)
				for k := range ids {
					ids[k], docs[k] = fmt.Sprintf("i%d-%d", i, k), doc
				}
				err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, doc) SELECT id, doc::jsonb FROM unnest($1::text[], $2::text[]) AS u(id, doc)
						ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, ids, docs)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

// BenchmarkEngineSubmit submits commands through the whole engine on
// PostgreSQL (partitions, group commit, the tally reactor's view commands),
// from 64 concurrent clients, each command to its own instance; a submission
// returns once its outcome is durable.
//
//	go test -run '^$' -bench EngineSubmit -benchtime 5s ./store/postgres/
func BenchmarkEngineSubmit(b *testing.B) {
	st, _ := open(b)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	e, err := engine.New(enginetest.App(), st, engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	var n atomic.Int64
	user := plait.User{ID: "bench"}
	b.SetParallelism(32) // 64 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			cmd := plait.Command{Type: "counter", AggregateID: fmt.Sprintf("a%d", i), Name: "add", Data: json.RawMessage(`{"by":1}`)}
			if _, err := e.Submit(context.Background(), cmd, user); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
	b.StopTimer()
	stop()
	<-done
}
