package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/outage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Server. The zero value serves a single local user.
type Options struct {
	// Auth authenticates requests. Nil serves the single local user
	// "local", who holds every role the application's types name in
	// SeeAllRoles, and LocalRoles: bind such a server to 127.0.0.1 only.
	Auth *Auth
	// LocalRoles are roles the single local user holds besides those of
	// SeeAllRoles, for rules of Access.Send that ask for others. Ignored
	// with Auth.
	LocalRoles []string
	// MaxBody caps the body of POST /commands (default 1 MiB); a larger
	// one is answered 413.
	MaxBody int64
	// Data bounds the strings, arrays, objects, nesting and numbers in a
	// command's data (the zero value takes the defaults); a command over a
	// limit is answered 413.
	Data DataLimits
	// Rate limits requests per client address and per user (the zero
	// value limits nothing); a request over its limit is answered 429 with
	// Retry-After.
	Rate RateLimits
	// Web, when set, holds the files served at GET / (index.html),
	// GET /plait.js and every other path the API does not use. They are
	// sent with a Content-Security-Policy that lets a page load files and
	// reach the API of its own origin only: no inline script or style, no
	// eval, no framing by another site (see webPolicy).
	Web fs.FS
	// Logger receives the server's logs (default slog.Default()); the
	// access log is at debug level.
	Logger *slog.Logger
	// Collectors are more series for GET /metrics, such as those of a
	// scaled-out deployment's publisher.
	Collectors []prometheus.Collector
	// MetricsToken, when set, is the bearer token GET /metrics asks for
	// (the credentials of a Prometheus scrape's authorization); a request
	// without it is answered 401. Unset, the metrics are anyone's who
	// reaches the server: counts of commands and requests, by type.
	MetricsToken string
	// Ready is an extra readiness check for GET /readyz. Its error goes
	// to the server's log; the answer says only that a service the
	// server depends on does not answer.
	Ready func(ctx context.Context) error
	// CatchUpGrace is how long the oldest feed item a subscription has
	// yet to handle may wait before GET /readyz says the server is not
	// ready (default DefaultCatchUpGrace). A burst that puts a reactor
	// behind for a moment does not take the server out of a balancer; a
	// reactor that is hours behind, after a restart, does.
	CatchUpGrace time.Duration
	// Heartbeat is how long an SSE stream stays silent before it sends a
	// comment to keep proxies from closing it (default 15s).
	Heartbeat time.Duration
	// BodyTimeout bounds how long reading a command's body may take
	// (default DefaultBodyTimeout): a client that trickles it holds a
	// connection no longer. (A server-wide read timeout would also cut
	// the SSE streams.)
	BodyTimeout time.Duration
	// MaxStreamsPerUser caps the SSE streams one user may hold open at
	// once (negative: no cap); one more is answered 429 with Retry-After.
	// Zero is DefaultMaxStreamsPerUser with Auth, and no cap without: the
	// one local user is then every client, each tab of each browser.
	MaxStreamsPerUser int
	// MaxRequestsPerUser caps the requests one user may have in flight at
	// once, streams aside (negative: no cap); one more is answered 429
	// with Retry-After. Zero is DefaultMaxRequestsPerUser with Auth, and
	// no cap without, as for MaxStreamsPerUser.
	MaxRequestsPerUser int
	// TracerProvider, when set, records an OpenTelemetry server span for
	// each POST /commands, honouring an incoming W3C traceparent header;
	// give the engine the same provider so that the command's own spans
	// join it. Nil records nothing.
	TracerProvider trace.TracerProvider
}

// The defaults and bounds of the options and query parameters.
const (
	DefaultMaxBody      = 1 << 20
	DefaultHeartbeat    = 15 * time.Second
	DefaultCatchUpGrace = 5 * time.Second
	DefaultBodyTimeout  = 30 * time.Second
	DefaultWait         = 10 * time.Second // how long ?wait= holds without timeout=
	MaxWait             = 60 * time.Second // the longest timeout= honoured
	// streamWriteTimeout is how long one write to an SSE client may block
	// before the client is cut loose; the same bounds each write of a
	// large answer (see recorder.Write).
	streamWriteTimeout = 20 * time.Second
	// smallAnswer is how many bytes of an answer are written without a
	// deadline: the socket's buffers take them at once, whether the
	// client reads or not.
	smallAnswer = 64 << 10
)

