package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/plaithq/plait/store/postgres/pgtest"
	"hash/fnv"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
)

// scaled is one engine instance on a kfake broker and a PostgreSQL schema.
type scaled struct {
	st  *postgres.Store
	log *kafka.Log
	e   *engine.Engine
}

func startScaled(t *testing.T, brokers []string, url, schema string) *scaled {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := kafka.New(ctx, enginetest.App(), kafka.Options{Brokers: brokers, Prefix: schema, Group: schema, Offsets: st, SessionTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e, err := engine.New(enginetest.App(), st, engine.Options{CommandLog: l, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-e.Ready()
	return &scaled{st: st, log: l, e: e}
}

// publish runs a publisher until the returned function is called.
func (s *scaled) publish(t *testing.T, cps engine.Checkpoints) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &kafka.Publisher{Log: s.log, Feed: s.st, Changed: s.e.FeedChanged, Checkpoints: cps,
		Leaser: leases{s.st}, Standby: 100 * time.Millisecond, Page: 7}
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func (s *scaled) submit(t *testing.T, id, counter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.e.Submit(ctx, plait.Command{ID: id, Type: "counter", AggregateID: counter, Name: "add", Data: json.RawMessage(`{"by":2}`)}, plait.User{ID: "tester"})
	if err != nil {
		t.Fatalf("submit %s: %v", id, err)
	}
	if err := s.e.WaitSettled(ctx, r.Command.CorrelationID); err != nil {
		t.Fatalf("settle %s: %v", id, err)
	}
}

// waitPublished waits until the publisher's checkpoint reaches the head.
func (s *scaled) waitPublished(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		head, err := s.st.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos, err := s.st.Checkpoint(ctx, kafka.PublisherCheckpoint)
		if err != nil {
			t.Fatal(err)
		}
		if pos == head {
			return head
		}
		if time.Now().After(deadline) {
			t.Fatalf("publisher at %d, head at %d", pos, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kcatRecord is one line of kcat -J.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       string   `json:"key"`
	Payload   string   `json:"payload"`
	Headers   []string `json:"headers"`
}

func (r kcatRecord) header(k string) string {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == k {
			return r.Headers[i+1]
		}
	}
	return ""
}

// kcat reads a whole topic with Debian's kcat, a Kafka client that is not
// Plait's (librdkafka).
func kcat(t *testing.T, broker, topic string) []kcatRecord {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run scripts/ensure-deps (apt-get install kcat)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	var recs []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat printed %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestEventsReadableByKcat publishes events and outcomes and reads them
// back with kcat: the value is the event's data and the envelope is in the
// documented CloudEvents headers.
func TestEventsReadableByKcat(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	s := startScaled(t, brokers, url, schema)
	s.publish(t, s.st)
	for i := range 5 {
		s.submit(t, fmt.Sprintf("cmd%d", i), fmt.Sprintf("k%d", i%2))
	}
	s.waitPublished(t)

	ctx := context.Background()
	want, err := s.st.ReadEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]plait.Event{}
	for _, ev := range want {
		if ev.Type == "counter" {
			byID[ev.ID] = ev
		}
	}
	if len(byID) != 5 {
		t.Fatalf("%d counter events in the store, want 5", len(byID))
	}
	recs := kcat(t, brokers[0], schema+".counter.events")
	if len(recs) != len(byID) {
		t.Fatalf("kcat read %d records, want %d: %+v", len(recs), len(byID), recs)
	}
	for _, r := range recs {
		ev, ok := byID[r.header("ce_id")]
		if !ok {
			t.Fatalf("record with ce_id %q is no event of the store: %+v", r.header("ce_id"), r)
		}
		delete(byID, ev.ID)
		var data, wantData any
		if err := json.Unmarshal([]byte(r.Payload), &data); err != nil {
			t.Fatalf("value %q is not JSON: %v", r.Payload, err)
		}
		json.Unmarshal(ev.Data, &wantData)
		if fmt.Sprint(data) != fmt.Sprint(wantData) {
			t.Errorf("value of %s = %s, want the event's data %s", ev.ID, r.Payload, ev.Data)
		}
		at, err := time.Parse(time.RFC3339Nano, r.header("ce_time"))
		if err != nil || !at.Equal(ev.At) {
			t.Errorf("ce_time of %s = %q (%v), want %s", ev.ID, r.header("ce_time"), err, ev.At.Format(time.RFC3339Nano))
		}
		for k, v := range map[string]string{
			"ce_specversion":      "1.0",
			"ce_source":           "/contract/counter/" + ev.AggregateID,
			"ce_type":             "counter.added",
			"ce_subject":          ev.AggregateID,
			"content-type":        "application/json",
			"plait_seq":           strconv.FormatInt(ev.Seq, 10),
			"plait_correlationid": ev.CorrelationID,
			"plait_causationid":   ev.CausationID,
			"plait_position":      strconv.FormatInt(ev.Position, 10),
			"plait_user":          "tester",
		} {
			if got := r.header(k); got != v {
				t.Errorf("header %s of %s = %q, want %q", k, ev.ID, got, v)
			}
		}
		if r.Key != ev.AggregateID {
			t.Errorf("key of %s = %q, want the aggregate id %q", ev.ID, r.Key, ev.AggregateID)
		}
	}

	// The view's events carry their lineage.
	tally := kcat(t, brokers[0], schema+".tally.events")
	if len(tally) != 5 {
		t.Fatalf("kcat read %d tally events, want 5", len(tally))
	}
	var lineage map[string]plait.Lineage
	if err := json.Unmarshal([]byte(tally[0].header("plait_lineage")), &lineage); err != nil || lineage["adds"].Type != "counter" {
		t.Errorf("plait_lineage = %q (%v), want the counter as the source of adds", tally[0].header("plait_lineage"), err)
	}

	// Every command's outcome, accepted, with the command in the value.
	outs := kcat(t, brokers[0], schema+".outcomes")
	if len(outs) != 10 { // 5 adds, 5 notes from the reactor
		t.Fatalf("kcat read %d outcomes, want 10", len(outs))
	}
	for _, r := range outs {
		var out plait.Outcome
		if err := json.Unmarshal([]byte(r.Payload), &out); err != nil {
			t.Fatalf("outcome value %q: %v", r.Payload, err)
		}
		if out.Command.ID != r.header("ce_id") || out.Status != plait.StatusAccepted || r.header("ce_type") != "plait.outcome.accepted" || r.header("plait_status") != "accepted" {
			t.Errorf("outcome record %+v: value %+v", r, out)
		}
	}
}

// failingCheckpoints fails the first saves of the publisher's checkpoint,
// as a crash between the produce and the save would leave it.
type failingCheckpoints struct {
	engine.Checkpoints
	fails atomic.Int32
}

func (f *failingCheckpoints) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("injected: crash before the checkpoint")
	}
	return f.Checkpoints.SaveCheckpoint(ctx, name, pos)
}

// TestPublisherLeaseAndRepublish runs two instances' publishers: only the
// lease holder publishes, the other takes over when it stops, and a page
// republished after a failed checkpoint carries the same ids. Every event
// reaches Kafka; the only duplicates are republished pages.
func TestPublisherLeaseAndRepublish(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	a := startScaled(t, brokers, url, schema)
	b := startScaled(t, brokers, url, schema)

	fa := &failingCheckpoints{Checkpoints: a.st}
	fa.fails.Store(2)
	stopA := a.publish(t, fa)
	for i := range 10 {
		a.submit(t, fmt.Sprintf("a%d", i), "x")
	}
	a.waitPublished(t)
	if fa.fails.Load() >= 0 {
		t.Fatalf("the injected checkpoint failures did not happen")
	}
	// b stands by while a holds the lease.
	lease, ok, err := b.st.TryLease(context.Background(), kafka.PublisherCheckpoint)
	if err != nil || ok {
		if ok {
			lease.Release()
		}
		t.Fatalf("b took the publisher's lease while a holds it (err %v)", err)
	}
	b.publish(t, b.st)
	stopA()
	for i := range 10 {
		b.submit(t, fmt.Sprintf("b%d", i), "y")
	}
	b.waitPublished(t)

	recs := kcat(t, brokers[0], schema+".counter.events")
	seen := map[string]kcatRecord{}
	for _, r := range recs {
		id := r.header("ce_id")
		if prev, ok := seen[id]; ok && (prev.Payload != r.Payload || prev.header("plait_position") != r.header("plait_position")) {
			t.Errorf("%s republished differently: %+v and %+v", id, prev, r)
		}
		seen[id] = r
	}
	evs, err := a.st.ReadEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Type != "counter" {
			continue
		}
		n++
		if _, ok := seen[ev.ID]; !ok {
			t.Errorf("event %s never reached Kafka", ev.ID)
		}
	}
	if n != 20 || len(seen) != 20 {
		t.Fatalf("%d events in the store, %d distinct on Kafka, want 20", n, len(seen))
	}
	if len(recs) == len(seen) {
		t.Errorf("no record was republished after the failed checkpoints")
	}
	// Per aggregate, Kafka has the events in seq order (first deliveries).
	last := map[string]int64{}
	for _, r := range recs {
		seq, _ := strconv.ParseInt(r.header("plait_seq"), 10, 64)
		if seq > last[r.Key]+1 {
			t.Errorf("%s: seq %d after %d", r.Key, seq, last[r.Key])
		}
		last[r.Key] = max(last[r.Key], seq)
	}
}

// TestLargeCommand appends a command as large as the HTTP API takes (1 MiB
// of data, more than Kafka's default record size) and publishes its event.
func TestLargeCommand(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	s := startScaled(t, brokers, url, schema)
	s.publish(t, s.st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	label := strings.Repeat("x", 1<<20)
	r, err := s.e.Submit(ctx, plait.Command{ID: "big", Type: "counter", AggregateID: "k", Name: "label",
		Data: json.RawMessage(`{"label":"` + label + `"}`)}, plait.User{ID: "tester"})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	out, err := s.e.Await(ctx, r.Command.ID)
	if err != nil || out.Status != plait.StatusAccepted {
		t.Fatalf("outcome %v %v, want accepted", out.Status, err)
	}
	s.waitPublished(t)
}

// TestPublisherRetakesALostLease ends the session of the publisher's lease
// (as a database restart or a network cut would): the publisher notices,
// takes the lease again on a new connection and publishes what came since.
func TestPublisherRetakesALostLease(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	s := startScaled(t, brokers, url, schema)
	s.publish(t, s.st)
	s.submit(t, "before", "k")
	s.waitPublished(t)

	h := fnv.New64a()
	h.Write([]byte("plait lease " + schema + ". " + kafka.PublisherCheckpoint))
	key := int64(h.Sum64())
	ctx := context.Background()
	var ended int
	err := s.st.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
		AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, key).Scan(&ended)
	if err != nil || ended != 1 {
		t.Fatalf("ended %d sessions holding the lease (%v), want 1", ended, err)
	}
	s.submit(t, "after", "k")
	s.waitPublished(t)
	recs := kcat(t, brokers[0], schema+".counter.events")
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.header("ce_id")] = true
	}
	if !ids["before.1"] || !ids["after.1"] {
		t.Fatalf("events on Kafka: %v, want before.1 and after.1", ids)
	}
}

