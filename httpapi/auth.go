package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
)

// Auth authenticates requests by their bearer JWT: an HS256 token signed
// with a shared secret, or an RS256/ES256 token signed by a key of a JWKS.
// Only the algorithms of the chosen kind are accepted (never "none"); an
// expiry (exp), a start (nbf) and an issue time (iat) are checked when the
// token has them, with Leeway: a token without exp holds until its key
// changes, as its issuer chose. The user's id is its "sub" claim and the
// user's roles its "roles" claim, an array of strings.
type Auth struct {
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
	methods []string
	aud     string // the audience a token must name, "" for any
	iss     string // the issuer a token must name, "" for any
}

// Leeway is the clock skew tolerated on a token's exp, nbf and iat: a few
// seconds, more than clocks kept by NTP differ by, so that a token that
// expired is refused at once for all a client can tell.
const Leeway = 5 * time.Second

// NewHS256Auth accepts HS256 tokens signed with secret. An empty secret
// accepts no token.
func NewHS256Auth(secret []byte) *Auth {
	key := bytes.Clone(secret)
	return newAuth([]string{"HS256"}, func(*jwt.Token) (any, error) {
		if len(key) == 0 {
			return nil, errors.New("no secret configured")
		}
		return key, nil
	})
}

// NewJWKSAuth accepts RS256 and ES256 tokens signed by a key of the JSON Web
// Key Set at url: an https URL, or an http one of a loopback host (see
// CheckJWKSURL). A redirect is followed to the same scheme and host only,
// and a set is read up to 1 MiB, within 10 s. It fetches the set now,
// within ctx, and fetches it again when a token names a key id it does not
// know (at most every few seconds), so keys can be rotated without a
// restart, and, in the background, when the set is 10 minutes old, so that
// a key taken out of it stops being trusted. While the set cannot be
// fetched, the last one stays in use, and a token naming a key it does not
// hold fails with ErrKeySetUnavailable: the server answers it 503, not 401,
// as the token may be good.
func NewJWKSAuth(ctx context.Context, url string) (*Auth, error) {
	if err := CheckJWKSURL(url); err != nil {
		return nil, fmt.Errorf("httpapi: the JWKS URL %w", err)
	}
	ks := newJWKS(url, nil)
	if err := ks.refresh(ctx); err != nil {
		return nil, fmt.Errorf("httpapi: load the JWKS: %w", err)
	}
	return newAuth([]string{"RS256", "ES256"}, ks.keyfunc), nil
}

func newAuth(methods []string, keyfunc jwt.Keyfunc) *Auth {
	a := &Auth{keyfunc: keyfunc, methods: methods}
	a.parser = a.newParser()
	return a
}

func (a *Auth) newParser() *jwt.Parser {
	opts := []jwt.ParserOption{jwt.WithValidMethods(a.methods), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway)}
	if a.aud != "" {
		opts = append(opts, jwt.WithAudience(a.aud))
	}
	if a.iss != "" {
		opts = append(opts, jwt.WithIssuer(a.iss))
	}
	return jwt.NewParser(opts...)
}

// Expecting returns the authenticator accepting only tokens whose aud claim
// names audience and whose iss claim is issuer; an empty one is not
// checked. Where the keys sign tokens for other applications too (an
// identity provider's JWKS), the audience is what tells this
// application's tokens from theirs.
func (a *Auth) Expecting(audience, issuer string) *Auth {
	c := *a
	c.aud, c.iss = audience, issuer
	c.parser = c.newParser()
	return &c
}

// claims are the claims Plait reads from a token.
type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// Authenticate verifies a token and returns its user.
func (a *Auth) Authenticate(token string) (plait.User, error) {
	u, _, err := a.authenticate(token)
	return u, err
}

// MaxTokenBytes is the longest token taken. The claims of a token are
// decoded before its signature can be checked, so a forged one of the
// megabyte a request's headers may hold would cost every request that much
// work; a token of an identity provider with many groups has a few
// kilobytes, and proxies refuse headers much larger than this.
const MaxTokenBytes = 64 << 10

// authenticate is Authenticate, also returning until when the token is
// accepted: its expiry, with the leeway, or zero if it has none.
func (a *Auth) authenticate(token string) (plait.User, time.Time, error) {
	if len(token) > MaxTokenBytes {
		return plait.User{}, time.Time{}, fmt.Errorf("verify token: longer than %d bytes", MaxTokenBytes)
	}
	var c claims
	tok, err := a.parser.ParseWithClaims(token, &c, a.keyfunc)
	if err != nil {
		return plait.User{}, time.Time{}, fmt.Errorf("verify token: %w", err)
	}
	if err := checkClaims(tok); err != nil {
		return plait.User{}, time.Time{}, fmt.Errorf("verify token: %w", err)
	}
	if c.Subject == "" {
		return plait.User{}, time.Time{}, errors.New("verify token: no sub claim")
	}
	if strings.ContainsRune(c.Subject, 0) {
		// No stored text holds NUL (a command's data with one is a 400):
		// the user's commands, and the events of reactions that carry the
		// user, such as a view's owner, could not be stored.
		return plait.User{}, time.Time{}, errors.New("verify token: the sub claim holds a NUL character")
	}
	var until time.Time // a token without exp holds until its issuer's key changes
	if c.ExpiresAt != nil {
		until = c.ExpiresAt.Add(Leeway)
	}
	return plait.User{ID: c.Subject, Roles: c.Roles}, until, nil
}

