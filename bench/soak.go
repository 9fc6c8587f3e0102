package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
)

// SoakOptions tune a soak. The zero value soaks for ten minutes.
type SoakOptions struct {
	// Dir is where the temporary SQLite file goes (default os.TempDir()).
	Dir string
	// Duration is how long the load runs (default 10m), after the
	// maximum command rate was measured.
	Duration time.Duration
	// Interval is how often memory, goroutines and latency are sampled
	// (default Duration/60, between 1s and 10s).
	Interval time.Duration
	// Rate is how many commands per second are sent (default half the
	// maximum, measured first for MaxFor).
	Rate float64
	// MaxFor is how long commands are sent as fast as they are answered
	// to measure the maximum rate, which counts until their reactions are
	// done as well (default Duration/30, between 2s and 20s).
	MaxFor time.Duration
	// Streams is how many SSE clients follow the relay besides the
	// auditor, each reconnecting every few seconds (default 16).
	Streams int
	// Progress, when set, receives a line per sample.
	Progress io.Writer

	// tailSize and cacheSize, when set, shrink the engine's in-memory
	// tail and instance caches, so that a short soak reaches the steady
	// state a long one reaches after a minute.
	tailSize, cacheSize int
}

func (o *SoakOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = min(max(o.Duration/60, time.Second), 10*time.Second)
	}
	if o.MaxFor <= 0 {
		o.MaxFor = min(max(o.Duration/30, 2*time.Second), 20*time.Second)
	}
	if o.Streams <= 0 {
		o.Streams = 16
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// SoakSample is one interval of a soak.
type SoakSample struct {
	// At is the end of the interval, since the load began.
	At time.Duration
	// RSS is the process's resident memory; LiveHeap the Go heap live
	// after the last collection; Goroutines and FDs what the process
	// holds. The process serves and loads both.
	RSS, LiveHeap  int64
	Goroutines     int
	FDs            int
	Commands       int // acknowledged in the interval
	Queries        int
	Frames         int64 // frames the stream clients read
	Reconnects     int
	Errors         int // requests that failed or were answered unexpectedly
	AckP50, AckP99 time.Duration
	// OutcomeP50 and OutcomeP99 run from sending a command to its outcome
	// frame on the auditor's stream.
	OutcomeP50, OutcomeP99 time.Duration
	QueryP50, QueryP99     time.Duration
}

// SoakReport is what a soak measured.
type SoakReport struct {
	Duration, Interval time.Duration
	// MaxRate is the command rate measured first (0 if Rate was given);
	// Rate the rate of the soak.
	MaxRate, Rate float64
	Streams       int
	CPUs          int
	Samples       []SoakSample
	// Acked is how many commands were acknowledged over the whole run,
	// the maximum's measure included; Accepted and Rejected how many of
	// them have that outcome at the end; Missing how many have none
	// (MissingIDs lists a few).
	Acked, Accepted, Rejected, Missing int
	MissingIDs                         []string
	// AuditorMissing and AuditorRepeats count the soak's acknowledged
	// commands whose outcome frame the auditor's stream, resumed with
	// Last-Event-ID every few seconds, never received, or received more
	// than once. StreamRepeats counts frames a stream client received
	// twice or out of order over its reconnections.
	AuditorMissing, AuditorRepeats, StreamRepeats int
	Errors, Reconnects                            int
}

// Lost reports whether anything acknowledged lacks its outcome, or a stream
// missed or repeated one.
func (r *SoakReport) Lost() bool {
	return r.Missing > 0 || r.AuditorMissing > 0 || r.AuditorRepeats > 0 || r.StreamRepeats > 0
}

// soak is one run.
type soak struct {
	opts   SoakOptions
	e      *engine.Engine
	base   string
	client *http.Client
	tokens []string // of users u0, u1, …
	prefix string   // of the soak's command ids
	start  time.Time

	customers, orders atomic.Int64 // how many were sent
	rngs              sync.Pool

	// The soak's commands, numbered from 1: when each was due (ns since
	// start), whether it was acknowledged, how often the auditor saw its
	// outcome. Sized before the load so that they do not grow during it.
	due    []atomic.Int64
	acked  []atomic.Bool
	seen   []atomic.Int32
	extra  []string // ids acknowledged while the maximum was measured
	extraM sync.Mutex

	ackLat, outcomeLat, queryLat latencies
	commands, queries, errs      atomic.Int64
	frames                       atomic.Int64
	lastSent                     atomic.Int64 // the last command handed to the posters
	reconnects, streamRepeats    atomic.Int64
	firstErr                     atomic.Value
}

// latencies collects the durations of one interval.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// take returns p50 and p99 of what was added since, and forgets it.
func (l *latencies) take() (p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0
	}
	slices.Sort(l.d)
	p50, p99 = l.d[len(l.d)*50/100], l.d[min(len(l.d)-1, len(l.d)*99/100)]
	l.d = l.d[:0]
	return p50, p99
}

