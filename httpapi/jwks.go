package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwks is a JSON Web Key Set fetched from a URL, holding the RSA and EC
// signing keys by key id.
type jwks struct {
	url    string
	client *http.Client

	// minRefresh bounds how often an unknown key id makes the set be
	// fetched again, so forged key ids cannot turn the server into a flood:
	// it counts from the end of the last fetch, so that requests that
	// waited for a slow fetch use its keys rather than fetch again.
	minRefresh time.Duration
	// maxAge is how long a fetched set is used before a token makes it be
	// fetched again in the background, so that a key the set no longer
	// holds (rotated out, or revoked) stops being trusted. While the set
	// cannot be fetched, the last one fetched stays in use.
	maxAge time.Duration

	fetchMu sync.Mutex // held while fetching, so one fetch runs at a time
	fetched time.Time  // when the last fetch ended; guarded by fetchMu
	// fetchErr is why the last fetch failed, nil if it did not; guarded by
	// fetchMu. While it is set, a key id the set does not hold may be one
	// the set holds now, so its token cannot be verified.
	fetchErr error

	stale atomic.Bool // a background refresh of an old set is under way

	mu   sync.RWMutex // guards keys; never held while fetching
	keys map[string]jwk
}

// jwk is one usable key.
type jwk struct {
	alg string // the algorithm the set pins the key to, "" if any
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// The defaults of jwks.minRefresh and jwks.maxAge.
const (
	jwksMinRefresh = 5 * time.Second
	jwksMaxAge     = 10 * time.Minute
)

// maxJWKS is the largest key set read, in bytes: a set holds a few keys
// of a few hundred bytes each.
const maxJWKS = 1 << 20

func newJWKS(url string, client *http.Client) *jwks {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: checkJWKSRedirect}
	}
	return &jwks{url: url, client: client, minRefresh: jwksMinRefresh, maxAge: jwksMaxAge}
}

// CheckJWKSURL refuses a key set URL whose keys anyone on the network path
// could replace, and so sign tokens with: one that is not https, unless
// its host is a loopback address (localhost, 127.0.0.0/8, ::1).
func CheckJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q: want an absolute https URL, such as https://idp.example/jwks.json", raw)
	case strings.EqualFold(u.Scheme, "https"):
		return nil
	case strings.EqualFold(u.Scheme, "http") && loopbackName(u.Hostname()):
		return nil
	case strings.EqualFold(u.Scheme, "http"):
		return fmt.Errorf("%q is not https: anyone on the network path could replace its keys, and sign tokens with theirs (plain http is taken for a loopback host only)", raw)
	}
	return fmt.Errorf("%q: want an https URL, such as https://idp.example/jwks.json", raw)
}

// loopbackName reports whether host is localhost or a loopback address.
// A name under .localhost, which a resolver may send to DNS, is not.
func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkJWKSRedirect follows a redirect of the key set only to the same
// scheme and host: never from https to http, nor to another host, which
// the URL checked at start did not name.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	from := via[0].URL
	if !strings.EqualFold(req.URL.Scheme, from.Scheme) || !strings.EqualFold(req.URL.Host, from.Host) {
		return fmt.Errorf("refused a redirect from %s://%s to %s://%s: the key set is fetched from its URL's scheme and host only",
			from.Scheme, from.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// ErrKeySetUnavailable is the error of a token that names a key the JWKS
// fetched last does not hold, while the set cannot be fetched again: the
// token may be good, signed by a key added since, but it cannot be
// verified until the set can be fetched. The error wraps the fetch's.
var ErrKeySetUnavailable = errors.New("the key set cannot be fetched")

// keyfunc finds the key a token names, fetching the set again once if the
// key id is unknown. A key it holds is used without waiting for any fetch,
// even while the set cannot be fetched.
func (j *jwks) keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	alg, _ := t.Header["alg"].(string)
	j.refreshIfOld()
	k, ok := j.lookup(kid)
	if !ok {
		var fetchErr error
		j.fetchMu.Lock()
		// Another request may have fetched the set while this one waited.
		if k, ok = j.lookup(kid); !ok {
			if time.Since(j.fetched) >= j.minRefresh {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				j.fetchLocked(ctx)
				cancel()
				k, ok = j.lookup(kid)
			}
			// Within minRefresh of a failed fetch, the key set is as
			// unavailable as that fetch found it.
			fetchErr = j.fetchErr
		}
		j.fetchMu.Unlock()
		if !ok && fetchErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeySetUnavailable, fetchErr)
		}
	}
	if !ok {
		return nil, fmt.Errorf("no key %q in the key set", kid)
	}
	if k.alg != "" && k.alg != alg {
		return nil, fmt.Errorf("key %q is for %s, not %s", kid, k.alg, alg)
	}
	return k.key, nil
}

