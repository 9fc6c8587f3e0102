package orderdesk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/log/kafka"
	"github.com/plaithq/plait/store/postgres"
	"github.com/plaithq/plait/store/postgres/pgtest"
)

// The personal data of the scaled test's subject, unlike anything else
// written: the name has a letter outside ASCII, so that an escaped form is
// a different string. control is not personal: it must be found raw.
var (
	zoe     = []string{"Zoë Scaledforget-Quince", "zoe.scaledforget@example.net", "Zoë Q. Scaledforget-Renamed", "Zoë Duplicate-Scaledforget", "zoe.dup.scaledforget@example.net"}
	control = "SKU-SCALEDFORGET-CONTROL"
)

// pgLeases adapts postgres.Store's advisory-lock leases to kafka.Leaser.
type pgLeases struct{ st *postgres.Store }

func (l pgLeases) TryLease(ctx context.Context, name string) (kafka.Lease, bool, error) {
	lease, ok, err := l.st.TryLease(ctx, name)
	if err != nil || !ok {
		return nil, false, err
	}
	return lease, true, nil
}

// scaled is orderdesk's PrivateApp run as plait serve --kafka --postgres
// runs it, in process: the command log on Kafka (kfake, over loopback TCP),
// the store on PostgreSQL, the publisher of events and outcomes, and the
// HTTP API in front.
type scaled struct {
	t       *testing.T
	brokers []string
	pgURL   string
	schema  string
	st      *postgres.Store
	e       *engine.Engine
	ts      *httptest.Server
}

func startScaled(t *testing.T) *scaled {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	s := &scaled{t: t, brokers: cluster.ListenAddrs(), pgURL: pgtest.URL(t)}
	s.schema = pgtest.FreshSchema(t, s.pgURL)
	app := orderdesk.PrivateApp()
	if s.st, err = postgres.Open(ctx, s.pgURL, postgres.Options{Schema: s.schema}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.st.Close() })
	if err := s.st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		t.Fatal(err)
	}
	klog, err := kafka.New(ctx, app, kafka.Options{Brokers: s.brokers, Partitions: 2, Offsets: s.st,
		SessionTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { klog.Close() })
	if s.e, err = engine.New(app, s.st, engine.Options{CommandLog: klog, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.e.Run(runCtx) })
	select {
	case <-s.e.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the scaled engine did not start")
	}
	pub := &kafka.Publisher{Log: klog, Feed: s.st, Changed: s.e.FeedChanged, Checkpoints: s.st,
		Leaser: pgLeases{s.st}, Standby: 100 * time.Millisecond}
	wg.Go(func() { pub.Run(runCtx) })
	srv := httpapi.New(s.e, httpapi.Options{Logger: quiet})
	s.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.CloseStreams()
		s.ts.Close()
		stop()
		wg.Wait()
	})
	return s
}

// do sends a request to the API and returns the status and body.
func (s *scaled) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// command posts a command, waits until it settled and checks the status;
// it returns the command's id and the answer.
func (s *scaled) command(typ, id, name string, data any, want int) (string, []byte) {
	s.t.Helper()
	status, b := s.do("POST", "/commands?wait=settled&timeout=20s",
		M{"type": typ, "aggregateId": id, "name": name, "data": data})
	if status != want {
		s.t.Fatalf("%s %s.%s: %d %s, want %d", id, typ, name, status, b, want)
	}
	var r struct{ ID string }
	json.Unmarshal(b, &r)
	if r.ID == "" {
		s.t.Fatalf("%s %s.%s: no id in %s", id, typ, name, b)
	}
	return r.ID, b
}

