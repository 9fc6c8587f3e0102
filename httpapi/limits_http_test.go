package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

func TestDataOverALimitIs413AndStoresNothing(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Data: httpapi.DataLimits{MaxString: 16, MaxDepth: 4}}, false)
	tok := token(t, "ann")
	head := h.e.Head()
	long := cmd{"type": "counter", "aggregateId": "a", "name": "label", "data": map[string]string{"label": strings.Repeat("é", 9)}}
	p := problem(t, h.do("POST", "/commands?wait=outcome", tok, long), http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge)
	if errs := p["errors"].([]any); errs[0].(map[string]any)["path"] != "label" {
		t.Fatalf("path of the error: %v", p)
	}
	deep := `{"type":"counter","aggregateId":"a","name":"label","data":{"label":[[[["x"]]]]}}`
	problem(t, h.do("POST", "/commands", tok, deep), http.StatusRequestEntityTooLarge, httpapi.CodeTooDeep)
	huge := `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1e400}}`
	problem(t, h.do("POST", "/commands", tok, huge), http.StatusBadRequest, httpapi.CodeInvalidData)
	if got := h.e.Head(); got != head {
		t.Fatalf("head moved from %d to %d", head, got)
	}
	// Within the limits, the same command goes through.
	long["data"] = map[string]string{"label": strings.Repeat("é", 8)}
	h.post(tok, "?wait=outcome", long, http.StatusOK)
}

func TestRateLimitPerAddressIs429WithRetryAfter(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Rate: httpapi.RateLimits{IP: 0.5, IPBurst: 3}}, false)
	tok := token(t, "ann")
	head := h.e.Head()
	for i := 0; i < 3; i++ {
		if r := h.do("GET", "/commands/nope", tok, nil); r.status != http.StatusNotFound {
			t.Fatalf("request %d of the burst: %s", i, r)
		}
	}
	// Another client address claimed in X-Forwarded-For changes nothing:
	// the header is not trusted by default.
	r := h.do("POST", "/commands", tok, add("", "a", 1), "X-Forwarded-For", "203.0.113.7")
	problem(t, r, http.StatusTooManyRequests, httpapi.CodeRateLimited)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if got := h.e.Head(); got != head {
		t.Fatalf("a refused command was stored: head %d to %d", head, got)
	}
	// Probes get through.
	if r := h.do("GET", "/healthz", "", nil); r.status != http.StatusOK {
		t.Fatalf("healthz under the limit: %s", r)
	}
}

func TestRateLimitTrustsForwardedForOnlyWhenTold(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Rate: httpapi.RateLimits{IP: 0.5, IPBurst: 1, TrustedProxies: 1}}, false)
	tok := token(t, "ann")
	for i := 0; i < 3; i++ {
		// Each request comes through the proxy from another client.
		ip := "198.51.100." + strconv.Itoa(i+1)
		if r := h.do("GET", "/commands/nope", tok, nil, "X-Forwarded-For", "6.6.6.6, "+ip); r.status != http.StatusNotFound {
			t.Fatalf("client %s: %s", ip, r)
		}
	}
	// The client's own claim, left of the proxy's, is not what counts.
	r := h.do("GET", "/commands/nope", tok, nil, "X-Forwarded-For", "7.7.7.7, 198.51.100.1")
	problem(t, r, http.StatusTooManyRequests, httpapi.CodeRateLimited)
}

func TestRateLimitPerUser(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{Rate: httpapi.RateLimits{User: 0.5, UserBurst: 2}}, false)
	ann, bob := token(t, "ann"), token(t, "bob")
	// Settled, so that the reactors' commands are in before head is read.
	h.post(ann, "?wait=settled", add("", "a", 1), http.StatusOK)
	h.post(ann, "?wait=settled", add("", "a", 1), http.StatusOK)
	head := h.e.Head()
	r := h.do("POST", "/commands", ann, add("", "a", 1))
	p := problem(t, r, http.StatusTooManyRequests, httpapi.CodeRateLimited)
	if r.header.Get("Retry-After") == "" || !strings.Contains(p["detail"].(string), "user") {
		t.Fatalf("429 for a user: %s %v", r, r.header)
	}
	if got := h.e.Head(); got != head {
		t.Fatalf("a refused command was stored")
	}
	// Another user is not held back by ann, nor are unauthenticated
	// requests counted as hers.
	h.post(bob, "", add("", "b", 1), http.StatusAccepted)
	problem(t, h.do("GET", "/commands/x", "", nil), http.StatusUnauthorized, "")
}
