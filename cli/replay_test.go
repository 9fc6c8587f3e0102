package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

func TestReplayAnAggregateTypeFoldsItsEvents(t *testing.T) {
	data := seedStore(t,
		plait.Command{ID: "1", Type: "customer", AggregateID: "c1", Name: "create", Data: json.RawMessage(`{"name":"Ann","email":"ann@example.com"}`)},
		plait.Command{ID: "2", Type: "customer", AggregateID: "c1", Name: "rename", Data: json.RawMessage(`{"name":"Anna"}`)},
		plait.Command{ID: "3", Type: "customer", AggregateID: "c2", Name: "create", Data: json.RawMessage(`{"name":"Bob","email":"bob@example.com"}`)},
	)

	code, out, stderr := runCLI(t, "replay", "--aggregate", "customer", "--data", data)
	if code != 0 || !strings.Contains(out, "replayed customer: 3 events folded into 2 instances") {
		t.Fatalf("replay --aggregate: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"replay", "--aggregate", "nope", "--data", data},
		{"replay", "--aggregate", "customer", "--view", "orderList", "--data", data},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestReplayAViewReportsRealFigures: the swapping line comes as writes
// pause, before the short log is replayed, so it gives no figures (they
// would all be 0); the figures after it are the rebuild's.
func TestReplayAViewReportsRealFigures(t *testing.T) {
	data := seedStore(t,
		plait.Command{ID: "1", Type: "customer", AggregateID: "c1", Name: "create", Data: json.RawMessage(`{"name":"Ann","email":"ann@example.com"}`)},
		plait.Command{ID: "2", Type: "order", AggregateID: "o1", Name: "place", Data: json.RawMessage(`{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}`)},
		plait.Command{ID: "3", Type: "order", AggregateID: "o2", Name: "place", Data: json.RawMessage(`{"customerId":"c1","lines":[{"sku":"B","qty":2,"price":3}]}`)},
	)

	code, out, stderr := runCLI(t, "replay", "--view", "orderList", "--data", data)
	if code != 0 || !strings.Contains(out, "rebuilt orderList: ") || !strings.Contains(out, ", 2 instances") {
		t.Fatalf("replay --view: exit %d\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out, "note:") {
		t.Errorf("orderList's events feed no reactor, yet:\n%s", out)
	}
	// customerOrders' events feed the reactor that fans a customer's name
	// out to the order list, which a rebuild of customerOrders does not
	// reach: said so.
	code, out2, stderr := runCLI(t, "replay", "--view", "customerOrders", "--data", data)
	if code != 0 || !strings.Contains(out2, "note: the events of customerOrders feed the reactor "+orderdesk.CustomerNameFanoutName+": ") {
		t.Fatalf("replay --view customerOrders: exit %d\n%s\n%s", code, out2, stderr)
	}
	swapping := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "swapping") {
			swapping++
			if strings.Contains(line, "position") || strings.Contains(line, " 0 ") || !strings.Contains(line, "writes paused") {
				t.Errorf("swapping line %q", line)
			}
		}
	}
	if swapping != 1 {
		t.Errorf("%d swapping lines, want 1:\n%s", swapping, out)
	}
}

func TestForgetASubject(t *testing.T) {
	data := seedStore(t, plait.Command{ID: "1", Type: "customer", AggregateID: "c1", Name: "create", Data: json.RawMessage(`{"name":"Ann","email":"ann@example.com"}`)})
	ctx := context.Background()

	code, out, stderr := runCLI(t, "forget", "--data", data, "c1")
	if code != 0 || !strings.Contains(out, "forgot c1") {
		t.Fatalf("forget: exit %d\n%s\n%s", code, out, stderr)
	}
	if code, _, _ := runCLI(t, "forget", "--data", data); code != 2 {
		t.Errorf("forget without a subject: exit %d, want 2", code)
	}
	st, err := sqlite.Open(ctx, filepath.Join(data, "orderdesk.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok, err := st.Key(ctx, "c1", false); ok || err != nil {
		t.Errorf("c1's key after forget: %v %v", ok, err)
	}
}

// seedStore runs orderdesk embedded on a fresh data directory, submits the
// commands one by one, each settled before the next, stops, and returns
// the directory.
func seedStore(t *testing.T, commands ...plait.Command) string {
	t.Helper()
	data := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(data, "orderdesk.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(orderdesk.App(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	<-e.Ready()
	for _, c := range commands {
		r, err := e.Submit(ctx, c, plait.User{ID: "local"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitSettled(ctx, r.Command.CorrelationID); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	st.Close()
	return data
}
