package httpapi

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fuzz targets of the parsers FuzzDecodeEnvelope, FuzzParseListQuery and
// FuzzCheckData leave out: the wait timeout, tokens and their claims, the
// key set, the client address, the route parameters and the content type.

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"5s", "500ms", "0", "-1s", "1h", "99999999999h", "1.5s", "5", "", "1e3s", "1s1ms", "+2s", ".5s", "0.25", "2.", "1e3", "inf"} {
		f.Add(s, true)
	}
	f.Add("", false)
	f.Fuzz(func(t *testing.T, v string, has bool) {
		q := url.Values{}
		if has {
			q.Set("timeout", v)
		}
		d, p := parseTimeout(q)
		if p != nil {
			if !has || p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Path != "timeout" {
				t.Fatalf("timeout %q: problem %+v", v, p)
			}
			if pd, err := time.ParseDuration(v); err == nil && pd >= 0 {
				t.Fatalf("timeout %q refused though it parses as %v", v, pd)
			}
			return
		}
		if d < 0 || d > MaxWait || !has && d != DefaultWait {
			t.Fatalf("timeout %q (given %v): %v", v, has, d)
		}
		if _, err := time.ParseDuration(v); has && err != nil && v != "" && !numeric(v) {
			t.Fatalf("timeout %q taken as %v: neither a duration nor a number of seconds", v, d)
		}
	})
}

var fuzzSecret = []byte("fuzz secret, long enough for HS256")

// FuzzAuthenticateToken feeds arbitrary strings as tokens: each is refused
// or, if it verifies, has a subject. The good token's expiry is a fixed
// date rather than one derived from the clock: the fuzzing coordinator and
// its workers are separate processes, and each must build the same token.
func FuzzAuthenticateToken(f *testing.F) {
	exp := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "exp": exp}).SignedString(fuzzSecret)
	for _, s := range []string{good, good + "x", "a.b.c", "", "...", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	a := NewHS256Auth(fuzzSecret)
	f.Fuzz(func(t *testing.T, tok string) {
		u, err := a.Authenticate(tok)
		if err == nil && (u.ID == "" || tok != good && !strings.HasPrefix(tok, strings.Join(strings.Split(good, ".")[:2], "."))) {
			t.Fatalf("token %q verified as %+v", tok, u)
		}
	})
}

// FuzzAuthenticateClaims signs arbitrary claims with the right key: the
// user comes out exactly as the claims say, or the token is refused — when
// it has no string sub, an exp that is not a number in the future (within
// the leeway), a nbf in the future, or roles that are not a list of
// strings. Without exp it holds.
func FuzzAuthenticateClaims(f *testing.F) {
	exp := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, s := range []string{
		`{"sub":"ann","exp":` + itoa64(exp) + `}`,
		`{"sub":"ann","exp":` + itoa64(exp) + `,"roles":["admin","x"]}`,
		`{"sub":"ann","exp":` + itoa64(exp) + `,"roles":"admin"}`,
		`{"sub":"","exp":` + itoa64(exp) + `}`,
		`{"sub":7,"exp":` + itoa64(exp) + `}`,
		`{"sub":"ann","exp":"soon"}`,
		`{"sub":"ann","exp":1}`,
		`{"sub":"ann","exp":` + itoa64(exp) + `,"nbf":` + itoa64(exp) + `}`,
		`{"sub":"ann"}`, `[]`, `null`, `{"sub":"ann","exp":1e300}`,
	} {
		f.Add([]byte(s))
	}
	a := NewHS256Auth(fuzzSecret)
	f.Fuzz(func(t *testing.T, claims []byte) {
		tok := signRaw(t, claims)
		u, err := a.Authenticate(tok)
		if err != nil {
			return
		}
		var c map[string]any
		if json.Unmarshal(claims, &c) != nil {
			t.Fatalf("claims %q are not a JSON object, yet verified as %+v", claims, u)
		}
		for k := range c {
			for _, name := range readClaims {
				if k != name && strings.EqualFold(k, name) {
					t.Fatalf("claims %s verified with %q beside %q", claims, k, name)
				}
			}
		}
		sub, _ := c["sub"].(string)
		if sub == "" || u.ID != sub {
			t.Fatalf("claims %s verified as user %q", claims, u.ID)
		}
		if exp, has := c["exp"]; has {
			if e, ok := exp.(float64); !ok || time.Unix(int64(e), 0).Add(Leeway+time.Second).Before(time.Now()) {
				t.Fatalf("claims %s verified with an exp that is not in the future", claims)
			}
		}
		if n, ok := c["nbf"].(float64); ok && time.Unix(int64(n), 0).After(time.Now().Add(Leeway+time.Second)) {
			t.Fatalf("claims %s verified before their nbf", claims)
		}
		var want []string
		if r, ok := c["roles"]; ok && r != nil {
			list, ok := r.([]any)
			if !ok {
				t.Fatalf("claims %s: roles %v taken though not a list", claims, r)
			}
			for _, x := range list {
				s, ok := x.(string)
				if !ok {
					t.Fatalf("claims %s: role %v taken though not a string", claims, x)
				}
				want = append(want, s)
			}
		}
		if !slices.Equal(u.Roles, want) {
			t.Fatalf("claims %s: roles %q, want %q", claims, u.Roles, want)
		}
	})
}