// published waits until the publisher put every item of the feed on Kafka.
func (s *scaled) published() {
	s.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, err := s.st.Head(ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		cp, err := s.st.Checkpoint(ctx, kafka.PublisherCheckpoint)
		if err != nil {
			s.t.Fatal(err)
		}
		if cp >= head && head > 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the publisher is at %d, the feed at %d", cp, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpPostgres returns every row of every table of the store's schema, as
// PostgreSQL prints a row: JSONB as its text, bytea in hex.
func (s *scaled) dumpPostgres() (dump []byte, rows map[string]int) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pgURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	tr, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, s.schema)
	if err != nil {
		s.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(tr, pgx.RowTo[string])
	if err != nil {
		s.t.Fatal(err)
	}
	if len(tables) == 0 {
		s.t.Fatalf("no table in schema %s", s.schema)
	}
	var buf bytes.Buffer
	rows = map[string]int{}
	for _, table := range tables {
		r, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{s.schema, table}.Sanitize()+` t`)
		if err != nil {
			s.t.Fatal(err)
		}
		texts, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			s.t.Fatalf("dump %s: %v", table, err)
		}
		rows[table] = len(texts)
		for _, text := range texts {
			fmt.Fprintf(&buf, "%s: %s\n", table, text)
		}
	}
	return buf.Bytes(), rows
}

// dumpPostgresFiles returns the data files of every table, TOAST table and
// index of the store's schema, as they are on disk after a checkpoint, read
// through the server (pg_read_binary_file): what a copy of the disk would
// hold, deleted rows not yet reclaimed included.
func (s *scaled) dumpPostgresFiles() []byte {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pgURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		s.t.Fatalf("checkpoint (the test's PostgreSQL user must be a superuser): %v", err)
	}
	r, err := conn.Query(ctx, `
		WITH rels AS (
			SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace
			UNION SELECT reltoastrelid FROM pg_class WHERE relnamespace = $1::regnamespace AND reltoastrelid <> 0
			UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON c.reltoastrelid = i.indrelid WHERE c.relnamespace = $1::regnamespace)
		SELECT pg_relation_filepath(oid) FROM rels WHERE pg_relation_filepath(oid) IS NOT NULL`, s.schema)
	if err != nil {
		s.t.Fatal(err)
	}
	paths, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		s.t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, path := range paths {
		var b []byte
		if err := conn.QueryRow(ctx, `SELECT pg_read_binary_file($1)`, path).Scan(&b); err != nil {
			s.t.Fatalf("read %s (the test's PostgreSQL user must be a superuser): %v", path, err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// dumpKafka returns the key, the headers and the value of every record of
// every topic, read with a plain consumer from the start to the end
// offsets, and the records counted by topic.
func (s *scaled) dumpKafka() (dump []byte, records map[string]int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topics, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics.Names()...)
	if err != nil {
		s.t.Fatal(err)
	}
	want := 0
	left := map[string]map[int32]int64{} // offsets still to read to
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			s.t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
			want++
		}
	})
	records = map[string]int{}
	for _, name := range topics.Names() {
		records[name] = 0
	}
	if want == 0 {
		s.t.Fatal("no record in any topic")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(topics.Names()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	var buf bytes.Buffer
	for want > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("reading the topics: %d partitions not read to their end: %v", want, left)
		}
		fs.EachError(func(topic string, p int32, err error) { s.t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			records[r.Topic]++
			fmt.Fprintf(&buf, "%s/%d@%d key=%s value=%s", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
			for _, h := range r.Headers {
				fmt.Fprintf(&buf, " %s=%s", h.Key, h.Value)
			}
			buf.WriteByte('\n')
			if end, ok := left[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				want--
			}
		})
	}
	return buf.Bytes(), records
}

// forms returns s as it could be written down: as it is, JSON-escaped to
// ASCII, in hex (bytea's text form) and base64 in both alphabets at any
// alignment (the middle of the encoding, which does not depend on the
// bytes around it).
func forms(s string) map[string][]byte {
	out := map[string][]byte{
		"plain": []byte(s),
		"ascii-escaped": func() []byte {
			q := strconv.QuoteToASCII(s)
			return []byte(q[1 : len(q)-1])
		}(),
		"hex": []byte(hex.EncodeToString([]byte(s))),
	}
	for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
		for shift := range 3 {
			b := enc.EncodeToString(append(make([]byte, shift), s...))
			out[fmt.Sprintf("%s+%d", name, shift)] = []byte(b[4 : len(b)-4])
		}
	}
	return out
}

