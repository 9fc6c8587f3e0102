package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

func TestTokensAreRequiredAndVerified(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	now := time.Now()
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	valid := jwt.MapClaims{"sub": "ann", "exp": now.Add(time.Hour).Unix()}
	bad := map[string]string{
		"forged":         sign(jwt.SigningMethodHS256, []byte("another secret entirely......"), valid),
		"alg none":       sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"expired":        sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(-time.Hour).Unix()}),
		"not yet valid":  sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}),
		"no subject":     sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}),
		"other alg":      sign(jwt.SigningMethodHS384, secret, valid),
		"RS256 for HS":   sign(jwt.SigningMethodRS256, rsaKey, valid),
		"tampered":       tamper(sign(jwt.SigningMethodHS256, secret, valid)),
		"garbage":        "not.a.token",
		"roles not list": sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(time.Hour).Unix(), "roles": "admin"}),
		"exp a string":   sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": fmt.Sprint(now.Add(time.Hour).Unix())}),
		"nbf a string":   sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(time.Hour).Unix(), "nbf": fmt.Sprint(now.Unix())}),
		"issued later":   sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(2 * time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()}),
		// No stored text holds NUL: the user's commands and the events
		// that carry the user (a view's owner) could not be stored.
		"sub with NUL": sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann\x00admin", "exp": now.Add(time.Hour).Unix()}),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			r := h.do("POST", "/commands", tok, add("", "a", 1))
			problem(t, r, http.StatusUnauthorized, "")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
			problem(t, h.do("GET", "/lists/counter", tok, nil), http.StatusUnauthorized, "")
		})
	}
	problem(t, h.do("POST", "/commands", "", add("", "a", 1)), http.StatusUnauthorized, "")
	problem(t, h.do("POST", "/commands", "", add("", "a", 1), "Authorization", "Basic YW5uOmFubg=="), http.StatusUnauthorized, "")
	if h.e.Head() != 0 {
		t.Fatal("an unauthenticated command was stored")
	}
	// The good token works, and so does a little clock skew. A token
	// without exp is its issuer's choice: RFC 7519 makes it optional.
	h.post(sign(jwt.SigningMethodHS256, secret, valid), "", add("", "a", 1), http.StatusAccepted)
	h.post(sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann"}), "", add("", "a", 1), http.StatusAccepted)
	h.post(sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(-2 * time.Second).Unix()}), "", add("", "a", 1), http.StatusAccepted)
	h.post(sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(2 * time.Second).Unix()}), "", add("", "a", 1), http.StatusAccepted)
	// But only a little: a token that expired ten seconds ago is refused.
	problem(t, h.do("POST", "/commands", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(-10 * time.Second).Unix()}), add("", "a", 1)), http.StatusUnauthorized, "")
	// The cookie is taken for reads, not for commands.
	cookie := "plait_token=" + token(t, "ann")
	if r := h.do("GET", "/lists/counter", "", nil, "Cookie", cookie); r.status != 200 {
		t.Fatalf("GET with the cookie: %s", r)
	}
	problem(t, h.do("POST", "/commands", "", add("", "a", 1), "Cookie", cookie), http.StatusUnauthorized, "")
	// The query token is taken on /stream only.
	problem(t, h.do("GET", "/lists/counter?access_token="+token(t, "ann"), "", nil), http.StatusUnauthorized, "")
	problem(t, h.do("GET", "/aggregates/counter/a?access_token="+token(t, "ann"), "", nil), http.StatusUnauthorized, "")
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	claims = []byte(strings.Replace(string(claims), `"ann"`, `"bob"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(claims)
	return strings.Join(parts, ".")
}

func TestWithoutAuthEveryRequestIsTheLocalUser(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, true)
	r := h.post("", "?wait=outcome", note("n1", "n1", "mine"), http.StatusOK)
	var out struct{ Events []plait.Event }
	json.Unmarshal(r.body, &out)
	if out.Events[0].User != "local" {
		t.Fatalf("user %q, want local", out.Events[0].User)
	}
	if r := h.do("GET", "/aggregates/note/n1", "", nil); r.status != 200 {
		t.Fatalf("GET: %s", r)
	}
	// The local user holds every role that sees all instances.
	h.post("", "?wait=outcome", note("n2", "n2", "by someone else"), http.StatusOK)
	if got := ids(h.list("", "note", url.Values{})); got != "[n1 n2]" {
		t.Fatalf("local lists %s", got)
	}
}

// TestTheLocalUserHoldsTheRolesItIsGiven: a rule of who may send what
// that asks for a role no type sees all with holds for the local user too,
// unless the server gives it that role (serve --local-roles).
func TestTheLocalUserHoldsTheRolesItIsGiven(t *testing.T) {
	archive := cmd{"type": "note", "aggregateId": "n1", "name": "archive", "data": map[string]string{}}
	h := start(t, plait.App{}, httpapi.Options{}, true)
	h.post("", "?wait=outcome", note("", "n1", "mine"), http.StatusOK)
	problem(t, h.do("POST", "/commands", "", archive), http.StatusForbidden, httpapi.CodeForbidden)

	h = start(t, plait.App{}, httpapi.Options{LocalRoles: []string{"archivist"}}, true)
	h.post("", "?wait=outcome", note("", "n1", "mine"), http.StatusOK)
	h.post("", "?wait=outcome", archive, http.StatusOK)
}

func TestAnotherUsersAggregate(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	ann, bob, admin := token(t, "ann"), token(t, "bob"), token(t, "root", "admin")
	h.post(ann, "?wait=outcome", note("w1", "n1", "ann's"), http.StatusOK)
	h.post(bob, "?wait=outcome", note("w2", "n2", "bob's"), http.StatusOK)
	h.post(ann, "", note("w3", "n3", ""), http.StatusAccepted) // rejected creation

	// Bob may not act on ann's note, nor see it.
	head := h.e.Head()
	problem(t, h.do("POST", "/commands", bob, note("", "n1", "mine now")), http.StatusForbidden, httpapi.CodeForbidden)
	problem(t, h.do("POST", "/commands?wait=outcome", bob, note("", "n1", "mine now")), http.StatusForbidden, httpapi.CodeForbidden)
	if h.e.Head() != head {
		t.Fatal("a forbidden command was stored")
	}
	problem(t, h.do("GET", "/aggregates/note/n1", bob, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/aggregates/note/n1/events", bob, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/commands/w1", bob, nil), http.StatusNotFound, "")
	problem(t, h.do("GET", "/commands/w3", bob, nil), http.StatusNotFound, "")
	// Resubmitting ann's command id does not reveal its outcome.
	problem(t, h.do("POST", "/commands?wait=outcome", bob, note("w1", "n9", "x")), http.StatusForbidden, httpapi.CodeForbidden)
	if got := ids(h.list(bob, "note", url.Values{})); got != "[n2]" {
		t.Fatalf("bob lists %s", got)
	}
	if got := ids(h.list(bob, "note", url.Values{"eq.title": {"ann's"}})); got != "[]" {
		t.Fatalf("bob finds %s", got)
	}
	// Ann sees hers, the admin everything.
	if r := h.do("GET", "/aggregates/note/n1", ann, nil); r.status != 200 {
		t.Fatalf("ann GET: %s", r)
	}
	if got := h.do("GET", "/commands/w3", ann, nil).json(t); got["status"] != "rejected" {
		t.Fatalf("ann GET w3: %v", got)
	}
	if got := ids(h.list(admin, "note", url.Values{})); got != "[n1 n2]" {
		t.Fatalf("admin lists %s", got)
	}
	if r := h.do("GET", "/commands/w1", admin, nil); r.status != 200 {
		t.Fatalf("admin GET w1: %s", r)
	}
	// Sending rights: archiving takes the archivist role, even on one's own.
	problem(t, h.do("POST", "/commands", ann, cmd{"type": "note", "aggregateId": "n1", "name": "archive"}), http.StatusForbidden, httpapi.CodeForbidden)
	h.post(token(t, "ann", "archivist"), "?wait=outcome", cmd{"type": "note", "aggregateId": "n1", "name": "archive"}, http.StatusOK)
}

func TestJWKSAuth(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	rsaJWK := map[string]any{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())}
	ecJWK := func(kid string, k *ecdsa.PublicKey) map[string]any {
		raw, _ := k.Bytes() // 04 || X || Y
		return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	}
	keys := []any{rsaJWK, ecJWK("e1", &ecKey.PublicKey), map[string]any{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}}
	fetches := 0
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	defer jwksServer.Close()

	auth, err := httpapi.NewJWKSAuth(context.Background(), jwksServer.URL)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
		tk := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tk.Header["kid"] = kid
		}
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := jwt.MapClaims{"sub": "ann", "roles": []string{"admin", "x"}, "exp": time.Now().Add(time.Hour).Unix()}
	for name, tok := range map[string]string{
		"RS256": sign(jwt.SigningMethodRS256, "r1", rsaKey, claims),
		"ES256": sign(jwt.SigningMethodES256, "e1", ecKey, claims),
	} {
		u, err := auth.Authenticate(tok)
		if err != nil || u.ID != "ann" || len(u.Roles) != 2 || !u.HasRole("admin") {
			t.Errorf("%s: %+v %v", name, u, err)
		}
	}
	for name, tok := range map[string]string{
		"HS256 with the set's symmetric key": sign(jwt.SigningMethodHS256, "sym", []byte("secret"), claims),
		"RS256 by an unknown key":            sign(jwt.SigningMethodRS256, "r9", mustRSA(t), claims),
		"ES256 under the RSA key id":         sign(jwt.SigningMethodES256, "r1", ecKey, claims),
		"PS256, not allowed":                 sign(jwt.SigningMethodPS256, "r1", rsaKey, claims),
		"expired":                            sign(jwt.SigningMethodRS256, "r1", rsaKey, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(-time.Hour).Unix()}),
		"alg none":                           sign(jwt.SigningMethodNone, "r1", jwt.UnsafeAllowNoneSignatureType, claims),
	} {
		if u, err := auth.Authenticate(tok); err == nil {
			t.Errorf("%s: accepted as %+v", name, u)
		}
	}
	// A rotated key is picked up by fetching the set again.
	keys = append(keys, ecJWK("e2", &rotated.PublicKey))
	tok := sign(jwt.SigningMethodES256, "e2", rotated, claims)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := auth.Authenticate(tok); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("rotated key never accepted: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if fetches > 4 {
		t.Fatalf("the key set was fetched %d times: unknown key ids must not flood it", fetches)
	}

	if _, err := httpapi.NewJWKSAuth(context.Background(), jwksServer.URL+"/nothing-here\x00"); err == nil {
		t.Fatal("a bad URL gave an Auth")
	}
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	defer empty.Close()
	if _, err := httpapi.NewJWKSAuth(context.Background(), empty.URL); err == nil {
		t.Fatal("an empty key set gave an Auth")
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An authenticator expecting an audience and an issuer takes only the
// tokens that name both: a token the same key signed for another
// application is refused.
func TestAuthExpectingAnAudienceAndAnIssuer(t *testing.T) {
	sign := func(claims jwt.MapClaims) string {
		claims["sub"] = "ann"
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := httpapi.NewHS256Auth(secret).Expecting("orderdesk", "https://id.example.com")
	for _, tc := range []struct {
		claims jwt.MapClaims
		ok     bool
	}{
		{jwt.MapClaims{"aud": "orderdesk", "iss": "https://id.example.com"}, true},
		{jwt.MapClaims{"aud": []string{"billing", "orderdesk"}, "iss": "https://id.example.com"}, true},
		{jwt.MapClaims{"aud": "billing", "iss": "https://id.example.com"}, false},
		{jwt.MapClaims{"iss": "https://id.example.com"}, false},
		{jwt.MapClaims{"aud": "orderdesk", "iss": "https://evil.example.com"}, false},
		{jwt.MapClaims{"aud": "orderdesk"}, false},
	} {
		if _, err := a.Authenticate(sign(tc.claims)); (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want accepted %v", tc.claims, err, tc.ok)
		}
	}
	// Without expectations, any audience and issuer, or none.
	if _, err := httpapi.NewHS256Auth(secret).Authenticate(sign(jwt.MapClaims{"aud": "billing", "iss": "x"})); err != nil {
		t.Errorf("no expectations: %v", err)
	}
	if _, err := httpapi.NewHS256Auth(secret).Expecting("orderdesk", "").Authenticate(sign(jwt.MapClaims{"aud": "orderdesk"})); err != nil {
		t.Errorf("an audience alone: %v", err)
	}
}

// TestHugeTokenRefusedUnread: a token is refused by its length before its
// claims are decoded. net/http takes a header of up to 1 MB, and the
// claims of a token are decoded before its signature is checked: a forged
// token of a megabyte of roles cost the server some 25 ms of CPU to refuse,
// which anyone could send a thousand times a second.
func TestHugeTokenRefusedUnread(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{}, false)
	roles := make([]string, 0, 10_000)
	for i := range cap(roles) {
		roles = append(roles, fmt.Sprintf("role-%d", i))
	}
	huge, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "roles": roles}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(huge) <= httpapi.MaxTokenBytes {
		t.Fatalf("the token has %d bytes, not more than %d", len(huge), httpapi.MaxTokenBytes)
	}
	p := problem(t, h.do("GET", "/lists/counter", huge, nil), http.StatusUnauthorized, "")
	if d := p["detail"].(string); !strings.Contains(d, "longer than") {
		t.Fatalf("detail %q", d)
	}
	if _, err := httpapi.NewHS256Auth(secret).Authenticate(huge); err == nil {
		t.Fatal("Authenticate took the huge token")
	}
	// A token with many roles, as some identity providers issue, is taken.
	big, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "roles": roles[:500]}).SignedString(secret)
	if r := h.do("GET", "/lists/counter", big, nil); r.status != http.StatusOK {
		t.Fatalf("a token of %d bytes: %s", len(big), r)
	}
}
