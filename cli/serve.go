package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/internal/connlimit"
	"go.opentelemetry.io/otel/trace"
)

// serveFlags are serve's own flags, beside the store's.
type serveFlags struct {
	addr      string
	jwtSecret string
	jwksURL   string
	audience  string // the aud claim tokens must have, "" for any
	issuer    string // the iss claim tokens must have, "" for any
	// audienceSet and issuerSet: the flag was given, not only the
	// environment variable, which a machine may set for all its servers.
	audienceSet, issuerSet bool
	maxBody                int64
	logLevel               string
	drain                  time.Duration
	// shutdownDelay is how long a stopping server goes on serving, not
	// ready, before it refuses new requests.
	shutdownDelay time.Duration
	data          httpapi.DataLimits
	rate          httpapi.RateLimits
	rateSet       bool // --rate-ip or --rate-user was given
	streamsSet    bool // --max-streams-per-user was given
	requestsSet   bool // --max-requests-per-user was given
	pageBytes     int
	connsPerIP    int      // connections one client address may hold open, 0 for no limit
	connsSet      bool     // --max-conns-per-ip was given
	streams       int      // SSE streams per user
	requests      int      // requests in flight per user
	metricsToken  string   // the bearer token GET /metrics asks for, "" for none
	localRoles    []string // roles the single local user holds besides SeeAllRoles'
	// otlpEndpoint is the OTLP/HTTP collector spans go to ("" and no
	// OTEL_EXPORTER_OTLP_ENDPOINT: tracing off), and tracer the provider
	// built for it, nil when off.
	otlpEndpoint string
	tracer       trace.TracerProvider
}

// Rate limits of plait serve when a token is required; a single local user
// is not limited unless --rate-ip or --rate-user says so. They stop a
// runaway client or a flood, not a busy one: a script that imports orders
// as fast as the server takes them stays under them on a small machine.
const (
	defaultRateIP   = 1000 // requests per second per client address
	defaultRateUser = 500  // requests per second per user
)

// defaultConnsPerIP is how many connections one client address may hold
// open at once: enough for a whole office behind one address, each
// browser holding a stream and a few requests, and far from the file
// descriptors the process has.
const defaultConnsPerIP = 512

// registerLimits declares the flags of the limits.
func (f *serveFlags) registerLimits(fs *flag.FlagSet) {
	fs.IntVar(&f.data.MaxString, "max-string", httpapi.DefaultMaxString, "longest string in a command's data, in `bytes` (-1: no limit)")
	fs.IntVar(&f.data.MaxArray, "max-array", httpapi.DefaultMaxArray, "most `elements` of one array in a command's data (-1: no limit)")
	fs.IntVar(&f.data.MaxFields, "max-fields", httpapi.DefaultMaxFields, "most `members` of one object in a command's data (-1: no limit)")
	fs.IntVar(&f.data.MaxDepth, "max-depth", httpapi.DefaultMaxDepth, "deepest `nesting` of arrays and objects in a command's data (-1: no limit)")
	fs.IntVar(&f.data.MaxNumber, "max-number", httpapi.DefaultMaxNumber, "longest number in a command's data, in `characters` (-1: no limit)")
	fs.Float64Var(&f.rate.IP, "rate-ip", defaultRateIP, "`requests` per second one client address may send, answered 429 beyond (0: no limit; a single local user is not limited unless given)")
	fs.IntVar(&f.rate.IPBurst, "rate-ip-burst", 0, "requests one client address may send at once (default twice --rate-ip)")
	fs.Float64Var(&f.rate.User, "rate-user", defaultRateUser, "`requests` per second one user may send, answered 429 beyond (0: no limit)")
	fs.IntVar(&f.rate.UserBurst, "rate-user-burst", 0, "requests one user may send at once (default twice --rate-user)")
	fs.IntVar(&f.rate.TrustedProxies, "trusted-proxies", 0, "how many `proxies` in front append to X-Forwarded-For; 0 ignores the header (any client can forge it)")
	fs.IntVar(&f.requests, "max-requests-per-user", httpapi.DefaultMaxRequestsPerUser, "most `requests` one user may have in flight at once, SSE streams aside (a wait holds its request until answered), answered 429 beyond (-1: no limit; a single local user is not limited unless given)")
	fs.IntVar(&f.streams, "max-streams-per-user", httpapi.DefaultMaxStreamsPerUser, "most SSE `streams` one user may hold open at once, answered 429 beyond (-1: no limit; a single local user is not limited unless given)")
	fs.IntVar(&f.connsPerIP, "max-conns-per-ip", defaultConnsPerIP, "most `connections` one client address (an IPv6 /64) may hold open at once; past it, a new one is closed unanswered (0: no limit; a single local user, or with --trusted-proxies every connection a proxy's, is not limited unless given)")
	fs.IntVar(&f.pageBytes, "max-page-bytes", 4<<20, "most `bytes` of stored data one read of the embedded store loads (an SSE resume from far back pages the log in reads of at most this)")
}

