// Command sseload is the load generator of the relay figures of `plait
// bench`: it runs in its own process, so that the server's memory and CPU
// are its own, and talks to the bench over its standard input and output.
//
// It opens -clients SSE streams on GET /stream of the server at -url, each
// as its own user (u0, u1, …) with an HS256 token signed with the secret in
// $PLAIT_SSELOAD_SECRET, and prints one JSON line {"phase":"connected",…}
// once every stream is open. It then waits for a line on its standard input
// (the bench measures the server's memory meanwhile), posts commands at
// -rate per second for -duration, waits until every stream has every frame
// it is entitled to (or -drain has passed), and prints one JSON line
// {"phase":"done",…} with what every client received, checked against what
// it should have, and the latency from the submission of a command to the
// arrival of its frames.
//
// In -mode broadcast every command goes to one instance of a type every
// user sees, so every stream is entitled to every command's frames. In
// -mode private each command is sent by one user, picked in turn, to the
// user's own instance of an owner-only type, so only that user's streams
// are entitled to its frames.
//
// It is not part of the plait command line: the bench builds it with the Go
// toolchain from this directory.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plaithq/plait/bench/internal/rlimit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sseload:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	url      string
	clients  int
	mode     string
	typ      string
	command  string
	rate     float64
	duration time.Duration
	warmup   time.Duration
	drain    time.Duration
	dialers  int
	posters  int
	secret   []byte
	// cpuprofile names a file for a CPU profile of the load phase.
	cpuprofile string
}

