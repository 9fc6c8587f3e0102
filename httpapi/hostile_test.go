package httpapi_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
)

// The hostile-input corpus (hostile_corpus_test.go) is a table of malformed
// or malicious requests. TestHostileCorpus sends each one, as raw bytes over
// its own TCP connection, to a real server (a real listener, a real engine,
// a SQLite file, HS256 auth), and checks that:
//
//   - the answer is a 4xx problem: application/problem+json with type,
//     title, status (the HTTP status) and detail, and a path, code and
//     message in each field error; except the few requests net/http itself
//     refuses before any handler runs (marked netHTTP), which get its plain
//     400 and a closed connection;
//   - nothing changed: the engine's head, and a hash of every row of every
//     table of the SQLite file read through database/sql, are the same
//     after the request as before;
//   - no answer sets a cookie, and none echoes a header the request
//     smuggled in.
//
// Run one case: go test ./httpapi -run 'TestHostileCorpus/<name>'.

// hostileServer is the server the corpus is sent to, with a few users'
// data in it.
type hostileServer struct {
	e    *engine.Engine
	addr string
	path string // the SQLite file
	db   *sql.DB
	// fixtures the corpus refers to
	head int64
}

// startHostile runs testApp on a SQLite file behind a real listener with
// HS256 auth and web files, and stores the fixtures: ann's note and
// counter, bob's note, ann's rejected note, everything settled.
func startHostile(t *testing.T) *hostileServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	e, err := engine.New(testApp(), st, engine.Options{Partitions: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	web := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>plait</title>")}, "plait.js": {Data: []byte("// client")}}
	// A string limit under the body limit, so that the corpus tries it.
	srv := httpapi.New(e, httpapi.Options{Auth: httpapi.NewHS256Auth(secret), MaxBody: 1 << 20, Data: httpapi.DataLimits{MaxString: 64 << 10}, Web: web, Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		srv.CloseStreams()
		hs.Close()
		cancel()
		<-done
		st.Close()
	})
	hsv := &hostileServer{e: e, addr: ln.Addr().String(), path: path, db: db}
	// The fixtures, each settled so that no reactor moves afterwards.
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(tok, body string, want int) {
		req, _ := http.NewRequest("POST", "http://"+hsv.addr+"/commands?wait=settled", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("fixture %s: %d %s", body, resp.StatusCode, b)
		}
	}
	ann, bob := token(t, "ann"), token(t, "bob")
	post(ann, `{"id":"ann-note-1","type":"note","aggregateId":"n-ann","name":"write","data":{"title":"ann's secret"}}`, 200)
	post(ann, `{"id":"ann-add-1","type":"counter","aggregateId":"c-ann","name":"add","data":{"by":2}}`, 200)
	post(ann, `{"id":"ann-note-rejected","type":"note","aggregateId":"n-ann-2","name":"write","data":{"title":""}}`, 422)
	post(bob, `{"id":"bob-note-1","type":"note","aggregateId":"n-bob","name":"write","data":{"title":"bob's"}}`, 200)
	// A settled command's reactions are done, but the reactor's checkpoint
	// still moves on past the items after them (the tally's own, the
	// notes'), which it reads and has nothing to do with: wait until it
	// stands at the head, so that no checkpoint row changes afterwards.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, caught := e.Stats(), true
		for _, s := range st.Subscriptions {
			caught = caught && s.Position >= st.Head
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactors did not reach the head after the fixtures: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hsv.head = e.Head()
	return hsv
}

// snapshot is the engine's head and a hash of every row of every table.
func (h *hostileServer) snapshot(t *testing.T) string {
	t.Helper()
	rows, err := h.db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	sum := sha256.New()
	for _, table := range tables {
		rows, err := h.db.Query(fmt.Sprintf(`SELECT * FROM %q`, table))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(vals)
			lines = append(lines, string(b))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(sum, "%s %d\n%s\n", table, len(lines), strings.Join(lines, "\n"))
	}
	return fmt.Sprintf("head %d, rows %s", h.e.Head(), hex.EncodeToString(sum.Sum(nil)))
}

// hostile is one request of the corpus.
type hostile struct {
	name string
	// The request: either raw bytes (sent as they are), or a method,
	// target, headers and body assembled into an HTTP/1.1 request with
	// Host, Content-Length (when there is a body) and Connection: close.
	raw     string
	method  string
	target  string
	headers []string // "Name: value" lines
	body    string
	// status is the status expected; 0 takes any 4xx.
	status int
	// netHTTP marks a request net/http refuses before any handler: its
	// own plain-text 400 (or the status given), not a problem.
	netHTTP bool
	// halfClose closes the connection's write side once the request is
	// sent, for a request whose body is cut short. (Otherwise the
	// connection stays open: net/http ends a request's context when its
	// client hangs up.)
	halfClose bool
}

// bytes is the request as sent.
func (c hostile) bytes(host string) string {
	if c.raw != "" {
		return strings.ReplaceAll(c.raw, "{host}", host)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", c.method, c.target, host)
	for _, h := range c.headers {
		b.WriteString(h + "\r\n")
	}
	if c.body != "" || c.method == "POST" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.body))
	}
	b.WriteString("\r\n")
	b.WriteString(c.body)
	return b.String()
}

