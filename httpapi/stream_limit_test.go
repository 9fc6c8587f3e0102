package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

// waitStream opens GET /stream as the user, again and again while it is
// answered 429, and returns it once open; it is closed at the end of the
// test.
func (h *harness) waitStream(tok string) *http.Response {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := h.client.Do(req)
		if err != nil {
			cancel()
			h.t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			h.t.Cleanup(func() { cancel(); resp.Body.Close() })
			return resp
		}
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			h.t.Fatalf("GET /stream: %d, want 200 once a stream ended", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStreamsPerUserAreCapped(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{MaxStreamsPerUser: 2}, false)
	ann, bob := token(t, "ann"), token(t, "bob")
	a1 := h.openStream("", "Authorization", "Bearer "+ann)
	h.openStream("", "Authorization", "Bearer "+ann)

	r := h.do("GET", "/stream", ann, nil)
	p := problem(t, r, http.StatusTooManyRequests, httpapi.CodeTooManyStreams)
	if got := r.header.Get("Retry-After"); got == "" || got == "0" {
		t.Fatalf("Retry-After %q, want a number of seconds", got)
	}
	if !strings.Contains(p["detail"].(string), "2 streams") {
		t.Fatalf("detail %q does not say how many streams are open", p["detail"])
	}
	if !strings.HasSuffix(p["type"].(string), "/too-many-requests") {
		t.Fatalf("type %q", p["type"])
	}

	// Another user is not affected.
	h.openStream("", "Authorization", "Bearer "+bob)
	h.openStream("", "Authorization", "Bearer "+bob)

	// A stream that ends makes room: the server sees the client go.
	a1.close()
	keep := h.waitStream(ann)
	problem(t, h.do("GET", "/stream", ann, nil), http.StatusTooManyRequests, httpapi.CodeTooManyStreams)
	keep.Body.Close()
	h.waitStream(ann)

	// CloseStreams ends them all, and the counts with them.
	h.srv.CloseStreams()
	problem(t, h.do("GET", "/stream", ann, nil), http.StatusServiceUnavailable, "")
}

// TestStreamsPerUserDefaultAndNoCap: with auth, a user holds at most
// DefaultMaxStreamsPerUser streams unless told otherwise; without, the
// local user is not capped unless told.
func TestStreamsPerUserDefaultAndNoCap(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann := token(t, "ann")
	for range httpapi.DefaultMaxStreamsPerUser {
		h.openStream("", "Authorization", "Bearer "+ann)
	}
	problem(t, h.do("GET", "/stream", ann, nil), http.StatusTooManyRequests, httpapi.CodeTooManyStreams)

	h = start(t, plait.App{}, httpapi.Options{MaxStreamsPerUser: -1}, false)
	for range httpapi.DefaultMaxStreamsPerUser + 4 {
		h.openStream("", "Authorization", "Bearer "+ann)
	}

	// Without auth, the one local user is every client: no cap, unless
	// one is set.
	h = start(t, plait.App{}, httpapi.Options{}, true)
	for range httpapi.DefaultMaxStreamsPerUser + 4 {
		h.openStream("")
	}
	h = start(t, plait.App{}, httpapi.Options{MaxStreamsPerUser: 2}, true)
	h.openStream("")
	h.openStream("")
	problem(t, h.do("GET", "/stream", "", nil), http.StatusTooManyRequests, httpapi.CodeTooManyStreams)
}

// TestStreamOverHTTP2 follows a stream on a connection the hub cannot take
// over: it runs in its handler, with the same frames.
func TestStreamOverHTTP2(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Heartbeat: 50 * time.Millisecond}, false)
	ts := httptest.NewUnstartedServer(h.srv)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	client := ts.Client()
	ann, bob := token(t, "ann"), token(t, "bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream?types=note", nil)
	req.Header.Set("Authorization", "Bearer "+ann)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %d %q, want an HTTP/2 event stream", resp.Proto, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	h.post(bob, "", note("n-bob", "nb", "bob's"), http.StatusAccepted)
	h.post(ann, "", note("n-ann", "na", "ann's"), http.StatusAccepted)
	sc := bufio.NewScanner(resp.Body)
	var ids []string
	pings := 0
	for sc.Scan() && (len(ids) < 2 || pings == 0) {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			if strings.Contains(line, "bob") {
				t.Fatalf("ann sees bob's note: %s", line)
			}
			ids = append(ids, line)
		case line == ": ping":
			pings++
		}
	}
	if len(ids) != 2 || !strings.Contains(ids[0], "n-ann") {
		t.Fatalf("frames %q, want ann's note's event and outcome", ids)
	}
}

