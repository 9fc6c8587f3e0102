package orderdesk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

// live runs orderdesk on a real engine and SQLite store.
type live struct {
	t     *testing.T
	e     *engine.Engine
	st    *sqlite.Store
	stop  func()
	mu    sync.Mutex
	corrs []string
}

func startLive(t *testing.T) *live {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "orderdesk.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	app := orderdesk.App()
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()
	l := &live{t: t, e: e, st: st}
	l.stop = func() { cancel(); <-done; st.Close() }
	t.Cleanup(l.stop)
	return l
}

func (l *live) send(typ, id, name string, data any) plait.Outcome {
	raw, _ := json.Marshal(data)
	r, err := l.e.Submit(context.Background(), plait.Command{Type: typ, AggregateID: id, Name: name, Data: raw}, plait.User{ID: "clerk"})
	if err != nil {
		l.t.Fatalf("%s %s.%s: %v", id, typ, name, err)
	}
	l.mu.Lock()
	l.corrs = append(l.corrs, r.Command.CorrelationID)
	l.mu.Unlock()
	return *r.Outcome
}

// settle waits until every command sent so far has settled.
func (l *live) settle() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range l.corrs {
		if err := l.e.WaitSettled(ctx, c); err != nil {
			l.t.Fatal(err)
		}
	}
	l.corrs = nil
}

func (l *live) item(id string) (orderdesk.OrderItem, map[string]plait.Lineage) {
	in, err := l.e.Load(context.Background(), orderdesk.OrderListType, id)
	if err != nil {
		l.t.Fatal(err)
	}
	var it orderdesk.OrderItem
	json.Unmarshal(in.State, &it)
	return it, in.Lineage
}

// story drives customers and orders through the engine: orders placed,
// some before their customer exists, renames, shipments and cancellations.
func story(l *live, customers, orders, workers int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= orders {
					return
				}
				c := fmt.Sprintf("c%d", i%customers)
				if i < customers && i%3 != 0 { // most customers exist before their first order
					l.send("customer", c, "create", map[string]string{"name": "Customer " + c, "email": c + "@example.com"})
				}
				o := fmt.Sprintf("o%d", i)
				l.send("order", o, "place", map[string]any{"customerId": c, "lines": []map[string]any{{"sku": "A", "qty": 1 + i%3, "price": 2.5}, {"sku": "B", "qty": 1, "price": 1}}})
				if i < customers && i%3 == 0 { // the others arrive after an order
					l.send("customer", c, "create", map[string]string{"name": "Customer " + c, "email": c + "@example.com"})
				}
				switch i % 5 {
				case 1:
					l.send("order", o, "ship", map[string]any{})
				case 2:
					l.send("order", o, "cancel", map[string]any{"reason": "changed mind"})
				case 3:
					l.send("customer", c, "rename", map[string]string{"name": fmt.Sprintf("Customer %s v%d", c, i)})
				}
			}
		}()
	}
	wg.Wait()
}

func TestEveryRenameReachesEveryListItem(t *testing.T) {
	l := startLive(t)
	story(l, 20, 400, 8)
	l.settle()
	for c := 0; c < 20; c++ {
		id := fmt.Sprintf("c%d", c)
		in, _ := l.e.Load(context.Background(), "customer", id)
		var cust orderdesk.CustomerState
		json.Unmarshal(in.State, &cust)
		for o := c; o < 400; o += 20 {
			it, lineage := l.item(fmt.Sprintf("o%d", o))
			if it.CustomerName != cust.Name {
				t.Fatalf("o%d shows %q, customer %s is %q", o, it.CustomerName, id, cust.Name)
			}
			if want := (plait.Lineage{Type: "customer", AggregateID: id, Seq: in.Seq}); lineage["customerName"] != want {
				t.Fatalf("o%d customerName lineage %+v, want %+v", o, lineage["customerName"], want)
			}
		}
	}
}

// rebuildAndCompare rebuilds orderList while reads go on, and checks the
// rebuilt copy equals the live one byte for byte.
func rebuildAndCompare(t *testing.T, l *live, minEvents int64) {
	ctx := context.Background()
	before, err := l.st.List(ctx, orderdesk.OrderListType, engine.ListQuery{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	stopReads := make(chan struct{})
	var reads, slow atomic.Int64
	var readErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reads keep answering during the rebuild
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopReads:
				return
			default:
			}
			start := time.Now()
			page, err := l.e.List(ctx, orderdesk.OrderListType, engine.ListQuery{Filters: []engine.Filter{{Field: "status", Op: "eq", Value: "shipped"}}, Limit: 20})
			if err == nil && len(page.Items) == 0 {
				err = fmt.Errorf("an empty list during the rebuild")
			}
			if err != nil {
				readErr.Store(err)
				return
			}
			if time.Since(start) > time.Second {
				slow.Add(1)
			}
			reads.Add(1)
		}
	}()
	p, err := l.e.Rebuild(ctx, orderdesk.OrderListType, nil)
	close(stopReads)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e := readErr.Load(); e != nil {
		t.Fatalf("a read failed during the rebuild: %v", e)
	}
	counts, err := l.st.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var logEvents int64
	for _, c := range counts {
		logEvents += c.Events
	}
	if logEvents < minEvents {
		t.Fatalf("the log has %d events, want at least %d", logEvents, minEvents)
	}
	if reads.Load() == 0 || slow.Load() > 0 {
		t.Fatalf("%d reads answered during the rebuild, %d took over a second", reads.Load(), slow.Load())
	}
	t.Logf("rebuilt %d items from a log of %d events (%d read) in %s (writes paused %s); %d reads answered meanwhile",
		p.Instances, logEvents, p.Events, p.Elapsed, p.Paused, reads.Load())
	after, err := l.st.List(ctx, orderdesk.OrderListType, engine.ListQuery{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Items) != len(before.Items) {
		t.Fatalf("%d items after the rebuild, %d before", len(after.Items), len(before.Items))
	}
	for i, a := range after.Items {
		b := before.Items[i]
		aj, _ := json.Marshal(a)
		bj, _ := json.Marshal(b)
		if string(aj) != string(bj) {
			t.Fatalf("item %s differs after the rebuild:\n got %s\nwant %s", a.ID, aj, bj)
		}
	}
}

func TestRebuiltOrderListEqualsTheLiveOne(t *testing.T) {
	l := startLive(t)
	story(l, 50, 1000, 16)
	l.settle()
	rebuildAndCompare(t, l, 8_000)
}