// ownDeadlines are the routes that bound their writes themselves: the
// stream, and a rebuild's progress.
var ownDeadlines = map[string]bool{"GET /stream": true, "POST /views/{name}/rebuild": true}

// Server serves an engine over HTTP; it is an http.Handler. Make it with New.
type Server struct {
	e       *engine.Engine
	opts    Options
	log     *slog.Logger
	local   plait.User
	mux     *http.ServeMux
	metrics *metrics
	// failures paces the log lines of requests that failed on the
	// server's side.
	failures outage.Pace
	// keySetFailures paces those of tokens that could not be verified
	// while the key set could not be fetched.
	keySetFailures outage.Pace
	tracer         trace.Tracer // nil when tracing is off
	// origins refuses state-changing requests from pages of other origins;
	// see checkOrigin.
	origins *http.CrossOriginProtection
	// shuttingDown makes GET /readyz answer 503; see ShuttingDown.
	shuttingDown atomic.Bool
	// waitsCut is done once every held wait must answer; see EndWaits.
	waitsCut context.Context
	cutWaits context.CancelFunc

	// streamWriteTimeout bounds one write to an SSE client.
	streamWriteTimeout time.Duration

	// byAddr and byUser are the rate limits' buckets, nil when off.
	byAddr, byUser *buckets
	// inFlight counts each user's requests being served, nil when not
	// capped (see Options.MaxRequestsPerUser).
	inFlight *userCounts

	defs     map[string]plait.Definition
	commands map[string]map[string]bool // type → command names

	streamsMu     sync.Mutex
	streamsClosed bool
	streamsCtx    context.Context
	closeStreams  context.CancelFunc
	sse           sseState // the relay hub and the streams per user
}

// New makes a server for the engine. The engine may be started before or
// after; until it runs, the server answers 503 where it needs it.
func New(e *engine.Engine, opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.CatchUpGrace <= 0 {
		opts.CatchUpGrace = DefaultCatchUpGrace
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Data.defaults()
	waitsCut, cutWaits := context.WithCancel(context.Background())
	s := &Server{
		waitsCut: waitsCut,
		cutWaits: cutWaits,

		e:     e,
		opts:  opts,
		log:   opts.Logger,
		local: localUser(e.App(), opts.LocalRoles),
		mux:   http.NewServeMux(),

		origins: http.NewCrossOriginProtection(),

		streamWriteTimeout: streamWriteTimeout,
		defs:               map[string]plait.Definition{},
		commands:           map[string]map[string]bool{},
		byAddr:             newBuckets("address", opts.Rate.IP, opts.Rate.IPBurst, opts.Rate.MaxTracked),
		inFlight:           newUserCounts(opts.MaxRequestsPerUser, DefaultMaxRequestsPerUser, opts.Auth != nil),
	}
	s.sse.perUser = newUserCounts(opts.MaxStreamsPerUser, DefaultMaxStreamsPerUser, opts.Auth != nil)
	if opts.Auth != nil {
		s.byUser = newBuckets("user", opts.Rate.User, opts.Rate.UserBurst, opts.Rate.MaxTracked)
	}
	for _, d := range e.App().Aggregates {
		s.defs[d.Type()] = d
		names := map[string]bool{}
		for _, n := range d.Commands() {
			names[n] = true
		}
		s.commands[d.Type()] = names
	}
	s.streamsCtx, s.closeStreams = context.WithCancel(context.Background())
	s.metrics = newMetrics(e, s.running)
	s.metrics.reg.MustRegister(opts.Collectors...)
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(TracerName)
	}

	// The answers that carry users' data are stored by no cache, unless
	// their handler says otherwise: GET /aggregates revalidates with its
	// ETag, GET /stream sets its own.
	s.mux.HandleFunc("POST /commands", noStore(s.traceCommands(s.postCommand)))
	s.mux.HandleFunc("GET /commands/{id}", noStore(s.getCommand))
	s.mux.HandleFunc("GET /aggregates/{type}/{id}", noStore(s.getAggregate))
	s.mux.HandleFunc("GET /aggregates/{type}/{id}/events", noStore(s.getEvents))
	s.mux.HandleFunc("GET /lists/{type}", noStore(s.getList))
	s.mux.HandleFunc("GET /stream", s.getStream)
	s.mux.HandleFunc("POST /views/{name}/rebuild", s.rebuildView)
	s.mux.HandleFunc("POST /subjects/{subject}/forget", noStore(s.forgetSubject))
	s.registerSchemas()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metricsAuth(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	return s
}

// noStore gives h's answers Cache-Control: no-store, which h may replace:
// one user's data must not stay in a shared cache for the next, nor in
// the browser's once the user has gone.
func noStore(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// ServeHTTP routes the request, answers 404 and 405 as problems, counts it
// and logs it at debug level.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rec.Header().Set("X-Content-Type-Options", "nosniff")
	h, route := s.mux.Handler(r)
	if !ownDeadlines[route] {
		// No server-wide WriteTimeout (it would cut the streams): a
		// client that stops reading a large answer (a list page, a
		// history: megabytes) would otherwise hold it, and its handler,
		// for as long as it keeps the connection open.
		rec.writeTimeout = s.streamWriteTimeout
	}
	defer rec.release()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	r, releaseSlot := s.withRequestSlot(r)
	defer releaseSlot()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			if !rec.wrote {
				writeProblem(rec, newProblem(http.StatusInternalServerError, slugInternal, "the server failed"))
			}
		}
		code := rec.code()
		s.metrics.request(route, code)
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("status", code), slog.Int64("bytes", rec.bytes), slog.String("duration", time.Since(start).String()))
	}()
	if p := s.limitAddr(r, route); p != nil {
		writeProblem(rec, p)
		return
	}
	if p := s.checkOrigin(r); p != nil {
		writeProblem(rec, p)
		return
	}
	if p := checkParams(r, route); p != nil {
		writeProblem(rec, p)
		return
	}
	if route != "" {
		s.mux.ServeHTTP(rec, r)
		return
	}
	// No pattern matched: find out from the mux whether the path is known
	// with another method, then answer as a problem, or serve a web file.
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		route = "method-not-allowed"
		rec.Header().Set("Allow", probe.header.Get("Allow"))
		writeProblem(rec, newProblem(http.StatusMethodNotAllowed, slugMethodNotAllowed,
			r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+probe.header.Get("Allow")))
		return
	}
	if s.serveWeb(rec, r) {
		route = "web"
		return
	}
	route = "not-found"
	writeProblem(rec, newProblem(http.StatusNotFound, slugNotFound, "no resource at "+r.URL.Path))
}