func run() error {
	var c config
	flag.StringVar(&c.url, "url", "", "base URL of the server")
	flag.IntVar(&c.clients, "clients", 1000, "SSE streams to open, one user each")
	flag.StringVar(&c.mode, "mode", "broadcast", "broadcast or private")
	flag.StringVar(&c.typ, "type", "", "aggregate type the commands go to and the streams follow")
	flag.StringVar(&c.command, "command", "", "command name; its data is {\"by\":1}")
	flag.Float64Var(&c.rate, "rate", 20, "commands per second")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long commands are posted")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "first part of the duration not counted in the latency")
	flag.DurationVar(&c.drain, "drain", 20*time.Second, "how long to wait for the last frames")
	flag.IntVar(&c.dialers, "dialers", 64, "streams opened at once")
	flag.IntVar(&c.posters, "posters", 64, "concurrent POST /commands")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the load phase to this `file`")
	flag.Parse()
	c.cpuprofile = *cpuprofile
	c.secret = []byte(os.Getenv("PLAIT_SSELOAD_SECRET"))
	switch {
	case c.url == "" || c.typ == "" || c.command == "":
		return errors.New("-url, -type and -command are required")
	case c.mode != "broadcast" && c.mode != "private":
		return fmt.Errorf("-mode %q: want broadcast or private", c.mode)
	case len(c.secret) == 0:
		return errors.New("$PLAIT_SSELOAD_SECRET is empty")
	case c.clients < 1 || c.rate <= 0 || c.duration <= 0:
		return errors.New("-clients, -rate and -duration must be positive")
	}
	if err := rlimit.RaiseFiles(c.clients + c.posters + 64); err != nil {
		return err
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	l := &load{cfg: c, addr: u.Host, start: time.Now()}
	l.prefix = "r" + strconv.FormatInt(l.start.UnixNano(), 36) + "-"
	l.outcomeID = []byte(`{"id":"` + l.prefix)
	l.causation = []byte(`"causationId":"` + l.prefix)
	return l.run(os.Stdin, os.Stdout)
}

// load is one run.
type load struct {
	cfg   config
	addr  string
	start time.Time // the origin of every timestamp

	clients []*client
	// submitted[k] is when command k (1-based) was due, in nanoseconds
	// since start; 0 before it is posted.
	submitted []atomic.Int64
	// owner[k] is the client whose user sent command k (private mode).
	owner []int32
	// acked[k] is set when command k was answered 202.
	acked []atomic.Bool
	// prefix starts the id of every command of the run, so that no id
	// of an earlier run is taken for a duplicate; outcomeID and causation
	// are how a frame's data names one.
	prefix               string
	outcomeID, causation []byte
	// poller reads the streams when the platform has one (see
	// poll_linux.go); nil: each stream's goroutine reads it.
	poller *poller
	// counting is set while latencies are recorded.
	counting atomic.Bool
	// lat are the latencies, in shards so that the clients' goroutines
	// seldom touch the same memory.
	lat [16]histogram
}

// client is one stream, read by its own goroutine.
type client struct {
	user  string
	token string
	err   atomic.Value // error: why the stream ended early

	mu       sync.Mutex
	lastPos  int64
	outcomes int64 // outcome frames of measured commands
	events   int64 // event frames of measured commands
	seqSum   int64 // sum of the outcome frames' command numbers
	foreign  int64 // frames of commands this client may not see
	repeats  int64 // frames whose position was not above the last one
	last     int64 // when the last frame of a measured command came

	parser parser // used by one goroutine at a time
}

// result is the final JSON line.
type result struct {
	Phase            string  `json:"phase"`
	Clients          int     `json:"clients"`
	Mode             string  `json:"mode"`
	Commands         int     `json:"commands"`
	Acked            int     `json:"acked"`
	PostErrors       int     `json:"postErrors"`
	FirstPostError   string  `json:"firstPostError,omitempty"`
	Expected         int64   `json:"expected"` // outcome frames the clients are entitled to
	Outcomes         int64   `json:"outcomes"` // outcome frames they received
	Events           int64   `json:"events"`   // event frames they received
	Frames           int64   `json:"frames"`   // both
	Exact            int     `json:"exact"`    // clients that received exactly their frames
	Missing          int64   `json:"missing"`
	Foreign          int64   `json:"foreign"`
	Repeats          int64   `json:"repeats"`
	StreamErrors     int     `json:"streamErrors"`
	FirstStreamError string  `json:"firstStreamError,omitempty"`
	Seconds          float64 `json:"seconds"`       // from the first post to the last frame
	FramesPerSec     float64 `json:"framesPerSec"`  // Frames / Seconds
	Samples          int64   `json:"samples"`       // latencies recorded
	P50              float64 `json:"p50"`           // seconds
	P99              float64 `json:"p99"`           // seconds
	P999             float64 `json:"p999"`          // seconds
	Max              float64 `json:"max"`           // seconds
	PostLagMax       float64 `json:"postLagMax"`    // how late a post started, seconds
	DrainSeconds     float64 `json:"drainSeconds"`  // from the last ack to the last frame
	ConnectSeconds   float64 `json:"connectSecond"` // to open every stream
}

func (l *load) now() int64 { return int64(time.Since(l.start)) }

func (l *load) run(stdin io.Reader, stdout io.Writer) error {
	c := l.cfg
	out := json.NewEncoder(stdout)
	n := int(math.Ceil(c.rate * c.duration.Seconds()))
	l.submitted = make([]atomic.Int64, n+1)
	l.acked = make([]atomic.Bool, n+1)
	l.owner = make([]int32, n+1)
	for k := 1; k <= n; k++ {
		l.owner[k] = int32((k - 1) % c.clients)
	}

	exp := time.Now().Add(24 * time.Hour).Unix()
	l.clients = make([]*client, c.clients)
	for i := range l.clients {
		user := "u" + strconv.Itoa(i)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": exp}).SignedString(l.cfg.secret)
		if err != nil {
			return fmt.Errorf("sign a token: %w", err)
		}
		l.clients[i] = &client{user: user, token: tok}
	}

	// Open every stream, c.dialers at a time.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers sync.WaitGroup
	poller, err := newPoller(l)
	if err != nil {
		return err
	}
	if poller != nil {
		l.poller = poller
		readers.Add(1)
		go func() {
			defer readers.Done()
			poller.run(ctx)
		}()
	}
	t0 := time.Now()
	opened := make(chan error, c.clients)
	sem := make(chan struct{}, c.dialers)
	for i, cl := range l.clients {
		sem <- struct{}{}
		readers.Add(1)
		go func() {
			defer readers.Done()
			l.follow(ctx, i, cl, func(err error) { <-sem; opened <- err })
		}()
	}
	var failed int
	var firstErr error
	for range l.clients {
		if err := <-opened; err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	connect := time.Since(t0)
	if failed > 0 {
		return fmt.Errorf("%d of %d streams failed to open, the first: %w", failed, c.clients, firstErr)
	}
	runtime.GC()
	if err := out.Encode(map[string]any{"phase": "connected", "clients": c.clients, "seconds": connect.Seconds()}); err != nil {
		return err
	}

	// Wait for the go-ahead.
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for the go-ahead: %w", err)
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// Post n commands at the rate, open loop: command k is due at
	// k/rate, and its latency counts from then, however late it went.
	postClient := &http.Client{Transport: &http.Transport{
		MaxIdleConns: c.posters * 2, MaxIdleConnsPerHost: c.posters * 2, DisableCompression: true,
	}}
	jobs := make(chan int, c.posters)
	var posted sync.WaitGroup
	var postErrs atomic.Int64
	var firstPostErr atomic.Value
	var lagMax atomic.Int64
	for range c.posters {
		posted.Add(1)
		go func() {
			defer posted.Done()
			for k := range jobs {
				if lag := l.now() - l.submitted[k].Load(); lag > lagMax.Load() {
					lagMax.Store(lag)
				}
				if err := l.post(ctx, postClient, k); err != nil {
					if postErrs.Add(1) == 1 {
						firstPostErr.Store(err.Error())
					}
					continue
				}
				l.acked[k].Store(true)
			}
		}()
	}
	loadStart := l.now()
	warm := loadStart + int64(c.warmup)
	interval := float64(time.Second) / c.rate
	for k := 1; k <= n; k++ {
		due := loadStart + int64(float64(k-1)*interval)
		if d := due - l.now(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if !l.counting.Load() && due >= warm {
			l.counting.Store(true)
		}
		l.submitted[k].Store(max(due, 1))
		jobs <- k
	}
	close(jobs)
	posted.Wait()
	lastAck := l.now()

	// Wait until every stream has every frame it may see.
	expected := make([]int64, c.clients)
	expectedSum := make([]int64, c.clients)
	var total int64
	acked := 0
	for k := 1; k <= n; k++ {
		if !l.acked[k].Load() {
			continue
		}
		acked++
		if c.mode == "broadcast" {
			total += int64(c.clients)
			continue
		}
		total++
		expected[l.owner[k]]++
		expectedSum[l.owner[k]] += int64(k)
	}
	if c.mode == "broadcast" {
		var sum int64
		for k := 1; k <= n; k++ {
			if l.acked[k].Load() {
				sum += int64(k)
			}
		}
		for i := range expected {
			expected[i], expectedSum[i] = int64(acked), sum
		}
	}
	deadline := time.Now().Add(c.drain)
	for {
		var got int64
		for _, cl := range l.clients {
			cl.mu.Lock()
			got += cl.outcomes
			cl.mu.Unlock()
		}
		if got >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var lastFrame int64
	for _, cl := range l.clients {
		cl.mu.Lock()
		lastFrame = max(lastFrame, cl.last)
		cl.mu.Unlock()
	}
	l.counting.Store(false)
	cancel()
	readers.Wait() // cancel closed every connection

	r := result{
		Phase: "done", Clients: c.clients, Mode: c.mode, Commands: n, Acked: acked,
		PostErrors: int(postErrs.Load()), Expected: total, ConnectSeconds: connect.Seconds(),
		PostLagMax:   time.Duration(lagMax.Load()).Seconds(),
		DrainSeconds: time.Duration(max(0, lastFrame-lastAck)).Seconds(),
	}
	if s, ok := firstPostErr.Load().(string); ok {
		r.FirstPostError = s
	}
	for i, cl := range l.clients {
		cl.mu.Lock()
		r.Outcomes += cl.outcomes
		r.Events += cl.events
		r.Foreign += cl.foreign
		r.Repeats += cl.repeats
		if cl.outcomes < expected[i] {
			r.Missing += expected[i] - cl.outcomes
		}
		if cl.outcomes == expected[i] && cl.seqSum == expectedSum[i] && cl.foreign == 0 && cl.repeats == 0 {
			r.Exact++
		}
		cl.mu.Unlock()
		if err, ok := cl.err.Load().(error); ok && !errors.Is(err, context.Canceled) {
			r.StreamErrors++
			if r.FirstStreamError == "" {
				r.FirstStreamError = err.Error()
			}
		}
	}
	r.Frames = r.Outcomes + r.Events
	if lastFrame > loadStart {
		r.Seconds = time.Duration(lastFrame - loadStart).Seconds()
		r.FramesPerSec = float64(r.Frames) / r.Seconds
	}
	var lat histogram
	for i := range l.lat {
		lat.merge(&l.lat[i])
	}
	r.Samples = lat.count()
	r.P50 = lat.quantile(0.50).Seconds()
	r.P99 = lat.quantile(0.99).Seconds()
	r.P999 = lat.quantile(0.999).Seconds()
	r.Max = time.Duration(lat.max.Load()).Seconds()
	return out.Encode(r)
}

// post sends command k as its user and fails unless it is answered 202.
func (l *load) post(ctx context.Context, hc *http.Client, k int) error {
	c := l.cfg
	agg := "board"
	cl := l.clients[l.owner[k]]
	if c.mode == "private" {
		agg = cl.user
	}
	body := fmt.Sprintf(`{"id":"%s%d","type":%q,"aggregateId":%q,"name":%q,"data":{"by":1}}`, l.prefix, k, c.typ, agg, c.command)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/commands", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /commands: %s: %s", resp.Status, msg)
	}
	return nil
}

// follow opens the stream of client i, calls opened once it is open (or
// failed to), then reads frames until ctx ends or the stream fails.
func (l *load) follow(ctx context.Context, i int, cl *client, opened func(error)) {
	open := false
	err := l.read(ctx, i, cl, func() { open = true; opened(nil) })
	if !open {
		if err == nil {
			err = errors.New("the stream ended before it opened")
		}
		opened(err)
		return
	}
	if err != nil && ctx.Err() == nil {
		cl.err.Store(err)
	}
}

func (l *load) read(ctx context.Context, i int, cl *client, opened func()) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /stream?types=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n\r\n", l.cfg.typ, l.addr, cl.token); err != nil {
		return fmt.Errorf("send the request: %w", err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET /stream: %s: %s", resp.Status, msg)
	}
	// A body that is the raw frames, ended by closing the connection, is
	// read from the socket itself; any other through net/http.
	raw := len(resp.TransferEncoding) == 0 && resp.ContentLength < 0
	var body *bufio.Reader
	if raw {
		body = br
	} else {
		body = bufio.NewReaderSize(resp.Body, 4096)
	}
	first, err := body.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read the first line: %w", err)
	}
	if !bytes.HasPrefix(first, []byte(":")) && !bytes.HasPrefix(first, []byte("retry:")) {
		return fmt.Errorf("first line %q: want a comment", first)
	}
	buffered, _ := body.Peek(body.Buffered())
	l.feed(i, cl, buffered)
	if raw && l.poller != nil {
		tcp, ok := conn.(*net.TCPConn)
		if ok {
			gone, err := l.poller.add(i, cl, tcp)
			if err != nil {
				return err
			}
			opened()
			select {
			case <-ctx.Done():
				return nil
			case <-gone:
				if err, ok := cl.err.Load().(error); ok {
					return err
				}
				return errors.New("the server closed the stream")
			}
		}
	}
	body.Discard(len(buffered))
	opened()
	buf := make([]byte, 8192)
	for {
		n, err := body.Read(buf)
		l.feed(i, cl, buf[:n])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
	}
}

