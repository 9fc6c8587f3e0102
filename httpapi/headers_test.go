package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/web"
)

// TestWebFilesForbidFramingAndInlineCode: the user interface's files come
// with a Content-Security-Policy that keeps out inline and foreign code and
// forbids framing by any page, so that no site can make a user of a local
// server click its buttons unseen.
func TestWebFilesForbidFramingAndInlineCode(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Web: web.Files}, true)
	want := []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'self'"}
	for _, path := range []string{"/", "/index.html", "/app.js", "/plait.js", "/style.css", "/favicon.svg"} {
		for _, method := range []string{"GET", "HEAD"} {
			r := h.do(method, path, "", nil)
			if r.status != 200 {
				t.Fatalf("%s %s: %s", method, path, r)
			}
			if got := r.header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("%s %s: X-Frame-Options %q, want DENY", method, path, got)
			}
			csp := r.header.Get("Content-Security-Policy")
			directives := map[string]bool{}
			for _, d := range strings.Split(csp, ";") {
				directives[strings.Join(strings.Fields(d), " ")] = true
			}
			for _, d := range want {
				if !directives[d] {
					t.Errorf("%s %s: Content-Security-Policy %q lacks %q", method, path, csp, d)
				}
			}
			if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "*") || strings.Contains(csp, "data:") {
				t.Errorf("%s %s: Content-Security-Policy %q lets in more than the origin's files", method, path, csp)
			}
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s: X-Content-Type-Options %q", method, path, got)
			}
		}
	}
}

// TestDataAnswersAreNotCached: what the API answers with a user's data is
// stored by no cache; an aggregate, which its ETag revalidates, may be kept
// by the user's browser alone, and revalidated on each use.
func TestDataAnswersAreNotCached(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann := token(t, "ann")
	admin := token(t, "root", "admin")
	posted := h.post(ann, "?wait=settled", add("c1", "a", 1), http.StatusOK)
	pending := h.post(ann, "", add("c2", "a", 1), http.StatusAccepted)
	for _, tc := range []struct {
		name string
		r    reply
		want string
	}{
		{"POST /commands?wait", posted, "no-store"},
		{"POST /commands", pending, "no-store"},
		{"GET /commands/{id}", h.do("GET", "/commands/c1", ann, nil), "no-store"},
		{"GET /aggregates/{type}/{id}", h.do("GET", "/aggregates/counter/a", ann, nil), "private, no-cache"},
		{"GET /aggregates/{type}/{id}/events", h.do("GET", "/aggregates/counter/a/events", ann, nil), "no-store"},
		{"GET /lists/{type}", h.do("GET", "/lists/counter", ann, nil), "no-store"},
		{"HEAD /stream", h.do("HEAD", "/stream", ann, nil), "no-store"},
		{"POST /subjects/{subject}/forget", h.do("POST", "/subjects/ann/forget", admin, nil), "no-store"},
	} {
		if got := tc.r.header.Get("Cache-Control"); got != tc.want {
			t.Errorf("%s: %s, Cache-Control %q, want %q", tc.name, tc.r, got, tc.want)
		}
	}
	// The aggregate's revalidation still answers 304, as privately.
	tag := h.do("GET", "/aggregates/counter/a", ann, nil).header.Get("ETag")
	if r := h.do("GET", "/aggregates/counter/a", ann, nil, "If-None-Match", tag); r.status != http.StatusNotModified ||
		r.header.Get("ETag") != tag || r.header.Get("Cache-Control") != "private, no-cache" {
		t.Errorf("If-None-Match %s: %s %v", tag, r, r.header)
	}
}
