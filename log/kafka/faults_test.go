package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// The fault tests of the scaled-out deployment: an engine consuming its
// commands from Kafka (kfake, over TCP) and committing to PostgreSQL takes
// load from concurrent submitters while a fault is injected and lifted.
// Submitters may see errors during the fault, and submit the same command
// id again until it is acknowledged, as a client would. Afterwards, with no
// restart of the engine, every acknowledged command has exactly one
// outcome, no event is stored twice, seqs are gap-free, each counter is the
// sum of its accepted commands and each tally counted every add once.

// faultNode is one engine of the scaled-out deployment, in this process.
type faultNode struct {
	st     *postgres.Store
	log    *kafka.Log
	e      *engine.Engine
	stop   context.CancelFunc
	runErr chan error
	// publishes: a publisher runs beside the engine.
	publishes bool
}

// startFaultNode starts an engine on the brokers and on the store in schema
// of the database at url; it stops when t ends. With fromTopics, as plait
// serve --kafka runs it, a publisher publishes the events to their topics
// and the reactors consume them from there (engine.Options.ReactFromLog);
// otherwise the reactors read the store's feed.
func startFaultNode(t *testing.T, brokers []string, url, schema string, fromTopics bool) *faultNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureIndexes(ctx, enginetest.App().Aggregates); err != nil {
		t.Fatal(err)
	}
	l, err := kafka.New(ctx, enginetest.App(), kafka.Options{
		Brokers: brokers, Prefix: schema, Group: schema, Partitions: 4,
		Offsets: st, SessionTimeout: time.Second, ProduceTimeout: 5 * time.Second, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(enginetest.App(), st, engine.Options{CommandLog: l, Logger: quiet, ReactFromLog: fromTopics})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	n := &faultNode{st: st, log: l, e: e, stop: stop, runErr: make(chan error, 1)}
	go func() { n.runErr <- e.Run(runCtx) }()
	var pub sync.WaitGroup
	t.Cleanup(func() {
		stop()
		pub.Wait()
		select {
		case <-e.Done():
		case <-time.After(20 * time.Second):
			t.Error("the engine did not stop")
		}
		l.Close()
		st.Close()
	})
	select {
	case <-e.Ready():
	case err := <-n.runErr:
		t.Fatalf("engine: %v", err)
	}
	if fromTopics {
		n.publishes = true
		p := &kafka.Publisher{Log: l, Feed: st, Changed: e.FeedChanged, Checkpoints: st, Leaser: leases{st}, Standby: 100 * time.Millisecond}
		pub.Go(func() { p.Run(runCtx) })
	}
	return n
}

// alive fails t if the engine stopped by itself.
func (n *faultNode) alive(t *testing.T) {
	t.Helper()
	select {
	case <-n.e.Done():
		t.Fatalf("the engine stopped by itself: %v", <-n.runErr)
	default:
	}
}

// faultLoad is the load of a fault test: counters added to by concurrent
// submitters, each command retried under its id until acknowledged.
type faultLoad struct {
	mu     sync.Mutex
	acked  map[string]bool
	errs   int // submissions that failed
	sample error
}

// runFaultLoad submits commands from workers submitters; fault runs, in a
// goroutine of its own, once a third of n were handed out, and the load
// goes on until fault returned and at least n were handed out, and ends
// once every command was acknowledged.
func runFaultLoad(t *testing.T, e *engine.Engine, prefix string, n, workers int, fault func()) *faultLoad {
	t.Helper()
	ld := &faultLoad{acked: map[string]bool{}}
	giveUp := time.Now().Add(90 * time.Second)
	work := make(chan plait.Command)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for cmd := range work {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := e.Submit(ctx, cmd, plait.User{ID: "tester"})
					cancel()
					if err == nil {
						ld.mu.Lock()
						ld.acked[cmd.ID] = true
						ld.mu.Unlock()
						break
					}
					ld.mu.Lock()
					ld.errs++
					ld.sample = err
					ld.mu.Unlock()
					if time.Now().After(giveUp) {
						t.Errorf("command %s never acknowledged: %v", cmd.ID, err)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond) // spread the load over the fault
			}
		})
	}
	faultDone := make(chan struct{})
	over := func() bool {
		select {
		case <-faultDone:
			return true
		default:
			return false
		}
	}
	for i := 0; i < n || !over(); i++ {
		if i == n/3 {
			go func() { defer close(faultDone); fault() }()
		}
		data, _ := json.Marshal(enginetest.Add{By: 1 + i%5})
		work <- plait.Command{ID: fmt.Sprintf("%s-%d", prefix, i), Type: "counter",
			AggregateID: fmt.Sprintf("c%d", i%24), Name: "add", Data: data}
	}
	<-faultDone
	close(work)
	wg.Wait()
	return ld
}

func (ld *faultLoad) ids() []string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ids := make([]string, 0, len(ld.acked))
	for id := range ld.acked {
		ids = append(ids, id)
	}
	return ids
}

