package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
)

// Note is the state of the test's "note" aggregate: each note is seen only
// by its author and by admins, and only archivists may archive.
type Note struct {
	Title    string `json:"title"`
	Body     string `json:"body,omitempty"`
	Archived bool   `json:"archived,omitempty"`
}

// Write is the data of the note's "write" command and "written" event.
type Write struct {
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
}

var noteType = plait.NewAggregate[Note]("note",
	plait.Handle("write", func(s Note, c plait.Cmd[Write]) ([]plait.Change, error) {
		if c.Data.Title == "" {
			return nil, plait.Reject("title", plait.CodeRequired, "a note needs a title")
		}
		return []plait.Change{plait.Emit("written", c.Data)}, nil
	}),
	plait.Handle("archive", func(s Note, c plait.Cmd[enginetest.Empty]) ([]plait.Change, error) {
		return []plait.Change{plait.Emit("archived", enginetest.Empty{})}, nil
	}),
	plait.Apply("written", func(s Note, e Write) Note { s.Title, s.Body = e.Title, e.Body; return s }),
	plait.Apply("archived", func(s Note, e enginetest.Empty) Note { s.Archived = true; return s }),
	plait.Indexed[Note]("title"),
	plait.WithAccess[Note](plait.Access{
		OwnerOnly:   true,
		SeeAllRoles: []string{"admin"},
		Send: func(u plait.User, command string) bool {
			return command != "archive" || u.HasRole("archivist")
		},
	}),
)

// testApp is the contract suite's counter and tally, and the note.
func testApp() plait.App {
	app := enginetest.App()
	app.Name = "httpapitest"
	app.Aggregates = append(app.Aggregates, noteType)
	return app
}

var secret = []byte("test secret, long enough for HS256")

// harness is a server over a running engine on a fresh SQLite store.
type harness struct {
	t      testing.TB
	e      *engine.Engine
	srv    *httpapi.Server
	ts     *httptest.Server
	client *http.Client
	// stopEngine stops the engine and leaves the server up.
	stopEngine context.CancelFunc
}

// start runs app (testApp if its name is empty) behind a server with opts;
// opts.Auth nil means HS256 with secret unless local is set.
func start(t testing.TB, app plait.App, opts httpapi.Options, local bool) *harness {
	t.Helper()
	return startOn(t, app, opts, local, nil)
}

// startOn is start with the engine's store wrapped by wrap, unless nil.
func startOn(t testing.TB, app plait.App, opts httpapi.Options, local bool, wrap func(engine.Store) engine.Store) *harness {
	t.Helper()
	if app.Name == "" {
		app = testApp()
	}
	if opts.Auth == nil && !local {
		opts.Auth = httpapi.NewHS256Auth(secret)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	var store engine.Store = st
	if wrap != nil {
		store = wrap(st)
	}
	e, err := engine.New(app, store, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not start")
	}
	srv := httpapi.New(e, opts)
	ts := httptest.NewServer(srv)
	h := &harness{t: t, e: e, srv: srv, ts: ts, client: ts.Client(), stopEngine: cancel}
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		srv.CloseStreams()
		ts.Close()
		cancel()
		<-done
		st.Close()
	}
	t.Cleanup(stop)
	return h
}

func token(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reply is an answer read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// do sends a request as user (a token, "" for none).
func (h *harness) do(method, path, tok string, body any, hdr ...string) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// cmd is a command envelope.
type cmd map[string]any

func add(id, agg string, by int) cmd {
	c := cmd{"type": "counter", "aggregateId": agg, "name": "add", "data": map[string]int{"by": by}}
	if id != "" {
		c["id"] = id
	}
	return c
}

func note(id, agg, title string) cmd {
	return cmd{"id": id, "type": "note", "aggregateId": agg, "name": "write", "data": map[string]string{"title": title}}
}

// post posts a command and fails the test unless the status is want.
func (h *harness) post(tok, query string, c any, want int) reply {
	h.t.Helper()
	r := h.do("POST", "/commands"+query, tok, c)
	if r.status != want {
		h.t.Fatalf("POST /commands%s %v: %s, want %d", query, c, r, want)
	}
	return r
}

// problem checks that r is a problem with the status and, if code is not
// empty, a field error with that code.
func problem(t *testing.T, r reply, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("answer %s, want %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (%s)", ct, r)
	}
	p := r.json(t)
	for _, f := range []string{"type", "title", "detail"} {
		if s, _ := p[f].(string); s == "" {
			t.Fatalf("problem without %s: %s", f, r)
		}
	}
	if p["status"] != float64(status) {
		t.Fatalf("problem status %v, want %d", p["status"], status)
	}
	if code != "" {
		errs, _ := p["errors"].([]any)
		found := false
		for _, e := range errs {
			m := e.(map[string]any)
			if m["code"] == code {
				found = true
				if _, ok := m["path"].(string); !ok {
					t.Fatalf("field error without path: %s", r)
				}
				if m["message"] == "" {
					t.Fatalf("field error without message: %s", r)
				}
			}
		}
		if !found {
			t.Fatalf("problem without an error of code %q: %s", code, r)
		}
	}
	return p
}