// lookup finds a key by id; a token without a key id may use the only key
// of a set that has one.
func (j *jwks) lookup(kid string) (jwk, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k, true
		}
	}
	k, ok := j.keys[kid]
	return k, ok
}

// refreshIfOld fetches the set again in the background when it is older
// than maxAge and no fetch is under way; meanwhile the old set serves.
func (j *jwks) refreshIfOld() {
	if !j.fetchMu.TryLock() {
		return // a fetch is under way
	}
	old := time.Since(j.fetched) >= j.maxAge
	j.fetchMu.Unlock()
	if !old || !j.stale.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer j.stale.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j.fetchMu.Lock()
		defer j.fetchMu.Unlock()
		if err := j.fetchLocked(ctx); err != nil {
			// The old set goes on serving (an outage of the key set's
			// server does not lock every user out); a token minRefresh
			// from now tries again.
			j.fetched = time.Now().Add(j.minRefresh - j.maxAge)
		}
	}()
}

func (j *jwks) refresh(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetchLocked(ctx)
}

// fetchLocked fetches the set and replaces the keys; fetchMu is held.
func (j *jwks) fetchLocked(ctx context.Context) (err error) {
	// Set when the fetch ends, failed or not: the requests that waited for
	// it find it recent and do not fetch again one after another.
	defer func() { j.fetched, j.fetchErr = time.Now(), err }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", j.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: status %s", j.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", j.url, err)
	}
	if len(body) > maxJWKS {
		return fmt.Errorf("read %s: larger than %d bytes", j.url, maxJWKS)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("parse %s: %w", j.url, err)
	}
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
	return nil
}

// parseJWKS reads the RSA and EC signing keys of a key set, skipping keys of
// other kinds or uses. A set without any usable key is an error.
func parseJWKS(body []byte) (map[string]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := map[string]jwk{}
	var errs []error
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key any
		var err error
		switch k.Kty {
		case "RSA":
			key, err = rsaKey(k.N, k.E)
		case "EC":
			key, err = ecKey(k.Crv, k.X, k.Y)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", k.Kid, err))
			continue
		}
		keys[k.Kid] = jwk{alg: k.Alg, key: key}
	}
	if len(keys) == 0 {
		return nil, errors.Join(append([]error{errors.New("no usable RSA or EC signing key")}, errs...)...)
	}
	return keys, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func rsaKey(n, e string) (*rsa.PublicKey, error) {
	nb, err := b64(n)
	if err != nil || len(nb) == 0 {
		return nil, fmt.Errorf("bad modulus")
	}
	eb, err := b64(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, fmt.Errorf("bad exponent")
	}
	exp := 0
	for _, b := range eb {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("bad exponent %d", exp)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: exp}, nil
}

func ecKey(crv, x, y string) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("unsupported curve %q", crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	xb, errX := b64(x)
	yb, errY := b64(y)
	if errX != nil || errY != nil || len(xb) > size || len(yb) > size {
		return nil, fmt.Errorf("bad point")
	}
	point := make([]byte, 1+2*size)
	point[0] = 4
	copy(point[1+size-len(xb):], xb)
	copy(point[1+2*size-len(yb):], yb)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("bad point: %w", err)
	}
	return key, nil
}
