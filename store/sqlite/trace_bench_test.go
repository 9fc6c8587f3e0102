package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkSubmitTracing is the engine's command path with tracing off and
// on, over a store that does not fsync, so that what the engine spends on
// each command, not the disk, is measured. Tracing on exports every span
// to an exporter that drops them, behind the usual batching processor.
func BenchmarkSubmitTracing(b *testing.B) {
	for _, tracing := range []string{"off", "on"} {
		for _, par := range []int{1, 64} {
			b.Run(fmt.Sprintf("tracing=%s/submitters=%d", tracing, par), func(b *testing.B) {
				var tp trace.TracerProvider
				if tracing == "on" {
					sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
					b.Cleanup(func() { sdk.Shutdown(context.Background()) })
					tp = sdk
				}
				st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: "OFF"})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				app := plait.App{Name: "bench", Aggregates: []plait.Definition{enginetest.CounterType}}
				e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TracerProvider: tp})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- e.Run(ctx) }()
				<-e.Ready()
				b.Cleanup(func() { cancel(); <-done })
				var next atomic.Int64
				submit := func() error {
					i := next.Add(1)
					cmd := plait.Command{Type: "counter", AggregateID: "a" + strconv.FormatInt(i%1000, 10), Name: "add", Data: json.RawMessage(`{"by":1}`)}
					_, err := e.Submit(context.Background(), cmd, benchUser)
					return err
				}
				b.ReportAllocs()
				b.ResetTimer()
				measureCPU(b)
				if par == 1 {
					for i := 0; i < b.N; i++ {
						if err := submit(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
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
			})
		}
	}
}