// noneIn fails the test for every form of every string found in dump.
func noneIn(t *testing.T, what string, dump []byte, strs []string) {
	t.Helper()
	for _, s := range strs {
		for form, b := range forms(s) {
			if i := bytes.Index(dump, b); i >= 0 {
				lo, hi := max(0, i-200), min(len(dump), i+len(b)+200)
				t.Errorf("%s: %q found (%s) in …%s…", what, s, form, dump[lo:hi])
			}
		}
	}
}

// TestScaledForgetLeavesNoPlaintextInKafkaOrPostgres runs orderdesk, with
// the customer's name and email personal, on the Kafka command log and the
// PostgreSQL store. Commands carrying a customer's name and email go
// through the HTTP API, accepted and rejected; the API shows them back.
// Then the customer is forgotten over HTTP, and the test reads raw every
// row of every table of the schema (the key table included) and every
// record of every topic (commands, events, outcomes: key, headers and
// value): no form of the personal data is anywhere, before the forget as
// after it, the subject's key is gone, and the API reads it as erased.
// TestScaledListsFilterSealedFields: on Kafka and PostgreSQL as embedded,
// a list cannot sort on a sealed field, the type's own or a view's copy of
// another's (plait.PersonalCopies) — PostgreSQL holds its ciphertext — and
// answers 400 naming it; it filters on its opened value, and projects it.
func TestScaledListsFilterSealedFields(t *testing.T) {
	s := startScaled(t)
	s.command("customer", "c1", "create", M{"name": zoe[0], "email": zoe[1]}, http.StatusOK)
	s.command("customer", "c2", "create", M{"name": "Bob Stays", "email": "bob@example.com"}, http.StatusOK)
	s.command("order", "o1", "place", M{"customerId": "c1", "lines": []M{{"sku": "A", "qty": 1, "price": 2}}}, http.StatusOK)
	s.command("order", "o2", "place", M{"customerId": "c2", "lines": []M{{"sku": "A", "qty": 1, "price": 2}}}, http.StatusOK)
	for query, param := range map[string]string{
		"customer?sort=-name": "sort", "customer?sort=email": "sort", "orderList?sort=customerName": "sort",
	} {
		status, b := s.do("GET", "/lists/"+query, nil)
		var p struct{ Errors []plait.FieldError }
		json.Unmarshal(b, &p)
		if status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Path != param ||
			p.Errors[0].Code != httpapi.CodeSealedField || !strings.Contains(p.Errors[0].Message, "personal data") {
			t.Errorf("?%s: %d %s, want 400 sealed_field at %s", query, status, b, param)
		}
	}
	for query, want := range map[string]string{
		"customer?eq.email=" + url.QueryEscape(zoe[1]):         `"id":"c1"`,
		"customer?prefix.name=Bob":                             `"id":"c2"`,
		"orderList?eq.customerName=" + url.QueryEscape(zoe[0]): `"id":"o1"`,
	} {
		status, b := s.do("GET", "/lists/"+query, nil)
		if status != http.StatusOK || !bytes.Contains(b, []byte(want)) || bytes.Count(b, []byte(`"id"`)) != 1 {
			t.Errorf("?%s: %d %s, want the one item %s", query, status, b, want)
		}
	}
	status, b := s.do("GET", "/lists/customer?fields=name,email", nil)
	if status != http.StatusOK || !bytes.Contains(b, []byte(zoe[0])) || !bytes.Contains(b, []byte(zoe[1])) {
		t.Fatalf("projection of the sealed fields: %d %s", status, b)
	}
}

