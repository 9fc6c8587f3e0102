package kafka_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/log/kafka"
)

// TestScaledOutLagIsReportedPerConsumer: scaled out, an instance reports
// in plait_subscription_lag the records of the partitions it owns that it
// has not handled: per reactor, of the events topics it reads, and for
// the commands. While a view's decisions are held, the reactor feeding it
// lags by every event it has yet to finish and the commands by the view's
// commands waiting; once they go on, both come back to zero.
func TestScaledOutLagIsReportedPerConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	held := plait.NewAggregate[enginetest.Tally]("held",
		plait.AsView[enginetest.Tally](),
		plait.Handle("note", func(s enginetest.Tally, c plait.Cmd[enginetest.Note]) ([]plait.Change, error) {
			<-gate
			return []plait.Change{plait.Emit("noted", c.Data).From(c.Data.From, "adds")}, nil
		}),
		plait.Apply("noted", func(s enginetest.Tally, e enginetest.Note) enginetest.Tally { s.Adds++; return s }),
	)
	feed := plait.NewReactor("feed", plait.On("counter", "added", func(e plait.Evt[enginetest.Added]) []plait.Dispatch {
		return []plait.Dispatch{plait.Send("held", e.AggregateID, "note", enginetest.Note{From: e.Source()})}
	}))
	app := plait.App{Name: "lagging", Aggregates: []plait.Definition{enginetest.CounterType, held}, Reactors: []*plait.Reactor{feed}}
	st, open := scaledOut(ctx, t, app, 1)
	l := open()
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pub := &kafka.Publisher{Log: l, Feed: st, Checkpoints: st, Leaser: leases{st}, Standby: 50 * time.Millisecond}
	go pub.Run(pubCtx)
	e, err := engine.New(app, st, engine.Options{CommandLog: l, Logger: quiet, ReactFromLog: true})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := enginetest.Background(t, e)
	defer func() { release(); stop() }()
	srv := httptest.NewServer(httpapi.New(e, httpapi.Options{Logger: quiet}))
	defer srv.Close()
	const adds = 3
	for i := range adds {
		cmd := plait.Command{ID: "add-" + strconv.Itoa(i), Type: "counter", AggregateID: "x", Name: "add", Data: json.RawMessage(`{"by":1}`)}
		if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	metric := func(name string) int64 {
		t.Helper()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^plait_subscription_lag\{name="` + regexp.QuoteMeta(name) + `"\} (\d+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no plait_subscription_lag for %s in /metrics:\n%s", name, body)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	// The reactor holds at its first batch, awaiting the view's outcomes:
	// every added event is its lag, and the view's commands are waiting.
	for metric("reactor:feed") != adds || metric(engine.CommandsLag) < 1 {
		if ctx.Err() != nil {
			t.Fatalf("lags while the view is held: %+v, want reactor:feed %d and some commands", e.Lags(), adds)
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	for metric("reactor:feed") != 0 || metric(engine.CommandsLag) != 0 {
		if ctx.Err() != nil {
			t.Fatalf("lags once the view goes on: %+v, want none", e.Lags())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
