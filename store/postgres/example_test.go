package postgres_test

import (
	"context"
	"log"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/postgres"
)

// An application on PostgreSQL: open the store in the application's own
// schema (migrated at once, safely when several instances start together),
// create the indexes its list queries use, and run the engine on it.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	app := enginetest.App()
	st, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/test", postgres.Options{Schema: app.Name})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		log.Fatal(err)
	}
	e, err := engine.New(app, st, engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	go e.Run(ctx)
	<-e.Ready()
	// e.Submit, e.List, e.ReadFeed ... serve from PostgreSQL now.
}