func TestScaledForgetLeavesNoPlaintextInKafkaOrPostgres(t *testing.T) {
	s := startScaled(t)
	ctx := context.Background()
	lines := []M{{"sku": control, "qty": 2, "price": 5}}
	created, _ := s.command("customer", "c1", "create", M{"name": zoe[0], "email": zoe[1]}, http.StatusOK)
	s.command("customer", "c2", "create", M{"name": "Bob Stays", "email": "bob@example.com"}, http.StatusOK)
	s.command("order", "o1", "place", M{"customerId": "c1", "lines": lines, "currency": "EUR"}, http.StatusOK)
	s.command("order", "o2", "place", M{"customerId": "c2", "lines": lines, "currency": "EUR"}, http.StatusOK)
	s.command("customer", "c1", "rename", M{"name": zoe[2]}, http.StatusOK)
	rejected, answer := s.command("customer", "c1", "create", M{"name": zoe[3], "email": zoe[4]}, http.StatusUnprocessableEntity)
	if !bytes.Contains(answer, []byte(zoe[3])) || !bytes.Contains(answer, []byte(zoe[4])) {
		t.Fatalf("the rejection does not give its sender the command back: %s", answer)
	}
	s.published()

	// Before: the API gives the data back — the checks after can fail.
	reads := func() map[string][]byte {
		out := map[string][]byte{}
		for what, path := range map[string]string{
			"customer": "/aggregates/customer/c1", "history": "/aggregates/customer/c1/events",
			"created": "/commands/" + created, "rejected": "/commands/" + rejected,
			"order list": "/lists/orderList", "customer list": "/lists/customer",
		} {
			status, b := s.do("GET", path, nil)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, b)
			}
			out[what] = b
		}
		return out
	}
	before := reads()
	for what, want := range map[string][]string{
		"customer": {zoe[2], zoe[1]}, "history": {zoe[0], zoe[1], zoe[2]}, "created": {zoe[0], zoe[1]},
		"rejected": {"exists"}, "order list": {zoe[2], "Bob Stays"}, "customer list": {zoe[2], "Bob Stays"},
	} {
		for _, w := range want {
			if !bytes.Contains(before[what], []byte(w)) {
				t.Fatalf("the API's %s before forget does not show %q: %s", what, w, before[what])
			}
		}
	}
	key, ok, err := s.st.Key(ctx, "c1", false)
	if err != nil || !ok {
		t.Fatalf("c1's key: %v %v", ok, err)
	}
	keyHex := []byte(hex.EncodeToString(key))

	// The raw storage holds the records — the control value, the sealed
	// personal values, the key — and never the personal data itself.
	pg, pgRows := s.dumpPostgres()
	kf, kfRecords := s.dumpKafka()
	t.Logf("PostgreSQL rows by table: %v", pgRows)
	t.Logf("Kafka records by topic: %v", kfRecords)
	for what, dump := range map[string][]byte{"PostgreSQL": pg, "Kafka": kf} {
		if !bytes.Contains(dump, []byte(control)) {
			t.Fatalf("%s does not hold the control value: the raw search would prove nothing", what)
		}
		if !bytes.Contains(dump, []byte(":c1")) || !bytes.Contains(dump, []byte("plait:sealed:1:s:")) {
			t.Fatalf("%s holds no value sealed for c1", what)
		}
		noneIn(t, what+" before forget", dump, zoe)
	}
	for _, topic := range []string{"orderdesk.customer.commands", "orderdesk.customer.events", "orderdesk.outcomes", "orderdesk.orderList.events"} {
		if kfRecords[topic] == 0 {
			t.Errorf("no record in %s: %v", topic, kfRecords)
		}
	}
	if !bytes.Contains(pg, keyHex) {
		t.Fatal("c1's key is not in the PostgreSQL dump: the search for it after forget would prove nothing")
	}
	files := s.dumpPostgresFiles()
	if !bytes.Contains(files, []byte(control)) || !bytes.Contains(files, key) {
		t.Fatal("the PostgreSQL data files hold neither the control value nor c1's key: the raw search would prove nothing")
	}
	noneIn(t, "the PostgreSQL data files before forget", files, zoe)

	// Forget over HTTP.
	status, b := s.do("POST", "/subjects/c1/forget", nil)
	if status != http.StatusOK || !strings.Contains(string(b), `{"type":"orderList","id":"o1"}`) {
		t.Fatalf("forget: %d %s", status, b)
	}

	// After: erased through the API; Bob untouched.
	after := reads()
	for what, b := range after {
		noneIn(t, "the API's "+what+" after forget", b, zoe)
	}
	for _, what := range []string{"customer", "history", "created", "order list"} {
		if !bytes.Contains(after[what], []byte(engine.Erased)) {
			t.Errorf("the API's %s after forget does not read as erased: %s", what, after[what])
		}
	}
	if !bytes.Contains(after["order list"], []byte("Bob Stays")) {
		t.Errorf("Bob was erased too: %s", after["order list"])
	}
	if _, ok, err := s.st.Key(ctx, "c1", false); err != nil || ok {
		t.Errorf("c1's key after forget: %v %v", ok, err)
	}

	// And raw: the sealed values are all still there, nothing else.
	pg, _ = s.dumpPostgres()
	kf, _ = s.dumpKafka()
	files = s.dumpPostgresFiles()
	// VACUUM FULL keeps a row deleted while a transaction older than the
	// deletion is open anywhere in the database, and the other test
	// packages share it: vacuum again until theirs have ended.
	for deadline := time.Now().Add(15 * time.Second); bytes.Contains(files, key) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if _, err := s.st.Pool().Exec(ctx, `VACUUM FULL `+pgx.Identifier{s.schema, "subject_keys"}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		files = s.dumpPostgresFiles()
	}
	for what, dump := range map[string][]byte{"PostgreSQL": pg, "Kafka": kf, "the PostgreSQL data files": files} {
		if !bytes.Contains(dump, []byte(control)) || !bytes.Contains(dump, []byte("plait:sealed:1:s:")) {
			t.Fatalf("%s after forget lost what it held", what)
		}
		noneIn(t, what+" after forget", dump, zoe)
		if bytes.Contains(dump, keyHex) || bytes.Contains(dump, key) {
			t.Errorf("%s: c1's destroyed key is still there", what)
		}
	}
}

