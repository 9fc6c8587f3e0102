package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/internal/syncbuf"
)

// While the key set cannot be fetched, a token naming a key the server does
// not hold is answered 503 with Retry-After, in the client's terms: the
// fetch's error, with the key set's URL and host, goes to the log only. A
// token of a key the server holds is still taken, and forged key ids do
// not make the set be fetched more than once per 5 s.
func TestATokenOfAnUnknownKeyWhileTheKeySetIsDownIs503WithoutInternals(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := key.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	host := strings.TrimPrefix(jwksServer.URL, "http://")
	auth, err := httpapi.NewJWKSAuth(context.Background(), jwksServer.URL)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	h := start(t, plait.App{}, httpapi.Options{Auth: auth, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, false)
	sign := func(kid string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()})
		tk.Header["kid"] = kid
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good, unknown := sign("k1"), sign("k2")

	// The key set's server answers: an unknown key is the client's fault.
	time.Sleep(5100 * time.Millisecond) // past the 5 s between fetches
	p := problem(t, h.do("GET", "/lists/counter", unknown, nil), http.StatusUnauthorized, "")
	if d := p["detail"].(string); strings.Contains(d, host) {
		t.Errorf("401 detail names the key set's server: %q", d)
	}

	jwksServer.Close()
	time.Sleep(5100 * time.Millisecond)
	for i := range 20 {
		r := h.do("GET", "/lists/counter", unknown, nil)
		p := problem(t, r, http.StatusServiceUnavailable, "")
		if ra := r.header.Get("Retry-After"); ra != "5" {
			t.Errorf("Retry-After %q, want 5", ra)
		}
		d, _ := p["detail"].(string)
		for _, internal := range []string{host, "127.0.0.1", "dial", "refused", "http://"} {
			if strings.Contains(d, internal) {
				t.Fatalf("request %d: the detail tells %q: %q", i, internal, d)
			}
		}
		if r := h.do("GET", "/lists/counter", good, nil); r.status != http.StatusOK {
			t.Fatalf("a token of a key held while the key set is down: %s", r)
		}
	}
	if l := logs.String(); !strings.Contains(l, "fetch the key set") || !strings.Contains(l, host) {
		t.Errorf("the fetch's error is not logged:\n%s", l)
	}
	if n := strings.Count(logs.String(), "fetch the key set"); n > 12 {
		t.Errorf("%d log lines for 20 requests: not paced", n)
	}
}