// ShuttingDown marks the server as about to stop: from now on GET /readyz
// answers 503, so that load balancers stop sending it requests, while
// every request is still served as before.
func (s *Server) ShuttingDown() { s.shuttingDown.Store(true) }

// EndWaits makes every ?wait= held now or later answer by the time by,
// 202 pending if its outcome is not known then, as when its timeout runs
// out. A graceful shutdown calls it with a time before the end of its
// drain, so that no held request is cut off without an answer.
func (s *Server) EndWaits(by time.Time) {
	time.AfterFunc(time.Until(by), s.cutWaits)
}

// CloseStreams ends every SSE stream and refuses new ones, for a graceful
// shutdown: http.Server.Shutdown waits for handlers, and streams never end
// by themselves.
func (s *Server) CloseStreams() {
	s.streamsMu.Lock()
	s.streamsClosed = true
	s.streamsMu.Unlock()
	s.closeStreams()
	s.hub().Close()
}

// running reports whether the engine accepts submissions.
func (s *Server) running() bool {
	select {
	case <-s.e.Ready():
	default:
		return false
	}
	select {
	case <-s.e.Done():
		return false
	default:
		return true
	}
}

// webPolicy is the Content-Security-Policy of the files of Options.Web. The
// user interface may load scripts, styles, images and fonts of its own
// origin and talk to the API there (fetch, EventSource), and nothing else:
//
//   - default-src 'self': no inline script or style (a <script> or <style>
//     element, a style= or onclick= attribute), no eval, nothing from
//     another origin;
//   - object-src 'none': no plugins;
//   - base-uri 'none': no <base> that would send relative URLs, plait.js
//     and the API's among them, elsewhere;
//   - form-action 'self': no form posts the user's input to another site;
//   - frame-ancestors 'none', and X-Frame-Options: DENY for the browsers
//     that know only it: no page of another site frames the UI to have
//     the user click its buttons (clickjacking), which a server without
//     authentication, whose every request is the local user's, would
//     obey.
const webPolicy = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// serveWeb serves a file of opts.Web for GET and HEAD, and reports whether
// there was one. Directories are not listed. Every file is sent with
// webPolicy: a script or style cares not, but an HTML or SVG file opened
// by itself is a document.
func (s *Server) serveWeb(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Web == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	// Only a path in canonical form names a file: /plait.js/, //plait.js
	// or /a/../plait.js are not served.
	if r.URL.Path != path.Clean("/"+r.URL.Path) {
		return false
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) {
		return false
	}
	f, err := s.opts.Web.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		return false
	}
	content, ok := f.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(f)
		if err != nil {
			s.log.Error("read web file", "name", name, "error", err)
			return false
		}
		content = bytes.NewReader(b)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", webPolicy)
	h.Set("X-Frame-Options", "DENY")
	http.ServeContent(w, r, name, st.ModTime(), content)
	return true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the engine runs, its storage answers, every