// checkLimits refuses a limit the flags cannot mean: a limit of 0 where 0
// is not "no limit" (the limits of a command's data and of streams are at
// least 1, or -1 for none), and negative rates, bursts and counts.
func (f serveFlags) checkLimits() error {
	for _, l := range []struct {
		name string
		v    int
	}{
		{"max-string", f.data.MaxString}, {"max-array", f.data.MaxArray}, {"max-fields", f.data.MaxFields},
		{"max-depth", f.data.MaxDepth}, {"max-number", f.data.MaxNumber}, {"max-streams-per-user", f.streams},
		{"max-requests-per-user", f.requests},
	} {
		if l.v == 0 || l.v < -1 {
			return fmt.Errorf("--%s %d: want at least 1, or -1 for no limit", l.name, l.v)
		}
	}
	for _, l := range []struct {
		name string
		v    float64
	}{{"rate-ip", f.rate.IP}, {"rate-user", f.rate.User}} {
		if !(l.v >= 0) || math.IsInf(l.v, 0) {
			return fmt.Errorf("--%s %v: want requests per second, from 0 (0: no limit)", l.name, l.v)
		}
	}
	for _, l := range []struct {
		name, zero string
		v          int
	}{
		{"rate-ip-burst", "twice --rate-ip", f.rate.IPBurst}, {"rate-user-burst", "twice --rate-user", f.rate.UserBurst},
		{"trusted-proxies", "the header ignored", f.rate.TrustedProxies}, {"max-conns-per-ip", "no limit", f.connsPerIP},
	} {
		if l.v < 0 {
			return fmt.Errorf("--%s %d: want a number from 0 (0: %s)", l.name, l.v, l.zero)
		}
	}
	if f.pageBytes < 1 {
		return fmt.Errorf("--max-page-bytes %d: want at least 1 byte", f.pageBytes)
	}
	return nil
}

// checkAddr refuses an address to listen on that is not host:port with a
// port from 0 to 65535 (or a service's name).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want host:port, such as 127.0.0.1:8080", addr)
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
		return fmt.Errorf("--addr %q: port %d is out of range, want 0 to 65535", addr, n)
	}
	return nil
}

// limits sets the limits of the flags on opts; a server without auth serves
// one local user, whose requests and streams are not limited unless the
// flags ask.
func (f serveFlags) limits(opts httpapi.Options) httpapi.Options {
	opts.Data = f.data
	opts.MetricsToken = f.metricsToken
	if opts.Auth == nil {
		opts.LocalRoles = f.localRoles
	}
	if opts.Auth != nil || f.streamsSet {
		opts.MaxStreamsPerUser = f.streams
	}
	if opts.Auth != nil || f.requestsSet {
		opts.MaxRequestsPerUser = f.requests
	}
	if opts.Auth != nil || f.rateSet {
		opts.Rate = f.rate
	}
	return opts
}

