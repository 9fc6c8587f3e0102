package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/sqlite"
)

// counter is the state of the bench application's one aggregate type.
type counter struct {
	Count int `json:"count"`
}

// add is the data of its "add" command and "added" event.
type add struct {
	By int `json:"by"`
}

var counterType = plait.NewAggregate[counter]("counter",
	plait.Handle("add", func(s counter, c plait.Cmd[add]) ([]plait.Change, error) {
		if c.Data.By < 1 {
			return nil, plait.Reject("by", plait.CodeInvalid, "by must be at least 1")
		}
		return []plait.Change{plait.Emit("added", c.Data)}, nil
	}),
	plait.Apply("added", func(s counter, e add) counter { s.Count += e.By; return s }),
)

// App is the application the engine figures run: one aggregate type,
// "counter", whose "add" command emits one "added" event, and no reactor,
// so one command is one event, one state record and one dedup record.
func App() plait.App {
	return plait.App{Name: "bench", Aggregates: []plait.Definition{counterType}}
}

var benchUser = plait.User{ID: "bench"}

// addCommand is an "add" to one of rawInstances counters, with no id: the
// engine assigns one, as it does for a client that sends none.
func addCommand(rng *rand.Rand) plait.Command {
	return plait.Command{
		Type: "counter", AggregateID: fmt.Sprintf("a%d", rng.IntN(rawInstances)),
		Name: "add", Data: json.RawMessage(`{"by":1}`),
	}
}

// node is an engine running on a fresh store/sqlite file.
type node struct {
	e    *engine.Engine
	st   *sqlite.Store
	stop context.CancelFunc
	done chan error
}

// startNode runs app's engine on a store at path, once it is ready.
func startNode(ctx context.Context, path string, app plait.App) (*node, error) {
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("bench: open the store: %w", err)
	}
	e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bench: make the engine: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n := &node{e: e, st: st, stop: stop, done: make(chan error, 1)}
	go func() { n.done <- e.Run(runCtx) }()
	select {
	case <-e.Ready():
	case err := <-n.done:
		st.Close()
		return nil, fmt.Errorf("bench: run the engine: %w", err)
	}
	return n, nil
}

// shutdown stops the engine, waiting for what it accepted, and closes the
// store.
func (n *node) shutdown() error {
	n.stop()
	err := <-n.done
	if cerr := n.st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("bench: close the store: %w", cerr)
	}
	return err
}

// measureEngine runs submitters goroutines that each submit "add" commands
// to random counters and wait for each to be durable, and returns
// commands/s with the latency of one Submit.
func measureEngine(ctx context.Context, dir string, submitters int, opts Options) (Row, error) {
	n, err := startNode(ctx, filepath.Join(dir, fmt.Sprintf("engine-%d.db", submitters)), App())
	if err != nil {
		return Row{}, err
	}
	rngs := newRands(submitters, uint64(submitters))
	l := load{workers: submitters, warmup: opts.warmup(), d: opts.Duration}
	res, err := l.run(ctx, func(w, _ int) error {
		r, err := n.e.Submit(ctx, addCommand(rngs[w]), benchUser)
		if err != nil {
			return fmt.Errorf("bench: submit: %w", err)
		}
		if r.Outcome == nil || r.Outcome.Status != plait.StatusAccepted {
			return fmt.Errorf("bench: submit: outcome %+v, want accepted", r.Outcome)
		}
		return nil
	})
	if serr := n.shutdown(); err == nil {
		err = serr
	}
	if err != nil {
		return Row{}, err
	}
	if res.count == 0 {
		return Row{}, fmt.Errorf("engine with %d submitters: %w", submitters, errNoOps)
	}
	name := "engine Submit, 1 submitter"
	if submitters > 1 {
		name = fmt.Sprintf("engine Submit, %d concurrent submitters", submitters)
	}
	return Row{
		Key: fmt.Sprintf("engine-%d", submitters), Name: name + ", each awaited until durable",
		Rate: res.rate(1), Unit: "commands/s", Count: res.count,
		P50: res.p50, P99: res.p99, Baselines: []string{"raw-1", "raw-1000"},
	}, nil
}

// newRands makes one random source per worker, seeded so a run is
// repeatable.
func newRands(workers int, seed uint64) []*rand.Rand {
	rngs := make([]*rand.Rand, workers)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(seed, uint64(i)))
	}
	return rngs
}
