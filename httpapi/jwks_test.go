package httpapi

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func ecJWK(t *testing.T, kid string) (map[string]any, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}, k
}

func TestParseJWKS(t *testing.T) {
	good, _ := ecJWK(t, "good")
	enc, _ := ecJWK(t, "enc")
	enc["use"] = "enc"
	offCurve, _ := ecJWK(t, "off")
	offCurve["y"] = offCurve["x"]
	set := map[string]any{"keys": []any{
		good, enc, offCurve,
		map[string]any{"kty": "EC", "kid": "p192", "crv": "P-192", "x": "AA", "y": "AA"},
		map[string]any{"kty": "RSA", "kid": "even", "n": "AQAB", "e": "Ag"},
		map[string]any{"kty": "RSA", "kid": "nomod", "n": "", "e": "AQAB"},
		map[string]any{"kty": "oct", "kid": "sym", "k": "AA"},
	}}
	b, _ := json.Marshal(set)
	keys, err := parseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["good"].key == nil {
		t.Fatalf("keys %v, want only the good one", keys)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"EC","kid":"off","crv":"P-256","x":"AA","y":"AA"}]}`)); err == nil || !strings.Contains(err.Error(), "off") {
		t.Fatalf("a set of bad keys: %v", err)
	}
	if _, err := parseJWKS([]byte(`not json`)); err == nil {
		t.Fatal("not JSON parsed")
	}
}

// signES256 signs a token for ann, naming key id kid in its header.
func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	tk := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "ann", "exp": 4102444800})
	tk.Header["kid"] = kid
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWKSUnderConcurrency verifies tokens of a known key while forged key
// ids ask for fetches, from many goroutines at once.
func TestJWKSUnderConcurrency(t *testing.T) {
	jwk, key := ecJWK(t, "k1")
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer srv.Close()
	ks := newJWKS(srv.URL, nil)
	if err := ks.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ks.minRefresh = 0
	auth := newAuth([]string{"ES256"}, ks.keyfunc)
	good, forged := signES256(t, key, "k1"), signES256(t, key, "nope")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := auth.Authenticate(good); err != nil {
					t.Errorf("good token: %v", err)
				}
				if _, err := auth.Authenticate(forged); err == nil {
					t.Error("a token of an unknown key was accepted")
				}
			}
		}()
	}
	wg.Wait()
	if fetches.Load() < 2 {
		t.Fatalf("%d fetches: unknown key ids should refresh the set", fetches.Load())
	}
}

// Requests that waited for a slow fetch of the key set use what it brought:
// they do not fetch it again one after another, each as slow.
func TestASlowKeySetFetchIsNotRepeatedByTheRequestsThatWaited(t *testing.T) {
	jwk, key := ecJWK(t, "k1")
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			time.Sleep(300 * time.Millisecond)
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer srv.Close()
	ks := newJWKS(srv.URL, nil)
	if err := ks.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ks.minRefresh = 100 * time.Millisecond // shorter than a fetch
	time.Sleep(ks.minRefresh)
	auth := newAuth([]string{"ES256"}, ks.keyfunc)
	forged := signES256(t, key, "forged")
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := auth.Authenticate(forged); err == nil {
				t.Error("a token of an unknown key was accepted")
			}
		})
	}
	wg.Wait()
	if n := fetches.Load() - 1; n != 1 {
		t.Errorf("%d fetches for 6 requests at once of one unknown key id, want 1", n)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("the requests took %v, about one fetch (300ms) expected", took)
	}
}

// A key the set no longer holds stops being trusted once the set is old,
// though no token names an unknown key.
func TestAnOldKeySetIsFetchedAgain(t *testing.T) {
	jwk1, key1 := ecJWK(t, "k1")
	jwk2, _ := ecJWK(t, "k2")
	var rotated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := []any{jwk1}
		if rotated.Load() {
			set = []any{jwk2}
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer srv.Close()
	ks := newJWKS(srv.URL, nil)
	if err := ks.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ks.maxAge = 200 * time.Millisecond
	auth := newAuth([]string{"ES256"}, ks.keyfunc)
	old := signES256(t, key1, "k1")
	rotated.Store(true)
	if _, err := auth.Authenticate(old); err != nil {
		t.Fatalf("k1 while the set fetched holds it: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := auth.Authenticate(old); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key rotated out of the set is still trusted 5 s after the set grew old")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// While the last fetch failed, a key id the set does not hold is an
// unavailable key set, not a forged token, until a fetch succeeds, and
// without a fetch per token in between.
func TestAnUnknownKeyWhileTheKeySetCannotBeFetched(t *testing.T) {
	jwk, key := ecJWK(t, "k1")
	var down atomic.Bool
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer srv.Close()
	ks := newJWKS(srv.URL, nil)
	if err := ks.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ks.minRefresh = 200 * time.Millisecond
	auth := newAuth([]string{"ES256"}, ks.keyfunc)
	good, unknown := signES256(t, key, "k1"), signES256(t, key, "k2")
	down.Store(true)
	time.Sleep(ks.minRefresh)
	for range 5 {
		if _, err := auth.Authenticate(unknown); !errors.Is(err, ErrKeySetUnavailable) {
			t.Fatalf("unknown key, key set down: %v", err)
		}
		if _, err := auth.Authenticate(good); err != nil {
			t.Fatalf("known key, key set down: %v", err)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the first and one for 5 tokens within minRefresh", n)
	}
	down.Store(false)
	time.Sleep(ks.minRefresh)
	if _, err := auth.Authenticate(unknown); err == nil || errors.Is(err, ErrKeySetUnavailable) {
		t.Fatalf("unknown key, key set back: %v", err)
	}
}

// A key set anyone on the network path could replace is refused: plain
// http is taken for a loopback host only.
func TestCheckJWKSURL(t *testing.T) {
	for _, u := range []string{
		"https://idp.example/jwks.json",
		"HTTPS://idp.example:8443/.well-known/jwks.json",
		"http://127.0.0.1:18101/jwks.json",
		"http://127.1.2.3/jwks.json",
		"http://localhost:8080/jwks.json",
		"http://[::1]:8080/jwks.json",
	} {
		if err := CheckJWKSURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://idp.example/jwks.json",
		"http://10.0.0.1/jwks.json",
		"http://0.0.0.0/jwks.json",
		"http://keys.localhost/jwks.json",
		"http://localhost.idp.example/jwks.json",
		"http://127.0.0.1.nip.io/jwks.json",
		"ftp://idp.example/jwks.json",
		"file:///etc/jwks.json",
		"idp.example/jwks.json",
		"https:///jwks.json",
		"",
	} {
		if err := CheckJWKSURL(u); err == nil {
			t.Errorf("%q: taken", u)
		}
	}
	if _, err := NewJWKSAuth(t.Context(), "http://idp.example/jwks.json"); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("NewJWKSAuth of a plain http URL: %v", err)
	}
}

// A redirect of the key set is followed to the same scheme and host only:
// never from https down to http, nor to another host.
func TestAKeySetRedirectLeavingItsSchemeOrHostIsRefused(t *testing.T) {
	jwk, _ := ecJWK(t, "k1")
	keys := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/jwks.json", http.StatusFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}
	plain := httptest.NewServer(http.HandlerFunc(keys))
	defer plain.Close()
	other := httptest.NewServer(http.HandlerFunc(keys))
	defer other.Close()
	to := func(target string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
	}
	tls := httptest.NewTLSServer(to(plain.URL + "/jwks.json"))
	defer tls.Close()
	hop := httptest.NewServer(to(other.URL + "/jwks.json"))
	defer hop.Close()

	downgrade := newJWKS(tls.URL, nil)
	downgrade.client.Transport = tls.Client().Transport // trusts tls's certificate
	if err := downgrade.refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("https redirected to http: %v", err)
	}
	if err := newJWKS(hop.URL, nil).refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("redirected to another host: %v", err)
	}
	if err := newJWKS(plain.URL+"/moved", nil).refresh(t.Context()); err != nil {
		t.Errorf("redirected on the same host: %v", err)
	}
}

// A key set is read up to 1 MiB: a larger one is refused, not cut to its
// first MiB and taken.
func TestAKeySetOverAMiBIsRefused(t *testing.T) {
	jwk, _ := ecJWK(t, "k1")
	set, _ := json.Marshal(map[string]any{"keys": []any{jwk}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(set)
		w.Write(bytes.Repeat([]byte(" "), maxJWKS)) // valid JSON still, cut or not
	}))
	defer srv.Close()
	if err := newJWKS(srv.URL, nil).refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a key set over 1 MiB: %v", err)
	}
}