// Soak runs the embedded orderdesk application behind its HTTP API under a
// steady mix of commands, queries and SSE streams for opts.Duration, at
// half the maximum command rate measured first, sampling memory,
// goroutines and latency every interval, and checks at the end that every
// acknowledged command has exactly one outcome, seen once on the relay.
func Soak(ctx context.Context, opts SoakOptions) (*SoakReport, error) {
	opts.defaults()
	dir, err := os.MkdirTemp(opts.Dir, "plait-soak-*")
	if err != nil {
		return nil, fmt.Errorf("bench: make a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "soak.db"), sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("bench: open the store: %w", err)
	}
	defer st.Close()
	app := orderdesk.App()
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil { // as plait serve does
		return nil, fmt.Errorf("bench: index the store: %w", err)
	}
	e, err := engine.New(app, st, engine.Options{
		Logger: slog.New(slog.DiscardHandler), TailSize: opts.tailSize, CacheSize: opts.cacheSize,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: make the engine: %w", err)
	}
	runCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- e.Run(runCtx) }()
	defer func() { stopEngine(); <-engineDone }()
	select {
	case <-e.Ready():
	case err := <-engineDone:
		return nil, fmt.Errorf("bench: run the engine: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	secret := []byte(hex.EncodeToString(key))
	api := httpapi.New(e, httpapi.Options{Auth: httpapi.NewHS256Auth(secret), Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		api.CloseStreams()
		srv.Close()
	}()

	s := &soak{
		opts: opts, e: e, base: "http://" + ln.Addr().String(), start: time.Now(),
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: time.Minute,
		}},
		prefix: "soak-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
	}
	defer s.client.CloseIdleConnections()
	var seed atomic.Uint64
	s.rngs.New = func() any { return mrand.New(mrand.NewPCG(seed.Add(1), 7)) }
	// The users are the clerks of one desk, each working on every customer
	// and order: they hold the role that sees every instance.
	exp := time.Now().Add(24 * time.Hour).Unix()
	for i := range 50 {
		claims := jwt.MapClaims{"sub": "u" + strconv.Itoa(i), "exp": exp, "roles": []string{orderdesk.AdminRole}}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			return nil, fmt.Errorf("bench: sign a token: %w", err)
		}
		s.tokens = append(s.tokens, tok)
	}
	rep := &SoakReport{Duration: opts.Duration, Interval: opts.Interval, Rate: opts.Rate, Streams: opts.Streams, CPUs: runtime.NumCPU()}

	// Some customers first, so that orders have someone to belong to.
	fmt.Fprintln(opts.Progress, "soak: creating customers…")
	if err := s.seed(ctx, 200); err != nil {
		return nil, err
	}
	if rep.Rate <= 0 {
		fmt.Fprintf(opts.Progress, "soak: measuring the maximum command rate for %s…\n", opts.MaxFor)
		max, err := s.maxRate(ctx, opts.MaxFor)
		if err != nil {
			return nil, err
		}
		rep.MaxRate, rep.Rate = max, max/2
	}

	n := int(math.Ceil(rep.Rate*opts.Duration.Seconds())) + 1
	s.due, s.acked, s.seen = make([]atomic.Int64, n+1), make([]atomic.Bool, n+1), make([]atomic.Int32, n+1)
	fmt.Fprintf(opts.Progress, "soak: %g commands/s for %s, %d streams…\n", math.Round(rep.Rate), opts.Duration, opts.Streams)
	if err := s.run(ctx, rep, n); err != nil {
		return nil, err
	}
	return rep, nil
}

// tok returns the token of a user picked by i.
func (s *soak) tok(i int) string { return s.tokens[i%len(s.tokens)] }

func (s *soak) now() int64 { return int64(time.Since(s.start)) }

// seed creates n customers and waits for their outcomes.
func (s *soak) seed(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				c := int64(i + 1)
				body := fmt.Sprintf(`{"type":"customer","aggregateId":"c%d","name":"create","data":{"name":"Customer %d","email":"c%d@example.com"}}`, c, c, c)
				if _, err := s.post(ctx, "?wait=outcome", body, s.tok(i), http.StatusOK); err != nil {
					errs <- fmt.Errorf("bench: seed: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	s.customers.Store(int64(n))
	return <-errs
}

// command returns the body of a command of the mix, with id when not "".
// One in ten is meant to be rejected (a customer created twice); ships and
// cancels of orders already shipped or cancelled are rejected too.
func (s *soak) command(rng *mrand.Rand, id string) (body string, user int) {
	customers, orders := max(s.customers.Load(), 1), max(s.orders.Load(), 1)
	someCustomer := 1 + rng.Int64N(customers)
	someOrder := 1 + rng.Int64N(orders)
	idField := ""
	if id != "" {
		idField = `"id":"` + id + `",`
	}
	user = rng.IntN(len(s.tokens))
	switch r := rng.IntN(100); {
	case r < 10:
		c := s.customers.Add(1)
		return fmt.Sprintf(`{%s"type":"customer","aggregateId":"c%d","name":"create","data":{"name":"Customer %d","email":"c%d@example.com"}}`, idField, c, c, c), user
	case r < 20:
		return fmt.Sprintf(`{%s"type":"customer","aggregateId":"c%d","name":"create","data":{"name":"Again %d","email":"again@example.com"}}`, idField, someCustomer, someCustomer), user
	case r < 25:
		return fmt.Sprintf(`{%s"type":"customer","aggregateId":"c%d","name":"rename","data":{"name":"Renamed %d"}}`, idField, someCustomer, rng.IntN(1000)), user
	case r < 70:
		o := s.orders.Add(1)
		return fmt.Sprintf(`{%s"type":"order","aggregateId":"o%d","name":"place","data":{"customerId":"c%d","lines":[{"sku":"sku-%d","qty":%d,"price":%d.5},{"sku":"sku-%d","qty":1,"price":3}]}}`,
			idField, o, someCustomer, rng.IntN(500), 1+rng.IntN(5), rng.IntN(100), rng.IntN(500)), user
	case r < 88:
		return fmt.Sprintf(`{%s"type":"order","aggregateId":"o%d","name":"ship","data":{}}`, idField, someOrder), user
	default:
		return fmt.Sprintf(`{%s"type":"order","aggregateId":"o%d","name":"cancel","data":{"reason":"soak"}}`, idField, someOrder), user
	}
}

// post sends a command and fails unless it is answered want; it returns
// how long that took.
func (s *soak) post(ctx context.Context, query, body, tok string, want int) (time.Duration, error) {
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/commands"+query, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != want {
		return 0, fmt.Errorf("POST /commands%s: %s, want %d: %s", query, resp.Status, want, bytes.TrimSpace(msg))
	}
	return time.Since(t0), nil
}

// maxRate posts the mix from 64 clients as fast as they are answered for
// d, waits until every reaction of those commands is done too, and returns
// the acknowledged commands per second over the whole time: the rate the
// engine sustains with its reactors, not one it takes for a moment while
// the reactors fall behind.
func (s *soak) maxRate(ctx context.Context, d time.Duration) (float64, error) {
	var next atomic.Int64
	start := time.Now()
	l := load{workers: 64, d: d}
	res, err := l.run(ctx, func(w, _ int) error {
		rng := s.rngs.Get().(*mrand.Rand)
		defer s.rngs.Put(rng)
		id := s.prefix + "max-" + strconv.FormatInt(next.Add(1), 10)
		body, user := s.command(rng, id)
		if _, err := s.post(ctx, "", body, s.tok(user), http.StatusAccepted); err != nil {
			return err
		}
		s.extraM.Lock()
		s.extra = append(s.extra, id)
		s.extraM.Unlock()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bench: measure the maximum command rate: %w", err)
	}
	if res.count == 0 {
		return 0, fmt.Errorf("bench: measure the maximum command rate: %w", errNoOps)
	}
	if err := s.settle(ctx, time.Minute); err != nil {
		return 0, err
	}
	return float64(len(s.extra)) / time.Since(start).Seconds(), nil
}

// settle waits until every reactor has caught up with the feed.
func (s *soak) settle(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st := s.e.Stats()
		behind := false
		for _, sub := range st.Subscriptions {
			behind = behind || sub.Position < st.Head
		}
		if !behind {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the reactors did not catch up within %s: %+v", limit, st.Subscriptions)
		}
		sleep(ctx, 10*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (s *soak) fail(err error) {
	s.errs.Add(1)
	s.firstErr.CompareAndSwap(nil, err.Error())
}

// run is the soak proper: n commands at rep.Rate, queries at half that
// rate, the streams, and a sample every interval; then the checks.
func (s *soak) run(ctx context.Context, rep *SoakReport, n int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup

	// The auditor follows every outcome from now on, and each stream
	// client a type; all reconnect every few seconds.
	from := s.e.Head()
	auditor := &follower{s: s, user: "auditor", tok: s.tok(0), types: "", audit: true, last: from}
	followers := []*follower{auditor}
	for i := range s.opts.Streams {
		types := []string{"order", "customer", "orderList", "order,customer"}[i%4]
		followers = append(followers, &follower{s: s, tok: s.tok(i + 1), types: types, last: from})
	}
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	for i, f := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.run(streamCtx, uint64(i))
		}()
	}

	// Commands, open loop: command k is due at k/rate and its latencies
	// count from then.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	jobs := make(chan int, 256)
	var posters sync.WaitGroup
	for range 64 {
		posters.Add(1)
		go func() {
			defer posters.Done()
			rng := s.rngs.Get().(*mrand.Rand)
			defer s.rngs.Put(rng)
			for k := range jobs {
				body, user := s.command(rng, s.prefix+strconv.Itoa(k))
				if _, err := s.post(ctx, "", body, s.tok(user), http.StatusAccepted); err != nil {
					if ctx.Err() == nil {
						s.fail(err)
					}
					continue
				}
				s.acked[k].Store(true)
				s.ackLat.add(time.Duration(s.now() - s.due[k].Load()))
				s.commands.Add(1)
			}
		}()
	}
	// Queries at half the rate.
	queries := make(chan struct{}, 256)
	for range 16 {
		posters.Add(1)
		go func() {
			defer posters.Done()
			rng := s.rngs.Get().(*mrand.Rand)
			defer s.rngs.Put(rng)
			for range queries {
				s.query(ctx, rng)
			}
		}()
	}
	loadStart := s.now()
	sent := 0
	go func() {
		defer close(jobs)
		defer close(queries)
		interval := float64(time.Second) / rep.Rate
		for k := 1; k <= n && loadCtx.Err() == nil; k++ {
			due := loadStart + int64(float64(k-1)*interval)
			if d := due - s.now(); d > 0 {
				sleep(loadCtx, time.Duration(d))
			}
			if due-loadStart >= int64(s.opts.Duration) {
				break
			}
			s.due[k].Store(due)
			select {
			case jobs <- k:
				sent = k
				s.lastSent.Store(int64(k))
			case <-loadCtx.Done():
				return
			}
			if k%2 == 0 {
				select {
				case queries <- struct{}{}:
				default: // the queries fell behind: skip one
				}
			}
		}
	}()

	// Sample every interval until the load's time is up.
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	end := time.Now().Add(s.opts.Duration)
	var last struct {
		frames, reconnects int64
	}
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		smp := SoakSample{At: time.Duration(s.now() - loadStart)}
		smp.RSS, _ = residentBytes()
		smp.LiveHeap = liveHeap()
		smp.Goroutines = runtime.NumGoroutine()
		smp.FDs = openFDs()
		smp.Commands = int(s.commands.Swap(0))
		smp.Queries = int(s.queries.Swap(0))
		smp.Errors = int(s.errs.Swap(0))
		frames, reconnects := s.frames.Load(), s.reconnects.Load()
		smp.Frames, smp.Reconnects = frames-last.frames, int(reconnects-last.reconnects)
		last.frames, last.reconnects = frames, reconnects
		smp.AckP50, smp.AckP99 = s.ackLat.take()
		smp.OutcomeP50, smp.OutcomeP99 = s.outcomeLat.take()
		smp.QueryP50, smp.QueryP99 = s.queryLat.take()
		rep.Samples = append(rep.Samples, smp)
		rep.Errors += smp.Errors
		fmt.Fprintf(s.opts.Progress, "soak %s: %d commands, %d queries, %d frames; rss %.0f MiB, heap %.0f MiB, %d goroutines; outcome p99 %s\n",
			smp.At.Round(time.Second), smp.Commands, smp.Queries, smp.Frames, float64(smp.RSS)/(1<<20), float64(smp.LiveHeap)/(1<<20), smp.Goroutines, formatLatency(smp.OutcomeP99))
	}
	stopLoad()
	posters.Wait()
	if err, ok := s.firstErr.Load().(string); ok {
		fmt.Fprintf(s.opts.Progress, "soak: first error: %s\n", err)
	}

	// Every acknowledged command has its outcome, on the auditor's
	// stream too.
	fmt.Fprintln(s.opts.Progress, "soak: checking every outcome…")
	if err := s.settle(ctx, time.Minute); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); sleep(ctx, 20*time.Millisecond) {
		if s.auditMissing(sent) == 0 {
			break
		}
	}
	stopStreams()
	wg.Wait()
	rep.Reconnects = int(s.reconnects.Load())
	rep.StreamRepeats = int(s.streamRepeats.Load())
	ids := slices.Clone(s.extra)
	for k := 1; k <= sent; k++ {
		if s.acked[k].Load() {
			ids = append(ids, s.prefix+strconv.Itoa(k))
			switch seen := s.seen[k].Load(); {
			case seen == 0:
				rep.AuditorMissing++
			case seen > 1:
				rep.AuditorRepeats++
			}
		}
	}
	rep.Acked = len(ids)
	for _, id := range ids {
		out, ok, err := s.e.Outcome(ctx, id)
		if err != nil {
			return fmt.Errorf("bench: outcome of %s: %w", id, err)
		}
		switch {
		case !ok:
			rep.Missing++
			if len(rep.MissingIDs) < 10 {
				rep.MissingIDs = append(rep.MissingIDs, id)
			}
		case out.Status == plait.StatusAccepted:
			rep.Accepted++
		default:
			rep.Rejected++
		}
	}
	return nil
}

// auditMissing counts the acknowledged commands up to k the auditor has
// not seen the outcome of yet.
func (s *soak) auditMissing(k int) int {
	n := 0
	for i := 1; i <= k; i++ {
		if s.acked[i].Load() && s.seen[i].Load() == 0 {
			n++
		}
	}
	return n
}

// query sends one query of the mix.
func (s *soak) query(ctx context.Context, rng *mrand.Rand) {
	// Lists are read in id order: sorted by a field, SQLite without
	// statistics sorts the whole type for each page (see BENCHMARKS.md).
	var path string
	switch r := rng.IntN(100); {
	case r < 35:
		path = fmt.Sprintf("/aggregates/order/o%d", 1+rng.Int64N(max(s.orders.Load(), 1)))
	case r < 60:
		path = "/lists/orderList?limit=20"
	case r < 80:
		path = fmt.Sprintf("/aggregates/customer/c%d", 1+rng.Int64N(max(s.customers.Load(), 1)))
	case r < 90:
		path = "/lists/customer?limit=20"
	default:
		path = "/commands/" + s.prefix + strconv.FormatInt(1+rng.Int64N(max(s.lastSent.Load(), 1)), 10)
	}
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		s.fail(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.tok(rng.IntN(len(s.tokens))))
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(err)
		}
		return
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		s.fail(err)
		return
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		s.fail(fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg)))
		return
	}
	s.queryLat.add(time.Since(t0))
	s.queries.Add(1)
}