// readClaims are the claims Authenticate reads, by their exact names.
var readClaims = []string{"sub", "exp", "nbf", "iat", "iss", "aud", "jti", "roles"}

// checkClaims refuses a token whose exp, nbf or iat is not a number, or
// with a claim whose name is one Plait reads in another case, such as
// "Sub": claim names are case-sensitive (RFC 7519), but encoding/json
// matches them without case, so that {"sub":"ann","Sub":"admin"} would be
// read as user admin.
func checkClaims(tok *jwt.Token) error {
	parts := strings.Split(tok.Raw, ".")
	if len(parts) != 3 {
		return errors.New("not a signed token")
	}
	payload, err := jwt.NewParser().DecodeSegment(parts[1])
	if err != nil {
		return fmt.Errorf("decode claims: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return fmt.Errorf("decode claims: %w", err)
	}
	for k, v := range raw {
		for _, name := range readClaims {
			if k != name && strings.EqualFold(k, name) {
				return fmt.Errorf("claim %q is not %q: claim names are case-sensitive", k, name)
			}
		}
		// A NumericDate is a JSON number (RFC 7519); the parser would also
		// take one written as a string.
		if (k == "exp" || k == "nbf" || k == "iat") && !(v[0] == '-' || '0' <= v[0] && v[0] <= '9') {
			return fmt.Errorf("claim %q is not a number of seconds", k)
		}
	}
	return nil
}

// CookieName is the cookie a browser may carry its token in, for the GET
// requests it cannot add a header to (EventSource).
const CookieName = "plait_token"

// credentials says where a request may carry its token.
type credentials int

const (
	headerOnly credentials = iota // Authorization header, and the cookie on GET
	queryToken                    // also ?access_token= and ?access_cookie=, for GET /stream
)

// StreamCookiePrefix begins the name of a cookie that carries the token of
// one GET /stream, named by its ?access_cookie=: the cookie
// plait_token_<access_cookie>. A browser client sets one of its own for each
// stream it opens, so that its token stays out of the URL, and no other
// tab's stream, of another user maybe, takes it.
const StreamCookiePrefix = CookieName + "_"

// validCookieSuffix is what an access_cookie must look like.
var validCookieSuffix = regexp.MustCompile(`^[A-Za-z0-9]{8,64}$`)

// user authenticates the request. Without an Auth it is the local user.
// It counts the request as one of the user's in flight, until its answer
// is written (see Options.MaxRequestsPerUser).
func (s *Server) user(r *http.Request, from credentials) (plait.User, *Problem) {
	u, _, p := s.userUntil(r, from)
	if p == nil {
		p = s.holdRequest(r, u)
	}
	return u, p
}

// userUntil is user, also returning until when its credentials hold: zero
// for the local user of a server without Auth, and for a token without
// exp.
func (s *Server) userUntil(r *http.Request, from credentials) (plait.User, time.Time, *Problem) {
	if s.opts.Auth == nil {
		return s.local, time.Time{}, nil
	}
	token, p := bearer(r, from)
	if p != nil {
		return plait.User{}, time.Time{}, p
	}
	u, until, err := s.opts.Auth.authenticate(token)
	if errors.Is(err, ErrKeySetUnavailable) {
		// Not the client's fault: its token may be good. The fetch's error,
		// which names the key set's URL and host, goes to the log only.
		p := s.failureOn(&s.keySetFailures, r, http.StatusServiceUnavailable, detailKeySetDown, "verify a token: fetch the key set", err)
		p.retryAfter = int64(jwksMinRefresh / time.Second)
		return plait.User{}, time.Time{}, p
	}
	if err != nil {
		return plait.User{}, time.Time{}, unauthorized(err.Error())
	}
	if p := s.limitUser(u.ID); p != nil {
		return plait.User{}, time.Time{}, p
	}
	return u, until, nil
}

func bearer(r *http.Request, from credentials) (string, *Problem) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", unauthorized("the Authorization header must be: Bearer <token>")
		}
		return token, nil
	}
	if from == queryToken {
		q := r.URL.Query()
		if t := q.Get("access_token"); t != "" {
			return t, nil
		}
		if name := q.Get("access_cookie"); name != "" {
			if !validCookieSuffix.MatchString(name) {
				return "", unauthorized("access_cookie must be 8 to 64 letters and digits")
			}
			c, err := r.Cookie(StreamCookiePrefix + name)
			if err != nil || c.Value == "" {
				return "", unauthorized("no cookie " + StreamCookiePrefix + name + " for access_cookie")
			}
			return c.Value, nil
		}
	}
	// The cookie is taken on reads only: a cross-site form cannot post a
	// command with the user's cookie.
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
			return c.Value, nil
		}
	}
	return "", unauthorized("missing bearer token")
}

func unauthorized(detail string) *Problem {
	return newProblem(http.StatusUnauthorized, slugUnauthorized, detail)
}

// localUser is the single user of a server without Auth. It holds every
// role the application names in SeeAllRoles, so it sees every instance of
// a type that names one; of a type that names none it sees what it owns.
// Rules of Access.Send that ask for other roles apply to it as declared,
// unless extra names them.
func localUser(app plait.App, extra []string) plait.User {
	u := plait.User{ID: "local"}
	seen := map[string]bool{}
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			u.Roles = append(u.Roles, r)
		}
	}
	for _, d := range app.Aggregates {
		for _, r := range d.Settings().Access.SeeAllRoles {
			add(r)
		}
	}
	for _, r := range extra {
		add(r)
	}
	return u
}