// parser is where a client's reading of the frames stands.
type parser struct {
	pos   int64
	kind  byte // 'o' outcome, 'e' event
	cmd   int  // the command the frame concerns, 0 if none of ours
	carry []byte
}

// feed parses what client i read.
func (l *load) feed(i int, cl *client, data []byte) {
	p := &cl.parser
	for len(data) > 0 {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			p.carry = append(p.carry, data...)
			return
		}
		line := data[:j]
		data = data[j+1:]
		if len(p.carry) > 0 {
			p.carry = append(p.carry, line...)
			line = p.carry
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			if p.pos != 0 {
				l.frame(i, cl, p.pos, p.kind, p.cmd)
			}
			p.pos, p.kind, p.cmd = 0, 0, 0
		case bytes.HasPrefix(line, []byte("id: ")):
			p.pos, _ = strconv.ParseInt(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("event: ")):
			p.kind = line[7]
		case bytes.HasPrefix(line, []byte("data: ")):
			p.cmd = l.commandOf(line[6:], p.kind)
		}
		p.carry = p.carry[:0]
	}
}

// commandOf returns k of the command l.prefix+k a frame's data concerns:
// the outcome's id or the event's causation id; 0 if it is none of ours.
func (l *load) commandOf(data []byte, kind byte) int {
	var rest []byte
	switch kind {
	case 'o':
		if !bytes.HasPrefix(data, l.outcomeID) {
			return 0
		}
		rest = data[len(l.outcomeID):]
	case 'e':
		i := bytes.Index(data, l.causation)
		if i < 0 {
			return 0
		}
		rest = data[i+len(l.causation):]
	default:
		return 0
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0
	}
	k, err := strconv.Atoi(string(rest[:end]))
	if err != nil {
		return 0
	}
	return k
}