// follower is one SSE client: it follows the relay from where it stands and
// reconnects with Last-Event-ID every few seconds.
type follower struct {
	s     *soak
	user  string
	tok   string
	types string
	audit bool // checks each outcome of the soak's commands
	last  int64
}

func (f *follower) run(ctx context.Context, seed uint64) {
	rng := mrand.New(mrand.NewPCG(seed, 11))
	for ctx.Err() == nil {
		stay := time.Duration(3+rng.IntN(8)) * time.Second
		if err := f.follow(ctx, stay); err != nil && ctx.Err() == nil {
			f.s.fail(fmt.Errorf("stream: %w", err))
			sleep(ctx, 100*time.Millisecond)
		}
		f.s.reconnects.Add(1)
	}
}

// follow reads the stream for stay, then hangs up.
func (f *follower) follow(ctx context.Context, stay time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, stay)
	defer cancel()
	path := "/stream?lastEventId=" + strconv.FormatInt(f.last, 10)
	if f.types != "" {
		path += "&types=" + f.types
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.s.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+f.tok)
	resp, err := f.s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	idPrefix := []byte(`{"id":"` + f.s.prefix)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var pos int64
	var outcome bool
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if pos > 0 {
				if pos <= f.last {
					f.s.streamRepeats.Add(1)
				}
				f.last = max(f.last, pos)
				f.s.frames.Add(1)
			}
			pos, outcome = 0, false
		case bytes.HasPrefix(line, []byte("id: ")):
			pos, _ = strconv.ParseInt(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("event: ")):
			outcome = string(line[7:]) == "outcome"
		case f.audit && outcome && bytes.HasPrefix(line, []byte("data: ")):
			data := line[6:]
			if !bytes.HasPrefix(data, idPrefix) || pos <= f.last {
				continue
			}
			rest := data[len(idPrefix):]
			end := bytes.IndexByte(rest, '"')
			k, err := strconv.Atoi(string(rest[:max(end, 0)]))
			if end < 0 || err != nil || k < 1 || k >= len(f.s.seen) {
				continue // a command of the maximum's measure
			}
			f.s.seen[k].Add(1)
			if due := f.s.due[k].Load(); due > 0 {
				f.s.outcomeLat.add(time.Duration(f.s.now() - due))
			}
		}
	}
}