// TestAStuckPublisherLosesItsLease: the instance holding the publisher's
// lease stops (frozen: its database session, and so its lease, live on)
// while events wait. An instance standing by sees the checkpoint stand
// still past Takeover, ends the holder's session, takes the lease and
// publishes. The holder finds its lease gone.
func TestAStuckPublisherLosesItsLease(t *testing.T) {
	brokers := cluster(t).ListenAddrs()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	s := startScaled(t, brokers, url, schema)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	frozen := frozenFeed{reading: make(chan struct{}, 1)}
	held := make(chan kafka.Lease, 1)
	stuck := &kafka.Publisher{Log: s.log, Feed: frozen, Checkpoints: s.st, Leaser: keptLeases{leases{s.st}, held}, Standby: 50 * time.Millisecond}
	stuckDone := make(chan struct{})
	go func() { defer close(stuckDone); stuck.Run(ctx) }()
	defer func() { cancel(); <-stuckDone }()
	var lease kafka.Lease
	select {
	case <-frozen.reading: // it holds the lease and is stuck reading the feed
		lease = <-held
	case <-time.After(15 * time.Second):
		t.Fatal("the publisher to freeze never took the lease")
	}
	s.submit(t, "waiting", "k")

	standby := &kafka.Publisher{Log: s.log, Feed: s.st, Checkpoints: s.st, Leaser: leases{s.st},
		Standby: 50 * time.Millisecond, Takeover: 300 * time.Millisecond}
	standbyDone := make(chan struct{})
	go func() { defer close(standbyDone); standby.Run(ctx) }()
	defer func() { cancel(); <-standbyDone }()
	s.waitPublished(t)
	if err := lease.Check(context.Background()); err == nil {
		t.Fatal("the stuck publisher still holds its lease")
	}
	recs := kcat(t, brokers[0], schema+".counter.events")
	if len(recs) != 1 || recs[0].header("ce_id") != "waiting.1" {
		t.Fatalf("events on Kafka: %+v, want waiting.1", recs)
	}
}

// frozenFeed is the feed of a publisher that froze: a read never returns
// until its context ends.
type frozenFeed struct{ reading chan struct{} }

func (f frozenFeed) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	select {
	case f.reading <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// keptLeases hands every lease it grants to held as well.
type keptLeases struct {
	leases
	held chan<- kafka.Lease
}

func (l keptLeases) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	lease, ok, err := l.leases.TryLease(ctx, name)
	if ok {
		select {
		case l.held <- lease:
		default: // taken again: the test has the first
		}
	}
	return lease, ok, err
}
