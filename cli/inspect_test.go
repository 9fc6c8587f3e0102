package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/store/sqlite"
)

// inspect's lag is what a reactor has still to do: the events of its types
// after its checkpoint. Positions of commands, and of events it does not
// consume, are no lag.
func TestInspectLagCountsTheEventsAReactorHasStillToHandle(t *testing.T) {
	data := t.TempDir()
	sf := storeFlags{data: data, synchronous: "NORMAL"}
	ctx := context.Background()
	// The commands are decided with no reactor running, so every
	// checkpoint stays at 0.
	quiet := orderdesk.App()
	quiet.Reactors = nil
	err := sf.withEngine(ctx, quiet, io.Discard, func(e *engine.Engine) error {
		for _, c := range []struct{ typ, id, name, data string }{
			{"customer", "c1", "create", `{"name":"Ann","email":"ann@example.com"}`},
			{"order", "o1", "place", `{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}`},
			{"order", "o2", "place", `{"customerId":"c1","lines":[{"sku":"B","qty":2,"price":3}]}`},
			{"customer", "c1", "changeEmail", `{"email":"ann@example.org"}`}, // no reactor consumes it
			{"order", "o1", "ship", `{}`},
		} {
			out, err := e.Submit(ctx, plait.Command{Type: c.typ, AggregateID: c.id, Name: c.name, Data: json.RawMessage(c.data)}, plait.User{ID: "local"})
			if err != nil {
				return err
			}
			if out.Outcome.Status != plait.StatusAccepted {
				t.Fatalf("%s %s/%s: %+v", c.name, c.typ, c.id, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	lag := func(out, sub string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sub) + `\s+(\d+)\s+(\d+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no row for %s in:\n%s", sub, out)
		}
		return m[1] + " " + m[2]
	}
	code, out, stderr := runCLI(t, "inspect", "--data", data)
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^log head\s+10$`).MatchString(out) {
		t.Fatalf("inspect, want log head 10 (5 commands and their events):\n%s", out)
	}
	// Streams, subscriptions, checkpoints and lag.
	if !regexp.MustCompile(`(?m)^STREAM \(AGGREGATE TYPE\)\s+KIND\s+INSTANCES\s+EVENTS$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^order\s+aggregate\s+2\s+3$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^SUBSCRIPTION\s+CHECKPOINT\s+LAG$`).MatchString(out) {
		t.Fatalf("inspect, want the tables of streams and subscriptions:\n%s", out)
	}
	// orderListFeed consumes created, placed twice and shipped.
	if got := lag(out, "reactor:orderListFeed"); got != "0 4" {
		t.Errorf("orderListFeed: checkpoint and lag %q, want 0 4\n%s", got, out)
	}
	// customerNameFanout consumes customerOrders' events, of which none
	// were made.
	if got := lag(out, "reactor:customerNameFanout"); got != "0 0" {
		t.Errorf("customerNameFanout: checkpoint and lag %q, want 0 0\n%s", got, out)
	}

	st, err := sf.open(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveCheckpoint(ctx, "reactor:orderListFeed", 6); err != nil { // after o2 was placed
		t.Fatal(err)
	}
	st.Close()
	_, out, _ = runCLI(t, "inspect", "--data", data)
	if got := lag(out, "reactor:orderListFeed"); got != "6 1" {
		t.Errorf("orderListFeed at 6: checkpoint and lag %q, want 6 1 (shipped)\n%s", got, out)
	}
}

// TestScaledInspectMakesNothing: inspect only reads. A --pg-schema that
// holds no store (mistyped) is an error, and is not created.
func TestScaledInspectMakesNothing(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	url := pgtest.URL(t)
	schema := fmt.Sprintf("plait_absent_%d", time.Now().UnixNano())
	code, _, stderr := runCLI(t, "inspect", "--kafka", strings.Join(kc.ListenAddrs(), ","), "--postgres", url, "--pg-schema", schema)
	if code != 1 || !strings.Contains(stderr, "holds no Plait store") {
		t.Fatalf("inspect of a schema with no store: exit %d, %s", code, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("inspect made schema %s (%d, %v)", schema, n, err)
	}
}

// TestScaledServeGivesUpOnASilentDatabase: a PostgreSQL (or Kafka) that
// takes the connection and never answers makes serve fail after
// --start-timeout, not hang.
func TestScaledServeGivesUpOnASilentDatabase(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	start := time.Now()
	code, _, stderr := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--kafka", strings.Join(kc.ListenAddrs(), ","),
		"--postgres", "postgres://postgres@"+silent.Addr().String()+"/test?sslmode=disable", "--start-timeout", "1s")
	if took := time.Since(start); code != 1 || !strings.Contains(stderr, "no answer within --start-timeout 1s") || took > 10*time.Second {
		t.Fatalf("serve on a silent PostgreSQL: exit %d after %v, %s", code, took, stderr)
	}
}

// inspect opens the store only to read it: it changes nothing in the
// file, not even a list index the application declares and the store
// lacks (which serve or replay would create), and it works while a server
// has the store open.
func TestInspectChangesNothingInTheStore(t *testing.T) {
	data := t.TempDir()
	sf := storeFlags{data: data, synchronous: "NORMAL"}
	ctx := context.Background()
	// A store with one command, made without the list indexes.
	st, err := sqlite.Open(ctx, sf.path(orderdesk.App()), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	bare := orderdesk.App()
	bare.Reactors = nil
	e, err := engine.New(bare, st, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := enginetest.Background(t, e)
	if _, err := e.Submit(ctx, plait.Command{Type: "customer", AggregateID: "c1", Name: "create",
		Data: json.RawMessage(`{"name":"Ann","email":"ann@example.com"}`)}, plait.User{ID: "local"}); err != nil {
		t.Fatal(err)
	}
	schema := func() string {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+sf.path(orderdesk.App())+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT type, name FROM sqlite_master ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var typ, name string
			if err := rows.Scan(&typ, &name); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s\n", typ, name)
		}
		return b.String()
	}
	before := schema()
	// While the store is open and served.
	if code, out, stderr := runCLI(t, "inspect", "--data", data); code != 0 || !strings.Contains(out, "log head") {
		t.Fatalf("inspect of a served store: exit %d\n%s%s", code, out, stderr)
	}
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// And closed.
	if code, out, stderr := runCLI(t, "inspect", "--data", data); code != 0 || !strings.Contains(out, "log head    2") {
		t.Fatalf("inspect of a closed store: exit %d\n%s%s", code, out, stderr)
	}
	if after := schema(); after != before {
		t.Fatalf("inspect changed the store's schema:\nbefore\n%safter\n%s", before, after)
	}
}

// TestScaledOutAnotherApplicationsSchemaIsRefused: serve and inspect,
// scaled out, refuse a schema another application claimed (two
// applications left on the default schema), before Kafka, saying what to
// do.
func TestScaledOutAnotherApplicationsSchemaIsRefused(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema, Application: "helpdesk"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	want := `holds the store of application "helpdesk", not "orderdesk"`
	for _, args := range [][]string{
		{"serve", "--kafka", "127.0.0.1:1", "--postgres", url, "--pg-schema", schema, "--addr", "127.0.0.1:0", "--start-timeout", "5s"},
		{"inspect", "--kafka", "127.0.0.1:1", "--postgres", url, "--pg-schema", schema},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "--pg-schema of its own") {
			t.Errorf("%s on helpdesk's schema: exit %d, %s", args[0], code, stderr)
		}
	}
}