// liveHeap returns the Go heap live after the last collection.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// openFDs returns how many files the process holds open, 0 if unknown.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// Write prints the report: a row per sample, then the checks.
func (r *SoakReport) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plait soak: %s/%s, %d CPUs, %s; %s at %.0f commands/s", runtime.GOOS, runtime.GOARCH, r.CPUs, runtime.Version(), r.Duration, r.Rate)
	if r.MaxRate > 0 {
		fmt.Fprintf(&b, " (half the %.0f measured first)", r.MaxRate)
	}
	fmt.Fprintf(&b, ", queries at half that, %d SSE clients and an auditor reconnecting every 3–10s; orderdesk behind its HTTP API, HS256 auth; a sample every %s\n\n", r.Streams, r.Interval)
	fmt.Fprintf(&b, "%7s %8s %8s %6s %5s %7s %8s %8s %8s %8s %7s %8s %8s %6s\n",
		"t", "rss MiB", "heap MiB", "gorout", "fds", "cmd/s", "ack p50", "ack p99", "out p50", "out p99", "qry/s", "qry p99", "frames/s", "errors")
	for _, s := range r.Samples {
		sec := r.Interval.Seconds()
		fmt.Fprintf(&b, "%7s %8.1f %8.1f %6d %5d %7.0f %8s %8s %8s %8s %7.0f %8s %8.0f %6d\n",
			s.At.Round(time.Second), float64(s.RSS)/(1<<20), float64(s.LiveHeap)/(1<<20), s.Goroutines, s.FDs,
			float64(s.Commands)/sec, formatLatency(s.AckP50), formatLatency(s.AckP99), formatLatency(s.OutcomeP50), formatLatency(s.OutcomeP99),
			float64(s.Queries)/sec, formatLatency(s.QueryP99), float64(s.Frames)/sec, s.Errors)
	}
	b.WriteString("\n")
	if f, ok := r.Flatness(); ok {
		fmt.Fprintf(&b, "steady state (after the first fifth), first third → last third: rss %.1f → %.1f MiB, live heap %.1f → %.1f MiB, goroutines %.0f → %.0f, fds %.0f → %.0f, outcome p99 %s → %s, ack p99 %s → %s\n",
			f.RSS[0]/(1<<20), f.RSS[1]/(1<<20), f.Heap[0]/(1<<20), f.Heap[1]/(1<<20), f.Goroutines[0], f.Goroutines[1], f.FDs[0], f.FDs[1],
			formatLatency(f.OutcomeP99[0]), formatLatency(f.OutcomeP99[1]), formatLatency(f.AckP99[0]), formatLatency(f.AckP99[1]))
	}
	verdict := "nothing lost"
	if r.Lost() {
		verdict = "LOST"
	}
	fmt.Fprintf(&b, "%d commands acknowledged: %d accepted, %d rejected, %d without an outcome %v; the auditor's stream missed %d and repeated %d; stream clients repeated %d frames over %d reconnections; %d failed requests: %s\n",
		r.Acked, r.Accepted, r.Rejected, r.Missing, r.MissingIDs, r.AuditorMissing, r.AuditorRepeats, r.StreamRepeats, r.Reconnects, r.Errors, verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

// SoakFlatness compares the first and the last third of a soak's steady
// state (the samples after the first fifth): means of memory and
// goroutines, medians of the p99 latencies.
type SoakFlatness struct {
	RSS, Heap, Goroutines, FDs [2]float64
	OutcomeP99, AckP99         [2]time.Duration
}

// Flatness returns the comparison, false with fewer than six samples.
func (r *SoakReport) Flatness() (SoakFlatness, bool) {
	steady := r.Samples[len(r.Samples)/5:]
	if len(steady) < 6 {
		return SoakFlatness{}, false
	}
	third := len(steady) / 3
	parts := [2][]SoakSample{steady[:third], steady[len(steady)-third:]}
	var f SoakFlatness
	for i, part := range parts {
		var outs, acks []time.Duration
		for _, s := range part {
			f.RSS[i] += float64(s.RSS) / float64(len(part))
			f.Heap[i] += float64(s.LiveHeap) / float64(len(part))
			f.Goroutines[i] += float64(s.Goroutines) / float64(len(part))
			f.FDs[i] += float64(s.FDs) / float64(len(part))
			outs, acks = append(outs, s.OutcomeP99), append(acks, s.AckP99)
		}
		slices.Sort(outs)
		slices.Sort(acks)
		f.OutcomeP99[i], f.AckP99[i] = outs[len(outs)/2], acks[len(acks)/2]
	}
	return f, true
}