func runServe(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flags(prog, "serve", "Serves the application over HTTP: the API, the SSE relay, the metrics, and the application's browser UI, if it has one.\nWithout --jwt-secret or --jwks-url it serves a single local user and binds a loopback address only.", stdout)
	var sf storeFlags
	sf.register(fs)
	var sc scaledFlags
	sc.register(fs)
	var f serveFlags
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on")
	// The secrets' defaults are read from the environment after parsing,
	// not given as the flags' defaults: --help prints those.
	fs.StringVar(&f.jwtSecret, "jwt-secret", "", "require Bearer JWTs signed with this HS256 `secret` (default $PLAIT_JWT_SECRET); "+noExp)
	fs.StringVar(&f.jwksURL, "jwks-url", "", "require Bearer JWTs signed by a key of the JWKS at this `URL` (RS256 or ES256), https unless its host is localhost, 127.0.0.0/8 or ::1; "+noExp)
	fs.StringVar(&f.audience, "jwt-audience", os.Getenv("PLAIT_JWT_AUDIENCE"), "require tokens whose aud claim names this `audience` (default $PLAIT_JWT_AUDIENCE; with --jwks-url of an identity provider that signs for other applications too, set it)")
	fs.StringVar(&f.issuer, "jwt-issuer", os.Getenv("PLAIT_JWT_ISSUER"), "require tokens whose iss claim is this `issuer` (default $PLAIT_JWT_ISSUER)")
	fs.StringVar(&f.metricsToken, "metrics-token", "", "answer GET /metrics only to requests bearing this `token` (Authorization: Bearer, as a Prometheus scrape sends it); default $PLAIT_METRICS_TOKEN, which keeps it out of the process list; without it the metrics are open")
	fs.Func("local-roles", "comma-separated `roles` the single local user holds besides every role that sees a type whole, for the application's rules of who may send what that ask for others (without --jwt-secret or --jwks-url only)", func(v string) error {
		f.localRoles = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				f.localRoles = append(f.localRoles, r)
			}
		}
		return nil
	})
	fs.Int64Var(&f.maxBody, "max-body", httpapi.DefaultMaxBody, "largest accepted POST /commands body, in `bytes`")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "on SIGTERM, how long to let requests in flight finish")
	fs.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long to go on serving with /readyz answering 503 before refusing new requests, so that a load balancer stops sending them first (e.g. 5s behind Kubernetes)")
	fs.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry spans (each command through the HTTP request, decide, commit, reactors and views) over OTLP/HTTP to the collector at this `URL`, e.g. http://localhost:4318 (spans go to its /v1/traces); off by default, or on when $"+envOTLPEndpoint+" or $"+envOTLPTracesEndpoint+" is set. An incoming traceparent header is honoured")
	f.registerLimits(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if !given(fs, "jwt-secret") {
		f.jwtSecret = os.Getenv("PLAIT_JWT_SECRET")
	}
	if !given(fs, "metrics-token") {
		f.metricsToken = os.Getenv("PLAIT_METRICS_TOKEN")
	}
	f.rateSet = given(fs, "rate-ip") || given(fs, "rate-user")
	f.audienceSet, f.issuerSet = given(fs, "jwt-audience"), given(fs, "jwt-issuer")
	f.streamsSet = given(fs, "max-streams-per-user")
	f.requestsSet = given(fs, "max-requests-per-user")
	f.connsSet = given(fs, "max-conns-per-ip")
	if err := checkAddr(f.addr); err != nil {
		return usageError{err}
	}
	if err := f.checkLimits(); err != nil {
		return usageError{err}
	}
	if f.jwksURL != "" {
		if err := httpapi.CheckJWKSURL(f.jwksURL); err != nil {
			return usageError{fmt.Errorf("--jwks-url %w", err)}
		}
	}
	if !sc.set() {
		if err := sf.check(); err != nil {
			return err
		}
	}
	if f.maxBody < 1 {
		return usageError{fmt.Errorf("--max-body %d: want at least 1 byte", f.maxBody)}
	}
	for name, d := range map[string]time.Duration{"drain": f.drain, "shutdown-delay": f.shutdownDelay} {
		if d < 0 {
			return usageError{fmt.Errorf("--%s %v: want a duration from 0", name, d)}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	tp, stopTracing, tracesTo, err := startTracing(ctx, f.otlpEndpoint, app.Name)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the spans still buffered, once the engine has stopped.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			log.Warn("export the last spans", "error", err)
		}
	}()
	if tp != nil {
		f.tracer = tp
		log.Info("tracing", "otlp", tracesTo)
	}

	auth, err := f.auth(ctx)
	if err != nil {
		return err
	}
	if n := len(f.jwtSecret); n > 0 && n < minSecret {
		log.Warn("the --jwt-secret is short: an HS256 secret should have at least as many bytes as the hash (RFC 7518, section 3.2), or tokens can be forged by guessing it",
			"bytes", n, "want", minSecret)
	}
	if auth != nil && len(f.localRoles) > 0 {
		return usageError{errors.New("--local-roles is for the single local user of a server without --jwt-secret or --jwks-url; with them, roles come from the token")}
	}
	if auth == nil && (f.audience != "" || f.issuer != "") {
		log.Warn("$PLAIT_JWT_AUDIENCE or $PLAIT_JWT_ISSUER is set, but no --jwt-secret or --jwks-url: ignored")
	}
	if f.jwksURL != "" && f.audience == "" {
		log.Warn("--jwks-url without --jwt-audience: a token its keys signed for another application is accepted too")
	}
	if auth == nil && !loopback(f.addr) {
		return usageError{fmt.Errorf("--addr %s is not a loopback address: without --jwt-secret or --jwks-url, serve binds 127.0.0.1 (or ::1) only", f.addr)}
	}

	// Take the address first: a server that cannot listen stops before it
	// opens, or creates, any storage.
	ln, err := net.Listen("tcp", f.addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen: %w (another server listens there: stop it, or give --addr another port)", err)
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	// As the rate limits: a single local user is not limited unless the
	// flag says so, nor are proxies (behind them, every connection is
	// one of theirs).
	if f.connsPerIP > 0 && (f.connsSet || auth != nil && f.rate.TrustedProxies == 0) {
		ln = connlimit.New(ln, f.connsPerIP)
	}

	if sc.set() {
		return runScaled(ctx, prog, sc, f, ln, auth, log, stdout)
	}

	lock, err := lockData(sf.data, app.Name)
	if _, locked := lockedBy(err); locked {
		return fmt.Errorf("%w: stop it first", err)
	}
	if err != nil {
		return err
	}
	defer lock.release()
	st, err := sf.open(ctx, app)
	if err != nil {
		return err
	}
	defer st.Close()
	if open := openToOthers(sf.data, sf.path(app)); len(open) > 0 {
		log.Warn("the store can be read by other users of this machine, and it holds personal data and the keys that seal it: make the directory 0700 and its files 0600 (plait makes them so when it creates them)",
			"paths", open)
	}
	st.SetMaxPageBytes(f.pageBytes)
	e, err := engine.New(app, st, engine.Options{Logger: log, TracerProvider: f.tracer})
	if err != nil {
		return err
	}
	return serve(ctx, e, httpapi.Options{Auth: auth, MaxBody: f.maxBody, Web: prog.web, Logger: log}, f, ln, lock, log, stdout,
		fmt.Sprintf("embedded store %s", relative(sf.path(app))))
}

// serve runs the engine and its HTTP server on ln, the caller's to close,
// until ctx ends, then shuts down gracefully: stop accepting, let requests
// in flight finish, close the SSE streams, and let the engine finish every
// command it acknowledged.
func serve(ctx context.Context, e *engine.Engine, opts httpapi.Options, f serveFlags, ln net.Listener, lock *dataLock, log *slog.Logger, stdout io.Writer, storage string) error {
	base := "http://" + ln.Addr().String()
	if lock != nil {
		if err := lock.advertise(base); err != nil {
			return fmt.Errorf("record the server's address: %w", err)
		}
	}
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	engineDone := make(chan error, 1)
	go func() { engineDone <- e.Run(engineCtx) }()
	// Serve only once the engine takes commands, so the first requests are
	// not answered 503.
	select {
	case <-e.Ready():
	case err := <-engineDone:
		return fmt.Errorf("engine: %w", err)
	case <-ctx.Done():
		stopEngine()
		return <-engineDone
	}

	opts.TracerProvider = f.tracer
	api := httpapi.New(e, f.limits(opts))
	// No ReadTimeout: it would cut the SSE streams; the API bounds the
	// reading of a command's body itself (httpapi.Options.BodyTimeout).
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	who := "a single local user (no --jwt-secret or --jwks-url): loopback only"
	if opts.Auth != nil {
		who = "users with a valid Bearer token"
	}
	fmt.Fprintf(stdout, "plait: serving %s on %s for %s; %s\n", e.App().Name, base, who, storage)
	log.Info("serving", "app", e.App().Name, "addr", base, "auth", opts.Auth != nil, "storage", storage)

	select {
	case <-ctx.Done():
	case err := <-served:
		stopEngine()
		<-engineDone
		return fmt.Errorf("serve: %w", err)
	case err := <-engineDone:
		srv.Close()
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("engine: %w", err)
	}
	if f.shutdownDelay > 0 {
		api.ShuttingDown()
		log.Info("shutting down: not ready, still serving", "for", f.shutdownDelay.String())
		select {
		case <-time.After(f.shutdownDelay):
		case err := <-engineDone:
			srv.Close()
			return fmt.Errorf("engine: %w", cmp.Or(err, errors.New("stopped")))
		}
	}
	log.Info("shutting down: no new requests; finishing those in flight")
	api.CloseStreams()
	// Held waits answer 202 pending a little before the drain ends, so
	// that none is cut off without an answer; their commands are durable.
	api.EndWaits(time.Now().Add(f.drain - min(f.drain/5, time.Second)))
	drainCtx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("requests still running at the end of the drain were cut", "error", err)
		srv.Close()
	}
	stopEngine()
	if err := <-engineDone; err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	log.Info("stopped")
	return nil
}

