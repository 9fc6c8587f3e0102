package bench_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/bench"
)

func TestQuickReportHasEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	ctx := context.Background()
	rep, err := bench.Measure(ctx, bench.Options{Dir: t.TempDir(), Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"raw-1", "raw-1000", "engine-1", "engine-16", "engine-64", "http-json", "http-post", "http-json-1", "http-wait", "sse-echo", "http-sse", "view-lag"}
	for _, key := range want {
		row, ok := rep.Row(key)
		if !ok {
			t.Errorf("no row %s", key)
			continue
		}
		if row.Rate <= 0 || row.Count <= 0 || row.P50 <= 0 || row.P99 < row.P50 || row.Unit == "" || row.Name == "" {
			t.Errorf("row %s = %+v: want positive figures", key, row)
		}
	}
	for _, row := range rep.Rows {
		if row.Rate <= 0 || row.Count <= 0 {
			t.Errorf("row %s = %+v: want positive figures", row.Key, row)
		}
	}
	// Every figure but the raw baselines stands beside one measured in
	// the same run (relay-idle, memory per connection, against its target).
	baselines := map[string]bool{"raw-1": true, "raw-1000": true, "http-json": true, "http-json-1": true, "sse-echo": true, "raw-read": true, "relay-idle": true}
	for _, row := range rep.Rows {
		if baselines[row.Key] {
			continue
		}
		if len(row.Baselines)+len(row.LatencyBaselines) == 0 {
			t.Errorf("row %s has no baseline", row.Key)
		}
		for _, b := range append(slices.Clone(row.Baselines), row.LatencyBaselines...) {
			if _, ok := rep.Row(b); !ok {
				t.Errorf("row %s's baseline %s is not in the report", row.Key, b)
			}
		}
	}
	for _, key := range []string{"raw-read", "replay", "rebuild"} { // rates without latencies
		if row, ok := rep.Row(key); !ok || row.Rate <= 0 || row.Count <= 0 {
			t.Errorf("row %s = %+v, %v: want positive figures", key, row, ok)
		}
	}
	if len(rep.Ratios) != 4 {
		t.Fatalf("ratios = %+v, want four", rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if r.Value <= 0 || r.Target <= 0 {
			t.Errorf("ratio %+v: want positive", r)
		}
	}

	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, row := range rep.Rows {
		if !strings.Contains(text, row.Key) || !strings.Contains(text, row.Name) {
			t.Errorf("the table lacks row %s:\n%s", row.Key, text)
		}
	}
	// The columns line up, however long a figure's name.
	lines := strings.Split(text, "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "figure ") })
	if header < 0 {
		t.Fatalf("no header line:\n%s", text)
	}
	rateEnd := strings.Index(lines[header], "rate") + len("rate")
	for _, l := range lines[header+1 : header+1+len(rep.Rows)] {
		if len(l) < rateEnd || l[rateEnd-1] == ' ' || (len(l) > rateEnd && l[rateEnd] != ' ') {
			t.Errorf("the rate does not end under the header's:\n%s\n%s", lines[header], l)
		}
	}
	for _, r := range rep.Ratios {
		if !strings.Contains(text, r.Name) {
			t.Errorf("the table lacks ratio %q:\n%s", r.Name, text)
		}
	}
	t.Logf("\n%s", text)
}

func TestRunWritesTheReportAndCleansUp(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a few seconds")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := bench.Run(context.Background(), &out, bench.Options{Dir: dir, Quick: true, Submitters: []int{4}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"raw-1 ", "raw-1000", "engine-4", "commands/s", "rows/s", "target"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 0 {
		t.Errorf("left %d entries in %s (%v)", len(left), dir, err)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := bench.Run(ctx, new(bytes.Buffer), bench.Options{Dir: t.TempDir(), Duration: time.Minute})
	if err == nil {
		t.Fatal("a cancelled run returned no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to stop", d)
	}
}

// TestFullReport prints the full report; it runs only when asked:
//
//	PLAIT_BENCH_FULL=1 go test ./bench -run TestFullReport -v -timeout 10m
//
// PLAIT_BENCH_DIR and PLAIT_BENCH_DURATION set Options.Dir and
// Options.Duration.
func TestFullReport(t *testing.T) {
	if os.Getenv("PLAIT_BENCH_FULL") == "" {
		t.Skip("set PLAIT_BENCH_FULL=1 to run the full report")
	}
	d, _ := time.ParseDuration(os.Getenv("PLAIT_BENCH_DURATION"))
	if err := bench.Run(context.Background(), os.Stdout, bench.Options{Dir: os.Getenv("PLAIT_BENCH_DIR"), Duration: d, Progress: os.Stderr}); err != nil {
		t.Fatal(err)
	}
}