// hookedStore is the PostgreSQL store with a hook on Outcome, which the
// engine calls for a command it is about to decide (and elsewhere).
type hookedStore struct {
	*postgres.Store
	hook func(ctx context.Context, id string)
}

func (s hookedStore) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	s.hook(ctx, id)
	return s.Store.Outcome(ctx, id)
}

// consuming marks the context of the batches a markedLog hands the engine.
type consuming struct{}

// markedLog is a command log whose batches are handed with a context that
// says so, so that a hook knows the engine is deciding them.
type markedLog struct{ *enginetest.MemLog }

func (l markedLog) Consume(ctx context.Context, handle func(context.Context, engine.LogBatch) error) error {
	return l.MemLog.Consume(ctx, func(ctx context.Context, b engine.LogBatch) error {
		return handle(context.WithValue(ctx, consuming{}, true), b)
	})
}

// TestScaledForgetWaitsForTheBatchInFlight: a command appended to the
// command log before its subject is forgotten, and decided while the
// forget runs, does not bring the subject's data back under a new key:
// Forget waits for the batch, so the data it committed reads as erased.
func TestScaledForgetWaitsForTheBatchInFlight(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pg, err := postgres.Open(ctx, url, postgres.Options{Schema: pgtest.FreshSchema(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var (
		mu      sync.Mutex
		watched string // the command whose decision the forget races
		e       *engine.Engine
		forgot  = make(chan error, 1)
		overlap = make(chan bool, 1)
	)
	st := hookedStore{Store: pg, hook: func(ctx context.Context, id string) {
		mu.Lock()
		race := id == watched && ctx.Value(consuming{}) != nil
		if race {
			watched = "" // once
		}
		mu.Unlock()
		if !race {
			return
		}
		// The engine is deciding the command, its data opened: forget now.
		go func() { _, err := e.Forget(ctx, "c1"); forgot <- err }()
		select {
		case err := <-forgot:
			forgot <- err
			overlap <- true
		case <-time.After(500 * time.Millisecond):
			overlap <- false
		}
	}}
	log := markedLog{enginetest.NewMemLog("commands", 2, func(ctx context.Context, topic string, p int32) (int64, error) {
		return pg.Offset(ctx, topic, p)
	})}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if e, err = engine.New(orderdesk.PrivateApp(), st, engine.Options{CommandLog: log, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() { stop(); <-done }()
	<-e.Ready()
	send := func(id, name string, data any) plait.Outcome {
		t.Helper()
		raw, _ := json.Marshal(data)
		r, err := e.Submit(ctx, plait.Command{ID: id, Type: "customer", AggregateID: "c1", Name: name, Data: raw}, plait.User{ID: "clerk"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Await(ctx, r.Command.ID)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	send("create-c1", "create", M{"name": zoe[0], "email": zoe[1]})
	mu.Lock()
	watched = "rename-c1"
	mu.Unlock()
	send("rename-c1", "rename", M{"name": zoe[2]})
	if err := <-forgot; err != nil {
		t.Fatal(err)
	}
	if <-overlap {
		t.Error("Forget returned while a batch it erases was being decided")
	}
	in, err := e.Load(ctx, "customer", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var c orderdesk.CustomerState
	json.Unmarshal(in.State, &c)
	if c.Name != engine.Erased || c.Email != engine.Erased {
		t.Errorf("c1 after a forget that raced its rename: %s", in.State)
	}
}

// TestScaledForgetReachesEveryInstance: two instances share the PostgreSQL
// store. Once one forgets a customer, the other, which held the
// customer's key in memory, reads the customer as erased too within a
// few seconds; and it reads the data sealed under the new key made after
// the forget.
func TestScaledForgetReachesEveryInstance(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	schema := pgtest.FreshSchema(t, url)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	instance := func() *engine.Engine {
		st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		log := enginetest.NewMemLog("commands", 2, func(ctx context.Context, topic string, p int32) (int64, error) {
			return st.Offset(ctx, topic, p)
		})
		e, err := engine.New(orderdesk.PrivateApp(), st, engine.Options{CommandLog: log, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- e.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done; st.Close() })
		<-e.Ready()
		return e
	}
	a, b := instance(), instance()
	send := func(id, name string, data any) {
		t.Helper()
		raw, _ := json.Marshal(data)
		r, err := a.Submit(ctx, plait.Command{ID: id, Type: "customer", AggregateID: "c1", Name: name, Data: raw}, plait.User{ID: "clerk"})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := a.Await(ctx, r.Command.ID); err != nil || out.Status != plait.StatusAccepted {
			t.Fatalf("%s: %+v %v", id, out, err)
		}
	}
	// read waits until b reads c1 as want, and fails the test after a while.
	read := func(when string, want orderdesk.CustomerState) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			in, err := b.Load(ctx, "customer", "c1")
			if err != nil {
				t.Fatal(err)
			}
			var got orderdesk.CustomerState
			json.Unmarshal(in.State, &got)
			if got.Name == want.Name && got.Email == want.Email {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s, the other instance reads c1 as %s, want %+v", when, in.State, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send("create-c1", "create", M{"name": zoe[0], "email": zoe[1]})
	read("before forget", orderdesk.CustomerState{Name: zoe[0], Email: zoe[1]})
	if _, err := a.Forget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	read("after forget", orderdesk.CustomerState{Name: engine.Erased, Email: engine.Erased})
	send("rename-c1", "rename", M{"name": "Zoë Again"})
	read("after a rename under a new key", orderdesk.CustomerState{Name: "Zoë Again", Email: engine.Erased})
}
