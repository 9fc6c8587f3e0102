package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

// measureViews measures the orderdesk orderList view under load: the lag
// from the commit of an order's placed event to its list item being
// visible, and then the rebuild of the view from the log it made, beside
// the raw read rate of the same event log.
func measureViews(ctx context.Context, dir string, opts Options, rep *Report) error {
	path := filepath.Join(dir, "views.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("bench: open views store: %w", err)
	}
	defer st.Close()
	app := orderdesk.App()
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		return fmt.Errorf("bench: indexes: %w", err)
	}
	e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() { stop(); <-done }()
	<-e.Ready()

	lag, placed, err := measureViewLag(ctx, e, opts)
	if err != nil {
		return err
	}
	rep.Rows = append(rep.Rows, Row{
		Key: "view-lag", Name: "orderList item visible after its order's placed event committed, 16 submitters placing orders and renaming customers",
		Rate: placed.rate(1), Unit: "orders/s", Count: placed.count, P50: lag.p50, P99: lag.p99,
		LatencyBaselines: []string{"raw-1"}, // the view item's commit is one durable write at least
	})

	raw, logEvents, err := measureRawRead(ctx, path, opts)
	if err != nil {
		return err
	}
	rep.Rows = append(rep.Rows, raw)
	p, err := e.Rebuild(ctx, orderdesk.OrderListType, nil)
	if err != nil {
		return fmt.Errorf("bench: rebuild orderList: %w", err)
	}
	// The rebuild covers the whole log; it reads only the events its
	// reactors subscribe to, so its rate is the log's events over its time.
	// Replaying the log is the first part; writing the copy's items with
	// their indexes, swapping and dropping the old copy the second, whose
	// cost goes with the view's size, not the log's.
	replay := Row{
		Key: "replay", Name: fmt.Sprintf("plait replay --view orderList: reading the log of %d events (%d of them read, by index) and applying it to the copy",
			logEvents, p.Events),
		Rate: float64(logEvents) / p.Replaying.Seconds(), Unit: "events/s", Count: int(logEvents), Baselines: []string{"raw-read"},
	}
	rebuild := Row{
		Key: "rebuild", Name: fmt.Sprintf("the whole of that rebuild: the replay, writing %d items and their indexes, the swap (writes paused %s) and dropping the old copy",
			p.Instances, p.Paused.Round(time.Microsecond)),
		Rate: float64(logEvents) / p.Elapsed.Seconds(), Unit: "events/s", Count: int(logEvents), Baselines: []string{"raw-read"},
	}
	rep.Rows = append(rep.Rows, replay, rebuild)
	rep.Ratios = append(rep.Ratios, Ratio{Name: "replay / raw-read (events/s per row/s)", Value: replay.Rate / raw.Rate, Target: 0.30, Percent: true})
	return nil
}

// lagStats are percentiles of the view lag.
type lagStats struct{ p50, p99 time.Duration }

// measureViewLag places orders from 16 workers for opts.Duration, renaming
// a customer now and then, while a follower of the feed notes when each
// order's list item appears.
func measureViewLag(ctx context.Context, e *engine.Engine, opts Options) (lagStats, result, error) {
	const customers, workers = 200, 16
	user := plait.User{ID: "bench"}
	send := func(typ, id, name string, data any) (engine.Receipt, error) {
		raw, _ := json.Marshal(data)
		return e.Submit(ctx, plait.Command{Type: typ, AggregateID: id, Name: name, Data: raw}, user)
	}
	for c := 0; c < customers; c++ {
		id := fmt.Sprintf("c%d", c)
		if _, err := send("customer", id, "create", map[string]string{"name": "Customer " + id, "email": id + "@example.com"}); err != nil {
			return lagStats{}, result{}, fmt.Errorf("bench: create customer: %w", err)
		}
	}

	var mu sync.Mutex
	committed := map[string]time.Time{}
	visible := map[string]time.Time{}
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followed := make(chan struct{})
	go func() { // the list item is visible once its view event is published
		defer close(followed)
		pos := e.Head()
		for followCtx.Err() == nil {
			changed := e.FeedChanged()
			items, err := e.ReadFeed(followCtx, pos, 1024)
			if err != nil {
				return
			}
			now := time.Now()
			for _, it := range items {
				pos = it.Position
				if ev := it.Event; ev != nil && ev.Type == orderdesk.OrderListType && ev.Name == orderdesk.EvtOrderSet {
					mu.Lock()
					visible[ev.AggregateID] = now
					mu.Unlock()
				}
			}
			if len(items) == 0 {
				select {
				case <-changed:
				case <-followCtx.Done():
				}
			}
		}
	}()

	var next atomic.Int64
	l := load{workers: workers, warmup: opts.warmup(), d: opts.Duration}
	res, err := l.run(ctx, func(worker, i int) error {
		n := next.Add(1)
		o := fmt.Sprintf("o%d", n)
		c := fmt.Sprintf("c%d", n%customers)
		if n%10 == 0 {
			if _, err := send("customer", c, "rename", map[string]string{"name": fmt.Sprintf("Customer %s #%d", c, n)}); err != nil {
				return err
			}
		}
		_, err := send("order", o, "place", map[string]any{"customerId": c, "lines": []map[string]any{{"sku": "A", "qty": 2, "price": 4.5}}})
		if err != nil {
			return err
		}
		mu.Lock()
		committed[o] = time.Now()
		mu.Unlock()
		return nil
	})
	if err != nil {
		return lagStats{}, result{}, err
	}
	// Let the views catch up, then stop following.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		pending := len(committed) - len(visible)
		mu.Unlock()
		if pending <= 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopFollow()
	<-followed
	mu.Lock()
	defer mu.Unlock()
	var lags []time.Duration
	for o, at := range committed {
		seen, ok := visible[o]
		if !ok {
			return lagStats{}, result{}, fmt.Errorf("bench: the list item of %s never appeared", o)
		}
		lags = append(lags, max(0, seen.Sub(at)))
	}
	if len(lags) == 0 {
		return lagStats{}, result{}, fmt.Errorf("bench: no order was placed within the measured time")
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	return lagStats{p50: lags[len(lags)/2], p99: lags[len(lags)*99/100]}, res, nil
}

// measureRawRead reads every event row of the log, as plain bytes, with
// database/sql over the same driver: the fastest a replay could read.
func measureRawRead(ctx context.Context, path string, opts Options) (row Row, logEvents int64, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return Row{}, 0, fmt.Errorf("bench: open for raw reads: %w", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&logEvents); err != nil {
		return Row{}, 0, fmt.Errorf("bench: count events: %w", err)
	}
	var rows int64
	start := time.Now()
	for passes := 0; passes == 0 || time.Since(start) < opts.Duration/2; passes++ {
		rs, err := db.QueryContext(ctx, `SELECT pos, body FROM events ORDER BY pos`)
		if err != nil {
			return Row{}, 0, fmt.Errorf("bench: raw read: %w", err)
		}
		var pos int64
		var body []byte
		for rs.Next() {
			if err := rs.Scan(&pos, &body); err != nil {
				rs.Close()
				return Row{}, 0, fmt.Errorf("bench: raw read: %w", err)
			}
			rows++
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return Row{}, 0, fmt.Errorf("bench: raw read: %w", err)
		}
	}
	elapsed := time.Since(start)
	return Row{Key: "raw-read", Name: "raw read of the same event log: SELECT pos, body FROM events ORDER BY pos, rows scanned as bytes",
		Rate: float64(rows) / elapsed.Seconds(), Unit: "rows/s", Count: int(rows)}, logEvents, nil
}