// TestRequestsInFlightPerUserAreCapped: a user with MaxRequestsPerUser
// requests in flight (waits held by a command that has not decided) gets
// 429 for one more, with Retry-After, until an answer makes room; other
// users are not affected.
func TestRequestsInFlightPerUserAreCapped(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := start(t, gatedApp(gate), httpapi.Options{MaxRequestsPerUser: 2}, false)
	t.Cleanup(open)
	ann, bob := token(t, "ann"), token(t, "bob")
	answers := make(chan reply, 2)
	for _, id := range []string{"g1", "g2"} {
		go func() {
			answers <- h.do("POST", "/commands?wait=outcome", ann, cmd{"id": id, "type": "gate", "aggregateId": "x", "name": "pass"})
		}()
	}
	h.awaitInFlight(t, 2)
	refused := h.do("GET", "/aggregates/gate/x", ann, nil)
	p := problem(t, refused, http.StatusTooManyRequests, httpapi.CodeTooManyRequestsInFlight)
	if !strings.Contains(p["detail"].(string), "2 requests") || refused.header.Get("Retry-After") != "1" {
		t.Errorf("the refusal: %v, Retry-After %q", p, refused.header.Get("Retry-After"))
	}
	problem(t, h.do("POST", "/commands", ann, cmd{"type": "counter", "aggregateId": "a", "name": "add", "data": map[string]int{"by": 1}}), http.StatusTooManyRequests, httpapi.CodeTooManyRequestsInFlight)
	if r := h.do("GET", "/lists/counter", bob, nil); r.status != http.StatusOK {
		t.Errorf("bob's request meanwhile: %s", r)
	}

	open()
	for range 2 {
		if r := <-answers; r.status != http.StatusOK {
			t.Errorf("a held wait: %s", r)
		}
	}
	// Answered, they make room: the counts go back to none.
	for range 3 {
		if r := h.do("GET", "/aggregates/gate/x", ann, nil); r.status != http.StatusOK {
			t.Fatalf("ann's request once her waits are answered: %s", r)
		}
	}
}

// TestRequestsInFlightDefaultAndNoCap: with auth, a user may have
// DefaultMaxRequestsPerUser requests in flight; without, the local user is
// not capped unless told.
func TestRequestsInFlightDefaultAndNoCap(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  httpapi.Options
		local bool
		cap   int // 0: none
	}{
		{"auth", httpapi.Options{}, false, httpapi.DefaultMaxRequestsPerUser},
		{"auth, no cap", httpapi.Options{MaxRequestsPerUser: -1}, false, 0},
		{"local", httpapi.Options{}, true, 0},
		{"local, told", httpapi.Options{MaxRequestsPerUser: 3}, true, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			gate := make(chan struct{})
			var once sync.Once
			open := func() { once.Do(func() { close(gate) }) }
			h := start(t, gatedApp(gate), c.opts, c.local)
			t.Cleanup(open)
			tok := ""
			if !c.local {
				tok = token(t, "ann")
			}
			held := c.cap
			if held == 0 {
				held = httpapi.DefaultMaxRequestsPerUser + 8
			}
			answers := make(chan reply, held)
			for i := range held {
				go func() {
					answers <- h.do("POST", "/commands?wait=outcome", tok, cmd{"id": fmt.Sprintf("g%d", i), "type": "gate", "aggregateId": "x", "name": "pass"})
				}()
			}
			h.awaitInFlight(t, held)
			r := h.do("GET", "/schemas/gate", tok, nil)
			if got := r.status == http.StatusTooManyRequests; got != (c.cap > 0) {
				t.Errorf("a request with %d in flight: %s, want refused: %v", held, r, c.cap > 0)
			}
			open()
			for range held {
				if r := <-answers; r.status != http.StatusOK {
					t.Errorf("a held wait: %s", r)
				}
			}
		})
	}
}

// awaitInFlight returns once n requests are in flight besides the scrape
// of the metrics that says so.
func (h *harness) awaitInFlight(t *testing.T, n int) {
	t.Helper()
	want := fmt.Sprintf("\nplait_http_requests_in_flight %d\n", n+1)
	for deadline := time.Now().Add(10 * time.Second); ; {
		m := h.do("GET", "/metrics", "", nil)
		if strings.Contains(string(m.body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests are not in flight:\n%s", n, m.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAStreamIsARequestUntilItStreams: a stream counts as one of its
// user's requests in flight until it streams (scaled out, a resume from
// beyond the head waits there for the position), and as a stream only from
// then on.
func TestAStreamIsARequestUntilItStreams(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := start(t, gatedApp(gate), httpapi.Options{MaxRequestsPerUser: 1}, false)
	t.Cleanup(open)
	ann := token(t, "ann")
	answered := make(chan reply, 1)
	go func() {
		answered <- h.do("POST", "/commands?wait=outcome", ann, cmd{"id": "g1", "type": "gate", "aggregateId": "x", "name": "pass"})
	}()
	h.awaitInFlight(t, 1)
	for _, method := range []string{"GET", "HEAD"} {
		if r := h.do(method, "/stream", ann, nil); r.status != http.StatusTooManyRequests {
			t.Errorf("%s /stream with a request in flight: %s, want 429", method, r)
		}
	}
	open()
	if r := <-answered; r.status != http.StatusOK {
		t.Fatalf("the held wait: %s", r)
	}
	h.openStream("", "Authorization", "Bearer "+ann)
	if r := h.do("GET", "/lists/counter", ann, nil); r.status != http.StatusOK {
		t.Errorf("ann's request beside her open stream: %s", r)
	}
}