// noExp, in the help of the flags that require tokens, says what a token
// without exp is.
const noExp = "a token without an exp claim is accepted, and holds until its key changes"

// minSecret is the shortest HS256 secret serve takes without a warning:
// as many bytes as the hash's output.
const minSecret = 32

// auth builds the authenticator the flags ask for, nil for none.
func (f serveFlags) auth(ctx context.Context) (*httpapi.Auth, error) {
	switch {
	case f.jwtSecret != "" && f.jwksURL != "":
		return nil, usageError{errors.New("--jwt-secret and --jwks-url exclude each other")}
	case f.jwtSecret != "":
		return httpapi.NewHS256Auth([]byte(f.jwtSecret)).Expecting(f.audience, f.issuer), nil
	case f.jwksURL != "":
		a, err := httpapi.NewJWKSAuth(ctx, f.jwksURL)
		if err != nil {
			return nil, fmt.Errorf("--jwks-url: %w", err)
		}
		return a.Expecting(f.audience, f.issuer), nil
	case f.audienceSet || f.issuerSet:
		return nil, usageError{errors.New("--jwt-audience and --jwt-issuer need --jwt-secret or --jwks-url")}
	}
	return nil, nil
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// relative writes a relative path as one starting with ./, as a user types
// it, so that the path reads as a path.
func relative(path string) string {
	if filepath.IsAbs(path) || strings.HasPrefix(path, ".") {
		return path
	}
	return "." + string(filepath.Separator) + path
}
