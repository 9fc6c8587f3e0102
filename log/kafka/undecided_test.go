package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// scaledOut makes app's PostgreSQL store in a fresh schema, and returns
// it with a function that opens an instance's Kafka log of app on a fresh
// cluster, partitions per topic; both are closed when t ends.
func scaledOut(ctx context.Context, t *testing.T, app plait.App, partitions int32) (*postgres.Store, func() *kafka.Log) {
	t.Helper()
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func() *kafka.Log {
		l, err := kafka.New(ctx, app, kafka.Options{Brokers: brokers, Prefix: schema, Group: schema, Partitions: partitions,
			Offsets: st, SessionTimeout: time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
}

// TestStatusOfACommandSentToAnotherInstance asks GET /commands/{id} of an
// instance other than the one that took the command: while the command is
// in the command log and not decided, the answer is pending (not 404); once
// decided, its outcome; an id never sent stays 404.
func TestStatusOfACommandSentToAnotherInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app := enginetest.App()
	st, open := scaledOut(ctx, t, app, 4)
	// Instance a took the command: it is in the log, acknowledged. No
	// instance consumes yet, so it is not decided.
	a, b := open(), open()
	cmd := plait.Command{ID: "sent-to-a", Type: "counter", AggregateID: "x", Name: "add", Data: json.RawMessage(`{"by":2}`),
		CorrelationID: "sent-to-a", User: "u", At: time.Now().UTC()}
	if err := a.Append(ctx, cmd, nil); err != nil {
		t.Fatal(err)
	}
	// A few other commands on other partitions, so that the tails are read.
	for _, id := range []string{"p", "q", "r", "s"} {
		c := cmd
		c.ID, c.AggregateID, c.CorrelationID = "other-"+id, id, "other-"+id
		if err := a.Append(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.New(app, st, engine.Options{CommandLog: b, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(e, httpapi.Options{Logger: quiet}))
	defer srv.Close()
	status := func(id string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/commands/" + id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Status
	}
	if code, s := status(cmd.ID); code != http.StatusOK || s != "pending" {
		t.Fatalf("GET /commands/%s on b before it is decided: %d %q, want 200 pending", cmd.ID, code, s)
	}
	if code, _ := status("never-sent"); code != http.StatusNotFound {
		t.Fatalf("GET /commands/never-sent: %d, want 404", code)
	}
	// The command comes back whole, so that its sender can be told apart.
	if got, ok, err := b.Undecided(ctx, cmd.ID); err != nil || !ok || got.User != cmd.User || got.AggregateID != cmd.AggregateID {
		t.Fatalf("Undecided(%s) before it is decided = %+v, %v, %v; want the command", cmd.ID, got, ok, err)
	}

	// b starts consuming: the command is decided, and its outcome answers.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for {
		code, s := status(cmd.ID)
		if code == http.StatusOK && s == "accepted" {
			break
		}
		if code != http.StatusOK || s != "pending" {
			t.Fatalf("GET /commands/%s while it is decided: %d %q, want 200 pending then accepted", cmd.ID, code, s)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never decided", cmd.ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, undecided, err := b.Undecided(ctx, cmd.ID); err != nil || undecided {
		t.Fatalf("Undecided(%s) after its outcome = %v, %v; want false", cmd.ID, undecided, err)
	}
	if code, _ := status("never-sent"); code != http.StatusNotFound {
		t.Fatalf("GET /commands/never-sent once caught up: %d, want 404", code)
	}
}

// TestAWaitOnAnotherUsersIDPendingElsewhereIsForbidden: scaled out, bob
// sends a command under the id of ann's, which another instance took and
// is still deciding, and waits for its outcome. The id's outcome is ann's,
// known only once decided: bob gets 403, not ann's outcome.
func TestAWaitOnAnotherUsersIDPendingElsewhereIsForbidden(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gate := make(chan struct{})
	deciding := make(chan struct{}, 1)
	type note struct {
		Text string `json:"text"`
	}
	secret := plait.NewAggregate[note]("secret",
		plait.Handle("write", func(s note, c plait.Cmd[note]) ([]plait.Change, error) {
			select {
			case deciding <- struct{}{}:
			default:
			}
			<-gate
			return []plait.Change{plait.Emit("written", c.Data)}, nil
		}),
		plait.Apply("written", func(s note, e note) note { return e }),
		plait.WithAccess[note](plait.Access{OwnerOnly: true}),
	)
	app := plait.App{Name: "secrets", Aggregates: []plait.Definition{secret}}
	st, open := scaledOut(ctx, t, app, 1)
	l := open()
	// ann's command, as another instance appended it.
	ann := plait.Command{ID: "ann-1", Type: "secret", AggregateID: "s1", Name: "write", Data: json.RawMessage(`{"text":"ann's secret"}`),
		CorrelationID: "ann-1", User: "ann", At: time.Now().UTC()}
	if err := l.Append(ctx, ann, nil); err != nil {
		t.Fatal(err)
	}
	appended := make(chan string, 4)
	e, err := engine.New(app, st, engine.Options{CommandLog: notifyingLog{l, appended}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	secretKey := []byte("a secret of at least thirty-two bytes")
	srv := httptest.NewServer(httpapi.New(e, httpapi.Options{Logger: quiet, Auth: httpapi.NewHS256Auth(secretKey)}))
	defer srv.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() { stop(); <-done }()
	select {
	case <-deciding: // ann's command is being decided, held at the gate
	case <-ctx.Done():
		t.Fatal("ann's command was never decided")
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secretKey)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.URL+"/commands?wait=outcome&timeout=30s",
			strings.NewReader(`{"id":"ann-1","type":"secret","aggregateId":"s9","name":"write","data":{"text":"bob's"}}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	select {
	case by := <-appended: // bob's command is in the log: his submission found no outcome
		if by != "bob" {
			t.Fatalf("appended by %q, want bob", by)
		}
	case <-ctx.Done():
		t.Fatal("bob's command was never appended")
	}
	close(gate)
	resp := <-answered
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), "ann's secret") {
		t.Fatalf("bob's wait on ann's id: %s %s, want 403 without ann's data", resp.Status, body)
	}
}

// notifyingLog is the Kafka log that says, once it has appended a command,
// who sent it.
type notifyingLog struct {
	*kafka.Log
	appended chan<- string
}

func (l notifyingLog) Append(ctx context.Context, cmd plait.Command, sender *plait.User) error {
	err := l.Log.Append(ctx, cmd, sender)
	if err == nil && sender != nil {
		l.appended <- sender.ID
	}
	return err
}

// TestTheSearchForACommandElsewhereIsBounded: GET /commands/{id} of a
// command no instance here took searches the commands topics. While the
// brokers do not answer, the search ends after StatusTimeout with an
// error rather than holding the request.
func TestTheSearchForACommandElsewhereIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kc := cluster(t)
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := kafka.New(ctx, enginetest.App(), kafka.Options{Brokers: kc.ListenAddrs(), Prefix: schema, Group: schema, Partitions: 1,
		Offsets: st, StatusTimeout: 300 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var slow atomic.Bool
	slow.Store(true)
	defer slow.Store(false)
	kc.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if slow.Load() && req.Key() == kmsg.ListOffsets.Int16() {
			time.Sleep(2 * time.Second)
		}
		return nil, nil, false
	})
	start := time.Now()
	_, _, err = l.Undecided(ctx, "anywhere")
	if took := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || took > 1500*time.Millisecond {
		t.Fatalf("Undecided with the brokers silent: %v after %v, want the deadline's error within the timeout", err, took)
	}
}

// TestConcurrentSearchesForCommandsShareScans: many status requests at
// once, for commands taken elsewhere and for ids never sent, are answered
// by a few shared scans of the commands topics, not one reader each, and
// every answer is still right.
func TestConcurrentSearchesForCommandsShareScans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, open := scaledOut(ctx, t, enginetest.App(), 4)
	l := open()
	const sent = 8
	for i := range sent {
		id := fmt.Sprintf("sent-%d", i)
		cmd := plait.Command{ID: id, Type: "counter", AggregateID: fmt.Sprintf("x%d", i), Name: "add", Data: json.RawMessage(`{"by":1}`),
			CorrelationID: id, User: "u", At: time.Now().UTC()}
		if err := l.Append(ctx, cmd, nil); err != nil {
			t.Fatal(err)
		}
	}
	const asks = 40
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range asks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id, want := fmt.Sprintf("sent-%d", i%sent), true
			if i%2 == 1 {
				id, want = fmt.Sprintf("never-sent-%d", i), false
			}
			cmd, ok, err := l.Undecided(ctx, id)
			if err != nil || ok != want || (ok && cmd.ID != id) {
				t.Errorf("Undecided(%s) = %q, %v, %v; want found %v", id, cmd.ID, ok, err, want)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := l.Scans(); n > asks/4 {
		t.Fatalf("%d lookups at once ran %d scans of the commands topics, want them shared", asks, n)
	}
	t.Logf("%d lookups, %d scans", asks, l.Scans())
}