// signRaw signs claims, as they are, with HS256 and fuzzSecret.
func signRaw(t *testing.T, claims []byte) string {
	unsigned := b64url([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64url(claims)
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, fuzzSecret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + b64url(sig)
}

func b64url(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[]}`, `{"keys":[{"kty":"RSA","kid":"a","n":"sXch","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","kid":"b","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":null}`, `[]`, `{`, `{"keys":[{"kty":"RSA","n":"","e":""}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys and an error: %v", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for kid, k := range keys {
			switch pk := k.key.(type) {
			case *rsa.PublicKey:
				if pk.N == nil || pk.N.Sign() <= 0 || pk.E < 2 {
					t.Fatalf("key %q: RSA key %v", kid, pk)
				}
			case *ecdsa.PublicKey:
				if _, err := pk.ECDH(); err != nil {
					t.Fatalf("key %q: EC point off its curve", kid)
				}
			default:
				t.Fatalf("key %q of type %T", kid, pk)
			}
		}
	})
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:5000", "1.2.3.4, 5.6.7.8", 1)
	f.Add("[2001:db8::1]:80", "::1", 2)
	f.Add("pipe", "", 0)
	f.Fuzz(func(t *testing.T, remote, xff string, proxies int) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		proxies %= 4
		got := clientAddr(r, proxies)
		if proxies <= 0 {
			// The header is never read: the key is the connection's.
			r.Header.Del("X-Forwarded-For")
			if again := clientAddr(r, 0); again != got {
				t.Fatalf("X-Forwarded-For %q changed the key from %q to %q without trusted proxies", xff, again, got)
			}
		}
		if a, err := netip.ParseAddr(got); err == nil && a.Is6() && !a.Is4In6() {
			t.Fatalf("an IPv6 key %q not cut to its /64", got)
		}
	})
}

func FuzzCheckParams(f *testing.F) {
	for _, s := range []string{"wait=outcome", "wait=outcome&timeout=1s", "x=1", "wait=a&wait=b", "%zz", "access_token=t", ";", "=", "&&"} {
		f.Add(s, "POST /commands")
	}
	f.Add("after=1&limit=2", "GET /aggregates/{type}/{id}/events")
	f.Add("types=a&lastEventId=3", "GET /stream")
	f.Fuzz(func(t *testing.T, raw, route string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.RawQuery = raw
		p := checkParams(r, route)
		q, err := url.ParseQuery(raw)
		allowed, known := routeParams[route]
		if p == nil {
			if err == nil && known && allowed != nil {
				for k, vs := range q {
					if len(vs) > 1 || !slices.Contains(allowed, k) && k != "access_token" {
						t.Fatalf("%q on %s let through", raw, route)
					}
				}
			}
			return
		}
		if p.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Detail == "" || !known || err != nil {
			t.Fatalf("%q on %s: %+v", raw, route, p)
		}
	})
}

func FuzzJSONContentType(f *testing.F) {
	for _, s := range []string{"", "application/json", "application/json; charset=utf-8", "application/problem+json", "text/plain", "application/x-www-form-urlencoded", "x;;;", "APPLICATION/JSON"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		ok := jsonContentType(ct)
		if ok && ct != "" {
			lower := strings.ToLower(ct)
			if !strings.Contains(lower, "json") && !strings.Contains(lower, "x-www-form-urlencoded") && !strings.Contains(lower, "text/plain") {
				t.Fatalf("%q taken as JSON", ct)
			}
		}
		if !ok {
			if p := unsupportedMediaType(ct); p.Status != http.StatusUnsupportedMediaType || len(p.Detail) > 400 {
				t.Fatalf("%q: %+v", ct, p)
			}
		}
	})
}
