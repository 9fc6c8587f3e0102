package kafka_test

import (
	"context"
	"github.com/plaithq/plait/store/postgres/pgtest"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
)

// factory opens each contract test's store in a schema of its own.
func factory(url string) enginetest.Factory {
	return func(t *testing.T) enginetest.Opener {
		schema := pgtest.FreshSchema(t, url)
		return func(t *testing.T) engine.Store {
			ctx := context.Background()
			st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.EnsureIndexes(ctx, enginetest.App().Aggregates); err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
}

// TestContract runs the engine's contract suite scaled out: commands go
// through Kafka (kfake, over TCP), decided batches commit with their
// consumed offsets into PostgreSQL, and a restarted engine rejoins the
// consumer group and resumes each partition from the store's offset.
func TestContract(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	var mu sync.Mutex
	var logs []*kafka.Log
	t.Cleanup(func() {
		for _, l := range logs {
			l.Close()
		}
	})
	enginetest.RunWith(t, factory(url), func(st engine.Store, app plait.App) engine.Options {
		pg := st.(*postgres.Store)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// One prefix and group per test, shared by its restarts.
		l, err := kafka.New(ctx, app, kafka.Options{
			Brokers: brokers, Prefix: pg.Schema(), Group: pg.Schema(), Partitions: 4,
			Offsets: pg, SessionTimeout: time.Second, Logger: quiet,
		})
		if err != nil {
			panic(err)
		}
		mu.Lock()
		logs = append(logs, l)
		mu.Unlock()
		return engine.Options{CommandLog: l, Logger: quiet}
	})
}

// TestContractReactingFromTopics runs the contract suite scaled out with
// the reactors consuming their events from the events topics through the
// consumer group (engine.Options.ReactFromLog), as plait serve --kafka
// does: each start also runs a publisher, which puts the committed events
// on Kafka for the reactors. Settling, and the reactors' exactly-once
// effects across restarts, hold as they do reading the store's feed.
func TestContractReactingFromTopics(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	pubCtx, stopPubs := context.WithCancel(context.Background())
	var mu sync.Mutex
	var logs []*kafka.Log
	var pubs sync.WaitGroup
	t.Cleanup(func() {
		stopPubs()
		pubs.Wait()
		for _, l := range logs {
			l.Close()
		}
	})
	enginetest.RunWith(t, factory(url), func(st engine.Store, app plait.App) engine.Options {
		pg := st.(*postgres.Store)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l, err := kafka.New(ctx, app, kafka.Options{
			Brokers: brokers, Prefix: pg.Schema(), Group: pg.Schema(), Partitions: 4,
			Offsets: pg, SessionTimeout: time.Second, Logger: silent,
		})
		if err != nil {
			panic(err)
		}
		// The publisher of an engine that stopped fails once its store is
		// closed and gives its lease up to the next one.
		p := &kafka.Publisher{Log: l, Feed: pg, Checkpoints: pg, Leaser: leases{pg}, Standby: 50 * time.Millisecond}
		pubs.Go(func() { p.Run(pubCtx) })
		mu.Lock()
		logs = append(logs, l)
		mu.Unlock()
		return engine.Options{CommandLog: l, Logger: quiet, ReactFromLog: true}
	})
}
