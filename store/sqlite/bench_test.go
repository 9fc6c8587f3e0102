package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// The hot paths of the embedded mode, on a file in the test's temporary
// directory with the default synchronous=FULL:
//
//	go test ./store/sqlite -run '^$' -bench . -benchtime 3s

func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// startBench runs an engine with the counter type alone (no reactor, so one
// command is one commit of one event) and returns it.
func startBench(b *testing.B, st *sqlite.Store) *engine.Engine {
	b.Helper()
	app := plait.App{Name: "bench", Aggregates: []plait.Definition{enginetest.CounterType}}
	e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	b.Cleanup(func() { cancel(); <-done })
	return e
}

var benchUser = plait.User{ID: "bench"}

// BenchmarkSubmit is the engine's durable command path: Submit returns once
// the command's event, state and dedup record are committed and fsynced.
// With ids=client each command carries its own id; with ids=minted it
// carries none and the engine makes one. Either is looked up for dedup,
// which for a new id the store's command filter answers without a read.
func BenchmarkSubmit(b *testing.B) {
	for _, ids := range []string{"client", "minted"} {
		for _, par := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("ids=%s/submitters=%d", ids, par), func(b *testing.B) {
				e := startBench(b, openBench(b))
				ctx := context.Background()
				var next atomic.Int64
				submit := func() error {
					i := next.Add(1)
					cmd := plait.Command{Type: "counter", AggregateID: "a" + strconv.FormatInt(i%1000, 10), Name: "add", Data: json.RawMessage(`{"by":1}`)}
					if ids == "client" {
						cmd.ID = "p" + strconv.FormatInt(i, 10)
					}
					_, err := e.Submit(ctx, cmd, benchUser)
					return err
				}
				b.ResetTimer()
				measureCPU(b)
				if par == 1 {
					for i := 0; i < b.N; i++ {
						if err := submit(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					// RunParallel starts parallelism × GOMAXPROCS goroutines.
					b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := submit(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
				reportCommits(b, e)
			})
		}
	}
}

// measureCPU reports the process's CPU time per operation when b ends.
func measureCPU(b *testing.B) {
	start := cpuTime()
	b.Cleanup(func() {
		if d := cpuTime() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Microseconds())/float64(b.N), "cpu-µs/op")
		}
	})
}

// reportCommits reports the group commit's average batch and duration.
func reportCommits(b *testing.B, e *engine.Engine) {
	s := e.Stats()
	if s.Commits > 0 {
		b.ReportMetric(float64(s.Committed)/float64(s.Commits), "commands/commit")
		b.ReportMetric(float64(s.CommitTime.Microseconds())/float64(s.Commits), "µs/commit")
	}
}

// processed makes an accepted command for a fresh instance, as the engine
// hands it to Commit.
func processed(i int, at time.Time) *engine.Processed {
	id := fmt.Sprintf("c%d", i)
	agg := fmt.Sprintf("a%d", i)
	cmd := plait.Command{ID: id, Type: "counter", AggregateID: agg, Name: "add", Data: json.RawMessage(`{"by":1}`),
		CorrelationID: id, User: "bench", At: at}
	return &engine.Processed{
		Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Owner: "bench", Events: []plait.Event{{
			ID: plait.EventID(id, 0), Type: "counter", AggregateID: agg, Seq: 1, Name: "added",
			Data: json.RawMessage(`{"by":1}`), CorrelationID: id, CausationID: id, User: "bench", At: at,
		}}},
		Instance: &engine.Instance{Type: "counter", ID: agg, Seq: 1, State: json.RawMessage(`{"count":1}`), Owner: "bench", UpdatedAt: at},
	}
}

// BenchmarkCommit is the store's group commit alone: one transaction of
// batch commands, each with one event and one instance record.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st := openBench(b)
			ctx := context.Background()
			at := time.Now().UTC()
			n := 0
			b.ResetTimer()
			measureCPU(b)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				batch := make([]*engine.Processed, size)
				for j := range batch {
					batch[j] = processed(n, at)
					n++
				}
				b.StartTimer()
				if err := st.Commit(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

// fill commits n commands, each on a fresh counter whose count is i%100.
func fill(b *testing.B, st *sqlite.Store, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Now().UTC()
	for i := 0; i < n; i += 500 {
		var batch []*engine.Processed
		for j := i; j < min(n, i+500); j++ {
			p := processed(j, at)
			p.Instance.State = json.RawMessage(fmt.Sprintf(`{"count":%d,"label":"L%d"}`, j%100, j%7))
			batch = append(batch, p)
		}
		if err := st.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFeed reads pages of 256 feed items from random positions of
// a log of 20,000 items, as a reactor or the relay catching up does.
func BenchmarkReadFeed(b *testing.B) {
	st := openBench(b)
	fill(b, st, 10000)
	ctx := context.Background()
	head, err := st.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		items, err := st.ReadFeed(ctx, rng.Int64N(head-256), 256)
		if err != nil || len(items) != 256 {
			b.Fatalf("%d items, %v", len(items), err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkList runs list queries over 10,000 counters with the "count"
// index and the index of the labels' search keys: a page sorted by the
// indexed field, an equality filter, and a search (of a seventh of them).
func BenchmarkList(b *testing.B) {
	st := openBench(b)
	ctx := context.Background()
	type labelled struct {
		Label string `json:"label"`
	}
	searchable := plait.NewAggregate("counter", plait.Searchable[labelled]("label"))
	if err := st.EnsureIndexes(ctx, []plait.Definition{enginetest.CounterType, searchable}); err != nil {
		b.Fatal(err)
	}
	fill(b, st, 10000)
	queries := map[string]engine.ListQuery{
		"sorted":   {Sort: "count", Desc: true, Limit: 50, Fields: []string{"count"}},
		"eq":       {Filters: []engine.Filter{{Field: "count", Op: "eq", Value: "42"}}, Limit: 50},
		"byID":     {Limit: 50},
		"search":   {Filters: []engine.Filter{{Field: "label", Op: "search", Value: "l3"}}, Limit: 50},
		"nextPage": {Sort: "count", Limit: 50},
	}
	for name, q := range queries {
		b.Run(name, func(b *testing.B) {
			if name == "nextPage" {
				page, err := st.List(ctx, "counter", q)
				if err != nil || page.Next == "" {
					b.Fatalf("first page: %v", err)
				}
				q.After = page.Next
			}
			for i := 0; i < b.N; i++ {
				page, err := st.List(ctx, "counter", q)
				if err != nil || len(page.Items) == 0 {
					b.Fatalf("%d items, %v", len(page.Items), err)
				}
			}
		})
	}
}

// BenchmarkOutcome is the dedup lookup every submission makes, for a known
// and an unknown id.
func BenchmarkOutcome(b *testing.B) {
	st := openBench(b)
	fill(b, st, 10000)
	ctx := context.Background()
	b.Run("known", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok, err := st.Outcome(ctx, fmt.Sprintf("c%d", i%10000)); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("unknown", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok, err := st.Outcome(ctx, fmt.Sprintf("x%d", i)); err != nil || ok {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkKnownCommands is the batched dedup lookup a partition makes for
// a batch of new commands: compare with four BenchmarkOutcome/unknown.
func BenchmarkKnownCommands(b *testing.B) {
	st := openBench(b)
	fill(b, st, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids := []string{"c" + strconv.Itoa(i%10000), "x" + strconv.Itoa(i), "y" + strconv.Itoa(i), "z" + strconv.Itoa(i)}
		known, err := st.KnownCommands(ctx, ids)
		if err != nil || len(known) != 1 || !known[ids[0]] {
			b.Fatal(known, err)
		}
	}
}
