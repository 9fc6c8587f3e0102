package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

func TestHealthReadinessMetrics(t *testing.T) {
	var notReady error
	h := start(t, plait.App{}, httpapi.Options{Ready: func(context.Context) error { return notReady }}, false)
	tok := token(t, "ann")
	if r := h.do("GET", "/healthz", "", nil); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %s", r)
	}
	if r := h.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %s", r)
	}
	notReady = errors.New("the cache is cold")
	p := problem(t, h.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable, "")
	if p["detail"] != "a service the server depends on does not answer" {
		t.Fatalf("readyz detail %v", p["detail"])
	}
	notReady = nil

	h.post(tok, "?wait=settled", add("", "a", 1), http.StatusOK)
	h.post(tok, "?wait=outcome", add("", "a", 0), http.StatusUnprocessableEntity)
	h.post(tok, "", add("", "a", 1), http.StatusAccepted)
	h.do("POST", "/commands", tok, `{"type":"nope"}`)
	h.do("GET", "/nowhere", "", nil)
	m := string(h.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`plait_commands_total{name="add",status="accepted",type="counter"} 2`,
		`plait_commands_total{name="add",status="rejected",type="counter"} 1`,
		`plait_commands_total{name="",status="invalid",type=""} 1`,
		`plait_command_duration_seconds_bucket{type="counter",wait="settled",le="+Inf"} 1`,
		`plait_command_duration_seconds_count{type="counter",wait="none"} 1`,
		`plait_outcomes_total{status="accepted",type="counter"} 2`,
		`plait_outcomes_total{status="rejected",type="counter"} 1`,
		`plait_outcomes_total{status="rejected",type="tally"} 0`,
		`plait_duplicates_total 0`,
		`plait_commits_total{result="error"} 0`,
		`plait_commits_total{result="ok"} `,
		`plait_committed_commands_total `,
		`plait_commit_seconds_total `,
		`plait_http_requests_total{code="202",route="POST /commands"} 1`,
		`plait_http_requests_total{code="404",route="not-found"} 1`,
		`plait_http_requests_total{code="200",route="GET /healthz"} 1`,
		`plait_feed_head `,
		`plait_subscription_lag{name="reactor:tally"} `,
		`plait_sse_streams 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `plait_outcomes_total{status="accepted",type="tally"} 0`) {
		t.Error("the reactor's commands to the tally view are not counted")
	}
	if t.Failed() {
		t.Log(m)
	}
}

// With a metrics token, GET /metrics answers only the requests that bear it;
// the users' own tokens are not it.
func TestMetricsAskForTheirToken(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{MetricsToken: "scrape-secret"}, false)
	for _, tc := range []struct {
		authorization string
		status        int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer " + token(t, "ann"), http.StatusUnauthorized},
		{"Bearer scrape-secreT", http.StatusUnauthorized},
		{"Bearer scrape-secret-and-more", http.StatusUnauthorized},
		{"Basic scrape-secret", http.StatusUnauthorized},
		{"Bearer scrape-secret", http.StatusOK},
		{"bearer  scrape-secret ", http.StatusOK},
	} {
		r := h.do("GET", "/metrics", "", nil, "Authorization", tc.authorization)
		if r.status != tc.status {
			t.Errorf("Authorization %q: %s, want %d", tc.authorization, r, tc.status)
		}
		if r.status == http.StatusOK && !strings.Contains(string(r.body), "plait_feed_head ") {
			t.Errorf("Authorization %q: no metrics in %s", tc.authorization, r)
		}
		if r.status == http.StatusUnauthorized {
			problem(t, r, http.StatusUnauthorized, "")
		}
	}
}

func TestUnknownPathsAndMethodsAreProblems(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	for _, path := range []string{"/", "/nowhere", "/commands/", "/aggregates/counter", "/lists", "/plait.js"} {
		problem(t, h.do("GET", path, tok, nil), http.StatusNotFound, "")
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/commands", "POST"},
		{"DELETE", "/commands/x", "GET, HEAD"},
		{"PUT", "/aggregates/counter/a", "GET, HEAD"},
		{"POST", "/stream", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		r := h.do(tc.method, tc.path, tok, nil)
		problem(t, r, http.StatusMethodNotAllowed, "")
		if r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, r.header.Get("Allow"), tc.allow)
		}
	}
	problem(t, h.do("POST", "/nowhere", tok, "{}"), http.StatusNotFound, "")
}

func TestWebFiles(t *testing.T) {
	web := fstest.MapFS{
		"index.html":    {Data: []byte("<!doctype html><title>Plait</title>")},
		"plait.js":      {Data: []byte("export class Plait {}")},
		"app/style.css": {Data: []byte("body{}")},
	}
	h := start(t, plait.App{}, httpapi.Options{Web: web}, false)
	for path, want := range map[string]string{"/": "text/html", "/plait.js": "text/javascript", "/app/style.css": "text/css"} {
		r := h.do("GET", path, "", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/app", "/app/", "/missing.js", "/../index.html"} {
		if r := h.do("GET", path, "", nil); r.status != 404 && !(path == "/../index.html" && r.status == 200) {
			t.Errorf("GET %s: %s", path, r)
		}
	}
	problem(t, h.do("POST", "/", "", "{}"), http.StatusNotFound, "")
	// The API still wins over the files.
	problem(t, h.do("GET", "/commands/x", "", nil), http.StatusUnauthorized, "")
}

// TestNotReadyWhileAReactorIsStuckAFewPositionsBehind: a reactor that
// cannot handle its next item (a view's disk is full, say) takes the
// server out of the balancer once the item waited its grace, however few
// items wait behind it.
func TestNotReadyWhileAReactorIsStuckAFewPositionsBehind(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := start(t, gatedApp(gate), httpapi.Options{CatchUpGrace: 50 * time.Millisecond}, false)
	t.Cleanup(open)
	h.post(token(t, "ann"), "", add("s1", "k1", 1), http.StatusAccepted)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := h.do("GET", "/readyz", "", nil)
		if r.status == http.StatusServiceUnavailable && strings.Contains(string(r.body), "gatekeeper is catching up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a reactor stuck one position behind for 5 s: %s, want 503", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	open()
	for {
		r := h.do("GET", "/readyz", "", nil)
		if r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactor never caught up: %s", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadyWhileAReactorCatchesUpWithinItsGrace: a burst can put a reactor
// more than a few positions behind for a moment, which must not take the
// server out of a balancer; a reactor whose next item has waited longer
// than the grace is catching up, and the server is not ready.
func TestReadyWhileAReactorCatchesUpWithinItsGrace(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := start(t, gatedApp(gate), httpapi.Options{CatchUpGrace: time.Hour}, false)
	t.Cleanup(open)
	impatient := httptest.NewServer(httpapi.New(h.e, httpapi.Options{CatchUpGrace: time.Nanosecond}))
	defer impatient.Close()
	readyz := func(base string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tok := token(t, "ann")
	// The reactor holds on the first add: every position after it waits.
	for i := range 600 {
		h.post(tok, "", add(fmt.Sprintf("b%d", i), fmt.Sprintf("k%d", i%20), 1), http.StatusAccepted)
	}
	if lag := h.e.Head() - h.e.Subscriptions()[0].Position; lag < 600 {
		t.Fatalf("the reactor is %d positions behind, want 600 or more", lag)
	}
	if code, body := readyz(h.ts.URL); code != http.StatusOK {
		t.Fatalf("behind for less than its grace: %d %s, want 200", code, body)
	}
	if code, body := readyz(impatient.URL); code != http.StatusServiceUnavailable || !strings.Contains(body, "gatekeeper is catching up") {
		t.Fatalf("behind for longer than its grace: %d %s, want 503", code, body)
	}
	open()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := readyz(impatient.URL)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactor never caught up: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
