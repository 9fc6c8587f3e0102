package httpapi_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
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
