package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/plaithq/plait/store/postgres/pgtest"

	"github.com/plaithq/plait/bench"
)

// TestScaledReportHasEveryFigure runs the scaled-out figures briefly on
// kfake and the test PostgreSQL server, and checks every figure measured
// something.
func TestScaledReportHasEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	url := pgtest.URL(t)
	ctx := context.Background()
	rep, err := bench.MeasureScaled(ctx, bench.ScaledOptions{Options: bench.Options{Duration: 400 * time.Millisecond},
		Brokers: []string{"kfake"}, PostgresURL: url, Partitions: []int{1, 2}, Submitters: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"raw-kafka", "plait-cmd-1", "plait-cmd-2", "raw-pg-upsert", "plait-view", "plait-view-topics"} {
		row, ok := rep.Row(key)
		if !ok {
			t.Errorf("no row %s", key)
			continue
		}
		if row.Rate <= 0 || row.Count <= 0 || row.Unit == "" || row.Name == "" {
			t.Errorf("row %s = %+v: want positive figures", key, row)
		}
	}
	if len(rep.Notes) != 1 {
		t.Errorf("notes = %q, want the 1 → 2 partitions ratio", rep.Notes)
	}
}
