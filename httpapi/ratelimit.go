package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/clientaddr"
	"golang.org/x/time/rate"
)

// RateLimits bound how fast one client address and one user may send
// requests, each with a token bucket (golang.org/x/time/rate) that holds
// Burst requests and refills at the given rate. A request over either
// limit is answered 429 with Retry-After, and does nothing else. GET
// /healthz, /readyz and /metrics are not limited. The zero value limits
// nothing.
type RateLimits struct {
	// IP is the requests per second one client address may send; 0 does
	// not limit. IPv6 addresses are counted by their /64 prefix, which one
	// host commonly holds whole.
	IP float64
	// IPBurst is how many requests an address may send at once (default
	// twice IP, at least 1).
	IPBurst int
	// User is the requests per second one authenticated user may send; 0
	// does not limit. It is checked once the token is verified, and not at
	// all without Auth (the single local user).
	User float64
	// UserBurst is how many requests a user may send at once (default
	// twice User, at least 1).
	UserBurst int
	// TrustedProxies is how many proxies in front of the server each
	// append the address they received from to X-Forwarded-For: the
	// client's address is then the TrustedProxies-th from the right. 0
	// (the default) ignores the header, which any client can forge, and
	// counts the connection's address.
	TrustedProxies int
	// MaxTracked caps the addresses, and the users, each limiter keeps a
	// bucket for (default 10,000). Past it the least recently seen is
	// forgotten, and starts again with a full bucket when it comes back.
	MaxTracked int
}

// DefaultMaxTracked is the default of RateLimits.MaxTracked.
const DefaultMaxTracked = 10_000

// CodeRateLimited is the code of the field error of a 429 problem.
const CodeRateLimited = "rate_limited"

// buckets is a bounded set of token buckets by key, least recently used
// evicted first.
type buckets struct {
	limit rate.Limit
	burst int
	what  string // "address" or "user", for the problem's detail

	mu  sync.Mutex
	lru *simplelru.LRU[string, *rate.Limiter]
}

// newBuckets returns nil when perSecond does not limit.
func newBuckets(what string, perSecond float64, burst, tracked int) *buckets {
	if perSecond <= 0 || math.IsNaN(perSecond) {
		return nil
	}
	if burst <= 0 {
		burst = max(int(math.Min(2*perSecond, math.MaxInt32)), 1)
	}
	if tracked <= 0 {
		tracked = DefaultMaxTracked
	}
	lru, err := simplelru.NewLRU[string, *rate.Limiter](tracked, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &buckets{limit: rate.Limit(perSecond), burst: burst, what: what, lru: lru}
}

// take takes a token of key's bucket at now. When there is none it takes
// nothing and says how long until there is one.
func (b *buckets) take(key string, now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lim, found := b.lru.Get(key)
	if !found {
		lim = rate.NewLimiter(b.limit, b.burst)
		b.lru.Add(key, lim) // evicts the least recently used past the cap
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// limit answers the key's request with a 429 problem if its bucket is
// empty; nil lets it through.
func (b *buckets) check(key string) *Problem {
	if b == nil {
		return nil
	}
	wait, ok := b.take(key, time.Now())
	if ok {
		return nil
	}
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	msg := fmt.Sprintf("more than %g requests per second (bursts of %d) from this %s", float64(b.limit), b.burst, b.what)
	p := newProblem(http.StatusTooManyRequests, slugTooManyRequests,
		fmt.Sprintf("%s; retry in %d s", msg, secs),
		plait.FieldError{Path: "", Code: CodeRateLimited, Message: msg})
	p.retryAfter = secs
	return p
}

// unlimitedRoutes are not rate limited: probes and scrapes must get through.
var unlimitedRoutes = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// limitAddr applies the per-address limit to a request.
func (s *Server) limitAddr(r *http.Request, route string) *Problem {
	if s.byAddr == nil || unlimitedRoutes[route] {
		return nil
	}
	return s.byAddr.check(clientAddr(r, s.opts.Rate.TrustedProxies))
}

// limitUser applies the per-user limit to an authenticated user.
func (s *Server) limitUser(id string) *Problem {
	return s.byUser.check(id)
}

// clientAddr is the key of the request's client: its address, or with
// trusted proxies the one they report, an IPv6 address cut to its /64.
func clientAddr(r *http.Request, trustedProxies int) string {
	if trustedProxies > 0 {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
		if len(hops) >= trustedProxies {
			if a, err := netip.ParseAddr(hops[len(hops)-trustedProxies]); err == nil {
				return clientaddr.Key(a)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return clientaddr.Key(a)
}