// checkRecovered waits for the outcome of every acknowledged command, then
// checks the invariants in the schema and that the views converged.
func checkRecovered(t *testing.T, n *faultNode, url, schema string, ld *faultLoad) {
	t.Helper()
	ids := ld.ids()
	deadline := time.Now().Add(40 * time.Second)
	for _, id := range ids {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, ok, err := n.e.Outcome(ctx, id)
			cancel()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("acknowledged command %s has no outcome (%v)", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	n.alive(t)
	if n.publishes {
		// The publisher, whose lease a PostgreSQL outage takes away,
		// publishes everything committed.
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			head, herr := n.st.Head(ctx)
			pos, cerr := n.st.Checkpoint(ctx, kafka.PublisherCheckpoint)
			cancel()
			if herr == nil && cerr == nil && pos == head {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the publisher is at %d, the head at %d (%v, %v)", pos, head, herr, cerr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if instances := pgtest.CheckInvariants(t, url, schema, ids); instances == 0 {
		t.Error("no instance has events")
	}
	checkCounters(t, url, schema)
}

// checkCounters checks that each counter is the sum of its accepted adds,
// none applied twice, and that each tally converges to the number of adds
// of its counter: the reactor's effects are exactly-once.
func checkCounters(t *testing.T, url, schema string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tbl := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	var bad int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("instances")+` i WHERE i.type = 'counter' AND (i.state->>'count')::bigint <>
		(SELECT coalesce(sum((c.data->>'by')::bigint), 0) FROM `+tbl("commands")+` c
		 WHERE c.type = 'counter' AND c.aggregate_id = i.id AND c.name = 'add' AND c.status = 'accepted')`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d counters are not the sum of their accepted adds", bad)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("instances")+` i WHERE i.type = 'counter' AND
			(SELECT count(*) FROM `+tbl("events")+` e WHERE e.type = 'counter' AND e.aggregate_id = i.id AND e.name = 'added') <>
			coalesce((SELECT (v.state->>'adds')::bigint FROM `+tbl("instances")+` v WHERE v.type = 'tally' AND v.id = i.id), 0)`).Scan(&bad); err != nil {
			t.Fatal(err)
		}
		if bad == 0 {
			return
		}
		if time.Now().After(deadline) {
			var cps []string
			rows, _ := conn.Query(ctx, `SELECT name || '@' || pos FROM `+tbl("checkpoints"))
			for rows.Next() {
				var s string
				rows.Scan(&s)
				cps = append(cps, s)
			}
			rows.Close()
			var head, notes int64
			conn.QueryRow(ctx, `SELECT pos FROM `+tbl("log_head")).Scan(&head)
			conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("commands")+` WHERE type = 'tally'`).Scan(&notes)
			t.Errorf("%d tallies did not converge to their counter's adds (checkpoints %v, head %d, %d notes)", bad, cps, head, notes)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bothReactorModes runs test with the reactors reading the store's feed,
// and reading the events topics, as plait serve --kafka runs them.
func bothReactorModes(t *testing.T, test func(t *testing.T, fromTopics bool)) {
	t.Run("reactors=feed", func(t *testing.T) { test(t, false) })
	t.Run("reactors=topics", func(t *testing.T) { test(t, true) })
}

// TestPostgresOutageMidLoad takes PostgreSQL away from a running engine
// for a few seconds mid-load, as a server restart does: a proxy in front
// of the test server (which other tests share, so it is not restarted)
// closes every connection and refuses new ones, then lets them through
// again. The engine recovers by itself.
func TestPostgresOutageMidLoad(t *testing.T) { bothReactorModes(t, testPostgresOutageMidLoad) }

func testPostgresOutageMidLoad(t *testing.T, fromTopics bool) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	proxy, proxied := pgtest.NewProxy(t, url)
	n := startFaultNode(t, brokers, proxied, schema, fromTopics)
	var cutWith int
	ld := runFaultLoad(t, n.e, "pg", 600, 8, func() {
		cutWith = proxy.Conns()
		proxy.Cut()
		time.Sleep(3 * time.Second)
		proxy.Restore()
	})
	checkRecovered(t, n, url, schema, ld)
	if cutWith == 0 {
		t.Error("no connection was open when PostgreSQL went away")
	}
	if ld.errs == 0 {
		t.Error("no submission failed during the outage: was PostgreSQL away at all?")
	}
	t.Logf("%d commands acknowledged; %d connections cut; %d submissions failed during the outage, e.g. %v",
		len(ld.acked), cutWith, ld.errs, ld.sample)
}

// TestKafkaRequestErrorsMidLoad fails produce, fetch, group and
// offset-commit requests mid-load with the errors a broker answers under
// trouble, among them errors given after the broker applied the produce
// (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND), so that records
// may be written twice.
func TestKafkaRequestErrorsMidLoad(t *testing.T) { bothReactorModes(t, testKafkaRequestErrorsMidLoad) }

func testKafkaRequestErrorsMidLoad(t *testing.T, fromTopics bool) {
	kc := cluster(t)
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	n := startFaultNode(t, kc.ListenAddrs(), url, schema, fromTopics)
	var hits []string
	ld := runFaultLoad(t, n.e, "kerr", 600, 8, func() {
		phases := []struct {
			name   string
			faults []kfake.Fault
		}{
			{"produce", []kfake.Fault{
				{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: 3},
				{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 3},
				{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicasAfterAppend, Count: 3},
			}},
			{"fetch", []kfake.Fault{
				{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, TopLevel: true, Count: 3},
				{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.UnknownServerError, TopLevel: true, Count: 3},
			}},
			{"group", []kfake.Fault{
				{Keys: []kmsg.Key{kmsg.Heartbeat}, Err: kerr.RebalanceInProgress, TopLevel: true, Count: 2},
				{Keys: []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup}, Err: kerr.CoordinatorNotAvailable, TopLevel: true, Count: 2},
				{Keys: []kmsg.Key{kmsg.OffsetFetch}, Err: kerr.CoordinatorLoadInProgress, TopLevel: true, Count: 2},
			}},
		}
		// Offsets live in PostgreSQL, committed with the outcomes: Kafka's
		// offset commits, failed throughout, must not be used at all.
		commits := kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Count: -1})
		defer commits.Remove()
		for _, p := range phases {
			h := kc.Fault(p.faults...)
			// Each phase lasts until some of its faults answered, and a
			// second more.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := h.Wait(ctx, 1); err != nil {
				t.Errorf("%s: no request was failed: %v", p.name, err)
			}
			cancel()
			time.Sleep(time.Second)
			hits = append(hits, fmt.Sprintf("%s %d", p.name, h.Hits()))
			h.Remove()
		}
		if h := commits.Hits(); h != 0 {
			t.Errorf("%d offset commits reached Kafka", h)
		}
	})
	checkRecovered(t, n, url, schema, ld)
	t.Logf("%d commands acknowledged; faulted requests: %v; %d submissions failed, e.g. %v", len(ld.acked), hits, ld.errs, ld.sample)
}

// TestKafkaConnectionsDropMidLoad closes every connection to the broker
// at its first request, for a few seconds mid-load.
func TestKafkaConnectionsDropMidLoad(t *testing.T) {
	bothReactorModes(t, testKafkaConnectionsDropMidLoad)
}

func testKafkaConnectionsDropMidLoad(t *testing.T, fromTopics bool) {
	kc := cluster(t)
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	n := startFaultNode(t, kc.ListenAddrs(), url, schema, fromTopics)
	var down atomic.Bool
	var dropped atomic.Int64
	kc.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		if !down.Load() {
			return nil, nil, false
		}
		kc.KeepControl()
		dropped.Add(1)
		return nil, errors.New("broker away"), true
	})
	ld := runFaultLoad(t, n.e, "kconn", 600, 8, func() {
		down.Store(true)
		time.Sleep(3 * time.Second)
		down.Store(false)
	})
	checkRecovered(t, n, url, schema, ld)
	if dropped.Load() == 0 {
		t.Error("no connection was dropped")
	}
	t.Logf("%d commands acknowledged; %d connections dropped; %d submissions failed, e.g. %v", len(ld.acked), dropped.Load(), ld.errs, ld.sample)
}

// TestKafkaBrokerRestartMidLoad stops the broker mid-load and starts it
// again a few seconds later on the same port and data directory, its
// writes synced as acks=all promises: what it acknowledged survives, as on
// a real broker's restart.
func TestKafkaBrokerRestartMidLoad(t *testing.T) { bothReactorModes(t, testKafkaBrokerRestartMidLoad) }

func testKafkaBrokerRestartMidLoad(t *testing.T, fromTopics bool) {
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond), kfake.DataDir(dir), kfake.SyncWrites()}
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	brokers := kc.ListenAddrs()
	var port int
	if _, err := fmt.Sscanf(brokers[0][len("127.0.0.1:"):], "%d", &port); err != nil {
		t.Fatalf("broker address %s: %v", brokers[0], err)
	}
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if kc != nil {
			kc.Close()
		}
	})
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	n := startFaultNode(t, brokers, url, schema, fromTopics)
	ld := runFaultLoad(t, n.e, "krestart", 600, 8, func() {
		mu.Lock()
		kc.Close()
		kc = nil
		mu.Unlock()
		time.Sleep(3 * time.Second)
		var again *kfake.Cluster
		var err error
		for range 50 { // the port may take a moment to be free again
			if again, err = kfake.NewCluster(append(opts, kfake.Ports(port))...); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("restart the broker on port %d: %v", port, err)
			return
		}
		mu.Lock()
		kc = again
		mu.Unlock()
	})
	checkRecovered(t, n, url, schema, ld)
	t.Logf("%d commands acknowledged; %d submissions failed during the restart, e.g. %v", len(ld.acked), ld.errs, ld.sample)
}
