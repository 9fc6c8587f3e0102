package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/internal/syncbuf"
)

// errDriver is what a database driver says when it cannot connect: it
// names the user, the database and the host, none of a client's business.
var errDriver = errors.New("failed to connect to `user=postgres database=audit_ops_1`: 127.0.0.1:5432 (localhost): dial error")

// downStore fails every read while down is set, as a store whose database
// is unreachable.
type downStore struct {
	engine.Store
	down atomic.Bool
}

func (s *downStore) Load(ctx context.Context, typ, id string) (engine.Instance, error) {
	if s.down.Load() {
		return engine.Instance{}, errDriver
	}
	return s.Store.Load(ctx, typ, id)
}

func (s *downStore) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	if s.down.Load() {
		return plait.Outcome{}, false, errDriver
	}
	return s.Store.Outcome(ctx, id)
}

func (s *downStore) Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error) {
	if s.down.Load() {
		return nil, errDriver
	}
	return s.Store.Events(ctx, typ, id, after, limit)
}

func (s *downStore) List(ctx context.Context, typ string, q engine.ListQuery) (engine.ListPage, error) {
	if s.down.Load() {
		return engine.ListPage{}, errDriver
	}
	return s.Store.List(ctx, typ, q)
}

// TestStoreFailuresAreNotShownToClients: while the store cannot be reached,
// every answer is a 503 with Retry-After whose detail says what failed in
// the client's terms, never the driver's error (user, database, host); the
// server's log has that error at ERROR, with the request's route and the
// command's id. A command not acknowledged is to be sent again with the
// same id.
func TestStoreFailuresAreNotShownToClients(t *testing.T) {
	var st *downStore
	var logs syncbuf.Buffer
	ready := errors.New("kafka: no broker answers: dial tcp 10.1.2.3:9092: connection refused")
	h := startOn(t, plait.App{}, httpapi.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Ready: func(context.Context) error { return ready }}, false,
		func(s engine.Store) engine.Store { st = &downStore{Store: s}; return st })
	tok := token(t, "ann")
	h.post(tok, "?wait=outcome", add("c1", "a", 1), http.StatusOK)
	st.down.Store(true)
	for _, c := range []struct {
		method, path string
		body         any
		detail       string
	}{
		{"POST", "/commands", add("c2", "a", 1), "the command is not acknowledged: it may be stored; send it again with the same id, c2, for its one outcome"},
		{"GET", "/commands/c1", nil, "the store cannot be reached; try again"},
		{"GET", "/aggregates/counter/a", nil, "the store cannot be reached; try again"},
		{"GET", "/lists/note", nil, "the store cannot be reached; try again"},
		{"GET", "/readyz", nil, "the store cannot be reached; try again"},
	} {
		r := h.do(c.method, c.path, tok, c.body)
		p := problem(t, r, http.StatusServiceUnavailable, "")
		if p["detail"] != c.detail {
			t.Errorf("%s %s: detail %q, want %q", c.method, c.path, p["detail"], c.detail)
		}
		if strings.Contains(string(r.body), "5432") || strings.Contains(string(r.body), "audit_ops_1") {
			t.Errorf("%s %s: the answer shows the driver's error: %s", c.method, c.path, r.body)
		}
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: a 503 without Retry-After", c.method, c.path)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`"level":"ERROR","msg":"submit command","command":"c2"`,
		`"route":"POST /commands"`,
		`"route":"GET /lists/{type}"`,
		`"error":"failed to connect to`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the server's log has no %s:\n%s", want, out)
		}
	}

	// The store is back; a dependency of the readiness check is not.
	st.down.Store(false)
	r := h.do("GET", "/readyz", "", nil)
	if p := problem(t, r, http.StatusServiceUnavailable, ""); p["detail"] != "a service the server depends on does not answer" || strings.Contains(string(r.body), "9092") {
		t.Errorf("readyz with a dependency down: %s", r)
	}
}

// TestFailuresDoNotFloodTheLog: during an outage every request fails alike;
// the log has the first few, then a line a second at most, which says how
// many went unlogged.
func TestFailuresDoNotFloodTheLog(t *testing.T) {
	var st *downStore
	var logs syncbuf.Buffer
	h := startOn(t, plait.App{}, httpapi.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, false,
		func(s engine.Store) engine.Store { st = &downStore{Store: s}; return st })
	tok := token(t, "ann")
	st.down.Store(true)
	for range 200 {
		problem(t, h.do("GET", "/lists/note", tok, nil), http.StatusServiceUnavailable, "")
	}
	time.Sleep(1100 * time.Millisecond)
	problem(t, h.do("GET", "/lists/note", tok, nil), http.StatusServiceUnavailable, "")
	out := logs.String()
	if n := strings.Count(out, `"level":"ERROR"`); n < 10 || n > 13 {
		t.Fatalf("%d ERROR lines for 201 failed requests, want about 11:\n%s", n, out)
	}
	if !regexp.MustCompile(`"failures_not_logged":1[89][0-9]`).MatchString(out) {
		t.Fatalf("no line says how many failures went unlogged:\n%s", out)
	}
}
