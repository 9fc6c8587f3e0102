package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A --jwks-url anyone on the network path could answer is refused at
// start, as a mistake on the command line, before anything is fetched or
// created; plain http is taken for a loopback host.
func TestServeRefusesAJWKSURLOverPlainHTTP(t *testing.T) {
	for _, u := range []string{"http://idp.example/jwks.json", "http://10.0.0.1/jwks.json", "ftp://idp.example/jwks.json", "idp.example/jwks.json"} {
		data := filepath.Join(t.TempDir(), "never")
		code, _, stderr := runCLI(t, "serve", "--jwks-url", u, "--addr", "127.0.0.1:0", "--data", data)
		if code != 2 || !strings.HasPrefix(stderr, "plait serve: --jwks-url ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--jwks-url %s: exit %d, stderr %q; want 2 and one line on --jwks-url", u, code, stderr)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("--jwks-url %s: made %s before refusing it", u, data)
		}
	}

	// A key set served over http on 127.0.0.1 is taken.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := key.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer jwks.Close()
	base, _ := serveInBackground(t, "--data", t.TempDir(), "--log-level", "error", "--jwks-url", jwks.URL)
	tk := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()})
	tk.Header["kid"] = "k1"
	tok, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if code := listStatus(t, base, tok); code != http.StatusOK {
		t.Errorf("GET /lists/orderList with a token of the loopback key set: %d", code)
	}
}

// serve --help says, at each flag that requires tokens, that a token
// without exp is accepted.
func TestServeHelpSaysATokenWithoutExpIsAccepted(t *testing.T) {
	_, out, _ := runCLI(t, "serve", "--help")
	for _, flag := range []string{"--jwt-secret", "--jwks-url"} {
		i := strings.Index(out, "  "+flag+" ")
		if i < 0 {
			t.Fatalf("serve --help has no %s:\n%s", flag, out)
		}
		help, _, _ := strings.Cut(out[i:], "\n  --")
		if !strings.Contains(help, "without an exp claim is accepted") {
			t.Errorf("%s's help does not say a token without exp is accepted: %q", flag, help)
		}
	}
}
