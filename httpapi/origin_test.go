package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

// A page of another site can make the user's browser post to 127.0.0.1:
// as a form (no preflight) or a no-cors fetch. On a server without
// authentication, which takes whoever reaches it for its one user, that
// would run the command; it is refused and stores nothing.
func TestCrossSiteCommandsAreRefused(t *testing.T) {
	for _, local := range []bool{true, false} {
		h := start(t, plait.App{}, httpapi.Options{}, local)
		tok := ""
		if !local {
			tok = token(t, "ann")
		}
		head := h.e.Head()
		for _, hdr := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "https://evil.example"},
			{"Origin", "null"},
		} {
			for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain;charset=UTF-8"} {
				r := h.do("POST", "/commands?wait=outcome", tok, add("", "csrf", 1), append(hdr, "Content-Type", ct)...)
				problem(t, r, http.StatusForbidden, "")
			}
		}
		if got := h.e.Head(); got != head {
			t.Fatalf("local=%v: cross-site posts moved the log from %d to %d", local, head, got)
		}
		// The demo UI's own posts, and clients that are not browsers, with
		// the Content-Type fetch gives a string body.
		h.post(tok, "?wait=outcome", add("", "csrf", 1), http.StatusOK)
		if r := h.do("POST", "/commands?wait=outcome", tok, add("", "csrf", 1), "Content-Type", "text/plain;charset=UTF-8"); r.status != http.StatusOK {
			t.Fatalf("local=%v: a JSON body sent as text/plain: %s", local, r)
		}
		r := h.do("POST", "/commands?wait=outcome", tok, add("", "csrf", 1), "Sec-Fetch-Site", "same-origin", "Origin", h.ts.URL)
		if r.status != http.StatusOK {
			t.Fatalf("local=%v: same-origin post: %s", local, r)
		}
		// Reads from another origin stay allowed: a browser does not let the
		// page read the answer without CORS, which the server does not give.
		if r := h.do("GET", "/aggregates/counter/csrf", tok, nil, "Sec-Fetch-Site", "cross-site"); r.status != http.StatusOK {
			t.Fatalf("local=%v: cross-site read: %s", local, r)
		}
	}
}

// DNS rebinding: a page whose name its attacker points at 127.0.0.1 reaches
// the server from its own origin, so that the browser lets it read the
// answers. Only the Host header tells it apart; a server without
// authentication answers loopback names only.
func TestServerWithoutAuthAnswersLoopbackHostsOnly(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, true)
	h.post("", "?wait=outcome", add("", "a", 1), http.StatusOK)
	for _, host := range []string{"evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1:8080", "[::2]:80", "[localhost]:80", "[127.0.0.1]", "localhost]", "[::1"} {
		problem(t, h.do("GET", "/aggregates/counter/a", "", nil, "Host", host), http.StatusForbidden, "")
		problem(t, h.do("POST", "/commands", "", add("", "a", 1), "Host", host), http.StatusForbidden, "")
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost", "LOCALHOST:80", "app.localhost:8080", "localhost.", "[::1]:8080", "[::1]", "127.0.0.2", "[::ffff:127.0.0.1]:80"} {
		if r := h.do("GET", "/aggregates/counter/a", "", nil, "Host", host); r.status != http.StatusOK {
			t.Errorf("Host %q: %s, want 200", host, r)
		}
	}

	// With authentication every request proves who sends it, whatever name
	// it reached the server by.
	h = start(t, plait.App{}, httpapi.Options{}, false)
	tok := token(t, "ann")
	h.post(tok, "?wait=outcome", add("", "a", 1), http.StatusOK)
	if r := h.do("GET", "/aggregates/counter/a", tok, nil, "Host", "plait.example.com"); r.status != http.StatusOK {
		t.Fatalf("authenticated, Host plait.example.com: %s", r)
	}
}