// send writes the request on a new connection and reads the answer.
func (h *hostileServer) send(t *testing.T, c hostile) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := c.bytes(h.addr)
	// The server may answer and close before it has read a large body:
	// write beside the read, and let a failed write be.
	go func() {
		io.WriteString(conn, req)
		if tc, ok := conn.(*net.TCPConn); ok && c.halfClose {
			tc.CloseWrite()
		}
	}()
	method := c.method
	if c.raw != "" {
		method, _, _ = strings.Cut(c.raw, " ")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	return resp, body
}

func TestHostileCorpus(t *testing.T) {
	h := startHostile(t)
	corpus := hostileCorpus(t, h)
	if len(corpus) < 200 {
		t.Fatalf("the corpus has %d requests, want at least 200", len(corpus))
	}
	names := map[string]bool{}
	for _, c := range corpus {
		if names[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		names[c.name] = true
	}
	before := h.snapshot(t)
	startSnapshot := before
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.send(t, c)
			short := body
			if len(short) > 300 {
				short = short[:300]
			}
			// net/http's own refusals of unsupported transfer codings and
			// protocol versions are 501 and 505; every other answer is a 4xx.
			if c.status != 0 && resp.StatusCode != c.status || !c.netHTTP && (resp.StatusCode < 400 || resp.StatusCode > 499) {
				t.Errorf("status %d, want %v: %s", resp.StatusCode, orAny4xx(c.status), short)
			}
			if len(resp.Header.Values("Set-Cookie")) > 0 || resp.Header.Get("X-Injected") != "" {
				t.Errorf("the answer sets a cookie or an injected header: %v", resp.Header)
			}
			ct := resp.Header.Get("Content-Type")
			switch {
			case c.netHTTP:
				if ct == "application/problem+json" || !resp.Close {
					t.Errorf("expected net/http's own refusal, got %s, close %v: %s", ct, resp.Close, short)
				}
			case ct != "application/problem+json":
				t.Errorf("Content-Type %q: %s", ct, short)
			case c.method == "HEAD":
				// No body to check.
			default:
				checkProblemBody(t, resp.StatusCode, body)
			}
			if after := h.snapshot(t); after != before {
				t.Errorf("the store changed: %s, then %s", before, after)
				before = after // so that the next case is judged on its own
			}
		})
	}
	if first := startSnapshot; first != before {
		t.Errorf("the store changed over the corpus: %s, then %s", first, before)
	}
	t.Logf("%d hostile requests, store unchanged (%s)", len(corpus), before)
}

func orAny4xx(status int) any {
	if status == 0 {
		return "a 4xx"
	}
	return status
}

func checkProblemBody(t *testing.T, status int, body []byte) {
	t.Helper()
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Errors []struct {
			Path    *string `json:"path"`
			Code    string  `json:"code"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("the problem is not JSON: %v: %.300s", err, body)
		return
	}
	if !strings.HasPrefix(p.Type, httpapi.ProblemBase) || p.Title == "" || p.Detail == "" || p.Status != status {
		t.Errorf("incomplete problem (status %d): %.300s", status, body)
	}
	for _, e := range p.Errors {
		if e.Path == nil || e.Code == "" || e.Message == "" {
			t.Errorf("incomplete field error: %.300s", body)
		}
	}
}