// subscription is caught up (or handling items that have waited less than
// opts.CatchUpGrace: a reactor stuck on its next item for longer is not,
// however few positions behind) and opts.Ready
// agrees.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	notReady := func(detail string) {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, slugUnavailable, detail))
	}
	// A probe that finds a dependency down is not a request that failed:
	// its error is logged as a warning, and the answer is plain.
	down := func(detail, doing string, err error) {
		s.log.WarnContext(r.Context(), "not ready: "+doing, "route", r.Pattern, "error", err)
		notReady(detail)
	}
	if s.shuttingDown.Load() {
		notReady("the server is shutting down")
		return
	}
	if !s.running() {
		notReady("the engine is not running")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, _, err := s.e.Outcome(ctx, "readyz-probe"); err != nil {
		down(detailStoreDown, "read the store", err)
		return
	}
	st := s.e.Stats()
	for _, sub := range st.Subscriptions {
		lag := st.Head - sub.Position
		if lag <= 0 {
			continue
		}
		next, err := s.e.ReadFeed(ctx, sub.Position, 1)
		if err != nil {
			down(detailStoreDown, "read the feed", err)
			return
		}
		if len(next) == 1 {
			if waited := time.Since(itemTime(next[0])); waited > s.opts.CatchUpGrace {
				notReady(fmt.Sprintf("%s is catching up: %d positions behind, the next waiting for %s", sub.Name, lag, waited.Round(time.Second)))
				return
			}
		}
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(ctx); err != nil {
			down(detailNotReady, "the readiness check failed", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// recorder notes the status and size of an answer. It unwraps, so that
// http.ResponseController reaches the connection for flushes and deadlines.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	// writeTimeout, when set, bounds each write of the answer past its
	// first smallAnswer bytes; see Write.
	writeTimeout time.Duration
	deadline     bool // a write deadline was set; see release
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write writes b. Past the answer's first smallAnswer bytes, with a
// writeTimeout, it writes b a piece at a time, each within the timeout:
// a client that reads, however slowly, gets the whole answer, and one that
// stopped reading is cut loose, its answer no longer held in memory.
func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	if r.writeTimeout <= 0 || r.bytes+int64(len(b)) <= smallAnswer {
		n, err := r.ResponseWriter.Write(b)
		r.bytes += int64(n)
		return n, err
	}
	rc := http.NewResponseController(r.ResponseWriter)
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), smallAnswer)]
		if err := rc.SetWriteDeadline(time.Now().Add(r.writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return written, err
		}
		r.deadline = true
		n, err := r.ResponseWriter.Write(piece)
		written += n
		r.bytes += int64(n)
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// release, once the handler is done, pushes what is buffered of an answer
// written under a deadline within a deadline of its own: the last write's
// may have all but run out (a slow reader), or run out while the handler
// went on. The deadline stays for what net/http writes after the handler
// (the end of a chunked answer), which clears it before the connection's
// next request.
func (r *recorder) release() {
	if !r.deadline {
		return
	}
	rc := http.NewResponseController(r.ResponseWriter)
	rc.SetWriteDeadline(time.Now().Add(r.writeTimeout))
	rc.Flush()
}

func (r *recorder) code() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.status
}

// Unwrap returns the underlying ResponseWriter.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// probeWriter captures what the mux answers to an unmatched request.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// itemTime is when a feed item's command was taken.
func itemTime(it engine.Item) time.Time {
	switch {
	case it.Event != nil:
		return it.Event.At
	case it.Outcome != nil:
		return it.Outcome.Command.At
	}
	return time.Time{}
}
