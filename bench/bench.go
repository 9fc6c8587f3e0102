// Package bench produces the report of `plait bench`: the embedded engine's
// durable throughput and latency, each figure beside a raw baseline measured
// in the same run, on the same disk.
//
// The baselines are raw SQLite inserts of event-shaped rows (the events
// table of package store/sqlite, through modernc.org/sqlite directly, WAL,
// synchronous=FULL) in transactions of 1 and of 1000 rows. The figures are
// the engine's durable command throughput on store/sqlite with 1, 16 and 64
// concurrent submitters, with p50 and p99 latency, and two ratios with their
// targets: engine@64 / raw 1000-row (at least 40%) and engine@64 / raw 1-row
// (at least 15×). When the HTTP API is built in, the report adds its figures
// beside a trivial JSON handler served by the same binary.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a run. The zero value runs the full report in a temporary
// directory under os.TempDir.
type Options struct {
	// Dir is where the temporary SQLite files go; every figure is measured
	// on this disk. A fresh directory is made inside it and removed at the
	// end. Default os.TempDir().
	Dir string
	// Duration is how long each figure is measured, after a warm-up of a
	// fifth of it (default 3s).
	Duration time.Duration
	// Quick measures each figure for a moment only: a smoke run whose
	// numbers are rough.
	Quick bool
	// Submitters are the engine's concurrency levels (default 1, 16, 64).
	// The ratios use the highest.
	Submitters []int
	// Progress, when set, receives a line as each figure starts.
	Progress io.Writer
	// RelayClients is how many SSE clients the relay figures open (see
	// relay.go; default DefaultRelayClients, 100 when Quick); negative
	// skips them.
	RelayClients int
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Quick {
		o.Duration = 150 * time.Millisecond
	}
	if len(o.Submitters) == 0 {
		o.Submitters = []int{1, 16, 64}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

func (o *Options) warmup() time.Duration {
	if o.Quick {
		return 20 * time.Millisecond
	}
	return o.Duration / 5
}

// Row is one measured figure.
type Row struct {
	// Key names the figure stably, for tests and tools: "raw-1",
	// "raw-1000", "engine-16", "http-json", …
	Key string
	// Name describes it for a person.
	Name string
	// Rate is how many Unit per second.
	Rate float64
	// Unit is what Rate counts, such as "rows/s" or "commands/s".
	Unit string
	// Count is how many operations were measured.
	Count int
	// P50 and P99 are the latency of one operation (a transaction, a
	// submission, a request); zero when not measured.
	P50, P99 time.Duration
	// Baselines are the Keys of the rows this one is compared with, rate
	// to rate; none for a baseline.
	Baselines []string
	// LatencyBaselines are the Keys of the rows this one is compared with
	// by their p50 latency, for a figure that is first a latency.
	LatencyBaselines []string
}

// Ratio compares two rows against a target.
type Ratio struct {
	// Name says what is compared.
	Name string
	// Value is the figure's rate divided by the baseline's.
	Value float64
	// Target is the least Value wanted.
	Target float64
	// Percent shows Value and Target as percentages rather than factors.
	Percent bool
}

// Met reports whether the ratio reaches its target.
func (r Ratio) Met() bool { return r.Value >= r.Target }

func (r Ratio) format(v float64) string {
	if r.Percent {
		return fmt.Sprintf("%.0f%%", 100*v)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "×"
}

// Report is the outcome of a run.
type Report struct {
	// Rows are the figures in the order measured.
	Rows []Row
	// Ratios are the targets checked.
	Ratios []Ratio
	// Notes are remarks printed under the table, such as a section that
	// could not run.
	Notes []string
	// Dir is where the files were, Duration how long each figure ran.
	Dir      string
	Duration time.Duration
	// CPUs is runtime.NumCPU of the machine.
	CPUs int
}

// Row returns the row with key.
func (r *Report) Row(key string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Key == key {
			return row, true
		}
	}
	return Row{}, false
}

// Run measures every figure and writes the report to w as a table.
func Run(ctx context.Context, w io.Writer, opts Options) error {
	rep, err := Measure(ctx, opts)
	if err != nil {
		return err
	}
	return rep.Write(w)
}

// Measure measures every figure and returns the report.
func Measure(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	dir, err := os.MkdirTemp(opts.Dir, "plait-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: make a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	rep := &Report{Dir: dir, Duration: opts.Duration, CPUs: runtime.NumCPU()}
	progress := func(format string, args ...any) { fmt.Fprintf(opts.Progress, format+"\n", args...) }

	for _, n := range []int{1, 1000} {
		progress("raw SQLite inserts, %d rows per transaction…", n)
		row, err := measureRaw(ctx, dir, n, opts)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, row)
	}
	for _, n := range opts.Submitters {
		progress("engine, %d submitters…", n)
		row, err := measureEngine(ctx, dir, n, opts)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, row)
	}
	top := fmt.Sprintf("engine-%d", slices.Max(opts.Submitters))
	eng, _ := rep.Row(top)
	raw1, _ := rep.Row("raw-1")
	raw1000, _ := rep.Row("raw-1000")
	rep.Ratios = append(rep.Ratios,
		Ratio{Name: top + " / raw-1000 (commands/s per row/s)", Value: eng.Rate / raw1000.Rate, Target: 0.40, Percent: true},
		Ratio{Name: top + " / raw-1 (commands/s per row/s)", Value: eng.Rate / raw1.Rate, Target: 15},
	)

	progress("HTTP…")
	if err := measureHTTP(ctx, dir, opts, rep); err != nil {
		return nil, err
	}
	progress("views: lag under load, then a rebuild beside raw reads…")
	if err := measureViews(ctx, dir, opts, rep); err != nil {
		return nil, err
	}
	if err := measureRelay(ctx, dir, opts, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// Write prints the report as a table.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plait bench: %s/%s, %d CPUs, %s; %s per figure; files in %s\n\n",
		runtime.GOOS, runtime.GOARCH, r.CPUs, runtime.Version(), r.Duration, r.Dir)
	width := len("figure")
	for _, row := range r.Rows {
		width = max(width, len(row.Key))
	}
	fmt.Fprintf(&b, "%-*s %12s %-11s %9s %9s  %s\n", width, "figure", "rate", "unit", "p50", "p99", "vs baseline")
	for _, row := range r.Rows {
		var vs []string
		for _, key := range row.Baselines {
			if base, ok := r.Row(key); ok && base.Rate > 0 {
				vs = append(vs, fmt.Sprintf("%.2f× %s", row.Rate/base.Rate, base.Key))
			}
		}
		for _, key := range row.LatencyBaselines {
			if base, ok := r.Row(key); ok && base.P50 > 0 && row.P50 > 0 {
				vs = append(vs, fmt.Sprintf("p50 %.1f× %s", float64(row.P50)/float64(base.P50), base.Key))
			}
		}
		fmt.Fprintf(&b, "%-*s %12s %-11s %9s %9s  %s\n", width, row.Key, formatRate(row.Rate), row.Unit,
			formatLatency(row.P50), formatLatency(row.P99), strings.Join(vs, ", "))
	}
	b.WriteString("\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "%-*s %s (%d measured)\n", width, row.Key, row.Name, row.Count)
	}
	b.WriteString("\n")
	for _, ra := range r.Ratios {
		verdict := "met"
		if !ra.Met() {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "%s: %s (target ≥ %s) %s\n", ra.Name, ra.format(ra.Value), ra.format(ra.Target), verdict)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatRate(v float64) string {
	switch {
	case v >= 100:
		return withCommas(int64(v + 0.5))
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func withCommas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func formatLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return d.Round(time.Millisecond).String()
	}
}

// load drives op from workers goroutines: for warmup, then for d while it
// counts the operations that finish and their latency.
type load struct {
	workers int
	warmup  time.Duration
	d       time.Duration
}

// result is what a load measured.
type result struct {
	count    int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) rate(per float64) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.count) * per / r.elapsed.Seconds()
}

// run calls op(worker, i) in a loop on every worker until the time is up.
// The first error stops every worker and is returned.
func (l load) run(ctx context.Context, op func(worker, i int) error) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := time.Now()
	start := begin.Add(l.warmup)
	end := start.Add(l.d)
	lats := make([][]time.Duration, l.workers)
	// Every operation started within the window counts, however long it
	// takes to finish, and the window stretches to the last one's end: a
	// loaded machine then measures slow operations rather than none.
	finished := make([]time.Time, l.workers)
	var measured atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var failed error
	for w := 0; w < l.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if t0.After(end) && (measured.Load() > 0 || t0.After(end.Add(time.Minute))) {
					return
				}
				if err := op(w, i); err != nil {
					once.Do(func() { failed = err; cancel() })
					return
				}
				if t0.After(start) {
					t1 := time.Now()
					lats[w] = append(lats[w], t1.Sub(t0))
					finished[w] = t1
					measured.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return result{}, failed
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	last := end
	for _, t := range finished {
		if t.After(last) {
			last = t
		}
	}
	r := result{count: len(all), elapsed: last.Sub(start)}
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r, nil
}

// errNoOps is returned when a figure measured nothing at all.
var errNoOps = errors.New("bench: no operation finished within the measured time")
