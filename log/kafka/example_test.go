package kafka_test

import (
	"context"
	"log"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
)

// leases adapts postgres.Store's advisory-lock leases to kafka.Leaser, and
// to kafka.LeaseEvicter, so that a publisher stuck while holding its lease
// loses it.
type leases struct{ st *postgres.Store }

func (l leases) LeaseHolder(ctx context.Context, name string) (string, error) {
	return l.st.LeaseHolder(ctx, name)
}

func (l leases) EvictLease(ctx context.Context, name, holder string) (bool, error) {
	return l.st.EvictLease(ctx, name, holder)
}

func (l leases) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	lease, ok, err := l.st.TryLease(ctx, name)
	if err != nil || !ok {
		return nil, false, err
	}
	return lease, true, nil
}

// An application scaled out: its commands on Kafka, its store on
// PostgreSQL, and its events published to Kafka by one instance at a time.
// Run as many instances as the topics have partitions.
func Example() {
	ctx := context.Background()
	app := plait.App{Name: "shop" /* Aggregates, Reactors … */}
	st, err := postgres.Open(ctx, "postgres://127.0.0.1:5432/shop", postgres.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	cmds, err := kafka.New(ctx, app, kafka.Options{Brokers: []string{"127.0.0.1:9092"}, Offsets: st})
	if err != nil {
		log.Fatal(err)
	}
	defer cmds.Close()
	e, err := engine.New(app, st, engine.Options{CommandLog: cmds})
	if err != nil {
		log.Fatal(err)
	}
	go e.Run(ctx)
	<-e.Ready()
	pub := &kafka.Publisher{Log: cmds, Feed: st, Changed: e.FeedChanged, Checkpoints: st, Leaser: leases{st}}
	go pub.Run(ctx)
	// Serve e over HTTP (package httpapi), as plait serve --kafka … --postgres … does.
}