// frame records one frame of client i.
func (l *load) frame(i int, cl *client, pos int64, kind byte, k int) {
	now := l.now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if pos <= cl.lastPos {
		cl.repeats++
	}
	cl.lastPos = max(cl.lastPos, pos)
	if k <= 0 || k >= len(l.submitted) {
		return // not a command of this run
	}
	if l.cfg.mode == "private" && int(l.owner[k]) != i {
		cl.foreign++
		return
	}
	switch kind {
	case 'o':
		cl.outcomes++
		cl.seqSum += int64(k)
	case 'e':
		cl.events++
	default:
		return
	}
	cl.last = now
	if l.counting.Load() {
		if sub := l.submitted[k].Load(); sub > 0 {
			l.lat[i%len(l.lat)].record(now - sub)
		}
	}
}

// histogram records durations in buckets of at most 0.4% width, lock-free.
type histogram struct {
	buckets [64 * 256]atomic.Int64
	max     atomic.Int64
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i := range o.buckets {
		h.buckets[i].Add(o.buckets[i].Load())
	}
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// bucket maps nanoseconds to a bucket: exact below 512ns, then 512 linear
// steps per power of two.
func bucket(ns int64) int {
	if ns < 512 {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 9 // ns >> e lies in [256, 512)
	return e*256 + int(ns>>e)
}

// lower is the smallest duration of bucket b.
func lower(b int) int64 {
	if b < 512 {
		return int64(b)
	}
	e := b/256 - 1
	m := int64(b - e*256)
	return m << e
}

func (h *histogram) record(ns int64) {
	h.buckets[bucket(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

func (h *histogram) count() int64 {
	var n int64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

func (h *histogram) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(lower(i))
		}
	}
	return time.Duration(h.max.Load())
}
