package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait/httpapi"
)

// httpWorkers is how many concurrent clients the HTTP figures use, as many
// as the engine's top figure has submitters.
const httpWorkers = 64

// measureHTTP adds the HTTP figures to the report. One server in this
// process serves the HTTP API of an engine on a fresh store/sqlite file and,
// beside it, a trivial JSON handler; the same in-process load generator
// (net/http clients over loopback with keep-alive) drives both:
//
//   - http-json: the trivial handler, which decodes the command's JSON and
//     answers 202 with an id, without touching the engine: the baseline;
//   - http-post: POST /commands, each answered 202 once durable;
//   - http-json-1: the trivial handler, one client, the round trip: the
//     baseline of http-wait;
//   - http-wait: POST /commands?wait=outcome, one client, the round trip;
//   - sse-echo: a trivial SSE server (the trivial handler, which also
//     writes a frame of the command's id to every open stream), from
//     sending a POST to reading its frame: the baseline of http-sse;
//   - http-sse: from sending POST /commands to reading the command's outcome
//     frame on GET /stream.
//
// It adds the ratio http-post / http-json, with a target of 50%.
func measureHTTP(ctx context.Context, dir string, opts Options, rep *Report) error {
	n, err := startNode(ctx, filepath.Join(dir, "http.db"), App())
	if err != nil {
		return err
	}
	defer n.shutdown()
	api := httpapi.New(n.e, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bench/json", trivialJSON)
	echo := newSSEEcho()
	mux.HandleFunc("POST /bench/sse", echo.post)
	mux.HandleFunc("GET /bench/stream", echo.stream)
	mux.Handle("/", api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench: listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		api.CloseStreams()
		srv.Close()
	}()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: httpWorkers * 2, MaxIdleConnsPerHost: httpWorkers * 2,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}}
	defer client.CloseIdleConnections()

	rows := []struct {
		key, name, path string
		workers         int
		want            int
		baselines       []string
	}{
		{"http-json", fmt.Sprintf("trivial JSON handler, %d clients: decode, answer 202", httpWorkers), "/bench/json", httpWorkers, http.StatusAccepted, nil},
		{"http-post", fmt.Sprintf("POST /commands, %d clients, each answered 202 once durable", httpWorkers), "/commands", httpWorkers, http.StatusAccepted, []string{"http-json"}},
		{"http-json-1", "trivial JSON handler, 1 client: the round trip", "/bench/json", 1, http.StatusAccepted, nil},
		{"http-wait", "POST /commands?wait=outcome, 1 client: the round trip", "/commands?wait=outcome", 1, http.StatusOK, []string{"http-json-1"}},
	}
	for _, r := range rows {
		fmt.Fprintf(opts.Progress, "HTTP %s…\n", r.key)
		l := load{workers: r.workers, warmup: opts.warmup(), d: opts.Duration}
		rngs := newRands(r.workers, 100)
		res, err := l.run(ctx, func(w, _ int) error {
			body := commandBody("", rngs[w].IntN(rawInstances))
			return post(ctx, client, base+r.path, body, r.want)
		})
		if err != nil {
			return fmt.Errorf("bench: %s: %w", r.key, err)
		}
		if res.count == 0 {
			return fmt.Errorf("bench: %s: %w", r.key, errNoOps)
		}
		rep.Rows = append(rep.Rows, Row{
			Key: r.key, Name: r.name, Rate: res.rate(1), Unit: "requests/s", Count: res.count,
			P50: res.p50, P99: res.p99, Baselines: r.baselines,
		})
	}

	for _, s := range []sseFigure{
		{key: "sse-echo", name: fmt.Sprintf("a trivial SSE server: POST (decoded, answered 202, its id written to every stream) to its frame, %d clients posting", sseSenders),
			stream: "/bench/stream", post: "/bench/sse"},
		{key: "http-sse", name: fmt.Sprintf("POST /commands to its outcome frame on GET /stream, %d clients posting", sseSenders),
			stream: "/stream?types=counter", post: "/commands", baselines: []string{"sse-echo"}},
	} {
		fmt.Fprintf(opts.Progress, "HTTP %s…\n", s.key)
		row, err := measureSSE(ctx, client, base, s, opts)
		if err != nil {
			return err
		}
		rep.Rows = append(rep.Rows, row)
	}

	post, _ := rep.Row("http-post")
	trivial, _ := rep.Row("http-json")
	rep.Ratios = append(rep.Ratios, Ratio{
		Name: "http-post / http-json (requests/s)", Value: post.Rate / trivial.Rate, Target: 0.50, Percent: true,
	})
	return nil
}

// sseSenders is how many clients post commands while the SSE latency is
// measured.
const sseSenders = 16

// sseFigure is a figure of measureSSE: the stream it follows and where it
// posts.
type sseFigure struct {
	key, name    string
	stream, post string
	baselines    []string // compared by latency
}

// measureSSE follows a stream while sseSenders clients post commands
// without waiting, and times each command from the start of its POST to
// the arrival of its outcome frame.
func measureSSE(ctx context.Context, client *http.Client, base string, fig sseFigure, opts Options) (Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+fig.stream, nil)
	if err != nil {
		return Row{}, fmt.Errorf("bench: stream request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return Row{}, fmt.Errorf("bench: open the stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Row{}, fmt.Errorf("bench: open the stream: %s", resp.Status)
	}

	var sent sync.Map // command id → time its POST started
	var (
		mu       sync.Mutex
		lats     []time.Duration
		counting atomic.Bool
	)
	readErr := make(chan error, 1)
	go func() {
		readErr <- readFrames(resp.Body, func(kind string, data []byte) {
			if kind != "outcome" {
				return
			}
			var f struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(data, &f) != nil {
				return
			}
			if t0, ok := sent.LoadAndDelete(f.ID); ok && counting.Load() {
				d := time.Since(t0.(time.Time))
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}
		})
	}()
	// The stream is live once a probe's frame comes through.
	probe := "bench-sse-probe"
	sent.Store(probe, time.Now())
	if err := post(ctx, client, base+fig.post, commandBody(probe, 0), http.StatusAccepted); err != nil {
		return Row{}, fmt.Errorf("bench: sse probe: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, waiting := sent.Load(probe); !waiting {
			break
		}
		if time.Now().After(deadline) {
			return Row{}, errors.New("bench: the stream never delivered the probe's outcome")
		}
	}

	var next atomic.Int64
	rngs := newRands(sseSenders, 200)
	l := load{workers: sseSenders, warmup: opts.warmup(), d: opts.Duration}
	go func() {
		time.Sleep(l.warmup)
		counting.Store(true)
	}()
	if _, err := l.run(ctx, func(w, _ int) error {
		id := "sse-" + strconv.FormatInt(next.Add(1), 10)
		sent.Store(id, time.Now())
		return post(ctx, client, base+fig.post, commandBody(id, rngs[w].IntN(rawInstances)), http.StatusAccepted)
	}); err != nil {
		return Row{}, fmt.Errorf("bench: %s: %w", fig.key, err)
	}
	time.Sleep(100 * time.Millisecond) // the last frames in flight
	counting.Store(false)
	cancel()
	<-readErr
	mu.Lock()
	defer mu.Unlock()
	if len(lats) == 0 {
		return Row{}, fmt.Errorf("bench: %s: %w", fig.key, errNoOps)
	}
	slices.Sort(lats)
	return Row{
		Key: fig.key, Name: fig.name,
		Rate: float64(len(lats)) / opts.Duration.Seconds(), Unit: "frames/s", Count: len(lats),
		P50: lats[len(lats)*50/100], P99: lats[min(len(lats)-1, len(lats)*99/100)], LatencyBaselines: fig.baselines,
	}, nil
}

// readFrames reads SSE frames from r until it ends and hands each frame's
// event name and data to frame.
func readFrames(r io.Reader, frame func(kind string, data []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var kind string
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				frame(kind, data)
			}
			kind, data = "", data[:0]
		case bytes.HasPrefix(line, []byte("event:")):
			kind = strings.TrimSpace(string(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		}
	}
}

// commandBody is the JSON of an "add" command, with id when it is not "".
func commandBody(id string, instance int) []byte {
	b := make([]byte, 0, 128)
	b = append(b, '{')
	if id != "" {
		b = append(b, `"id":"`...)
		b = append(b, id...)
		b = append(b, `",`...)
	}
	b = append(b, `"type":"counter","aggregateId":"a`...)
	b = strconv.AppendInt(b, int64(instance), 10)
	b = append(b, `","name":"add","data":{"by":1}}`...)
	return b
}

// post sends body to url and fails unless the status is want; it reads the
// answer to its end so the connection is kept alive.
func post(ctx context.Context, client *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %s, want %d: %s", url, resp.Status, want, msg)
	}
	return nil
}

// trivialJSON is the baseline handler: it decodes a command envelope and
// answers 202 with its id, as POST /commands does, without the engine.
func trivialJSON(w http.ResponseWriter, r *http.Request) {
	if id, ok := decodeTrivially(w, r); ok {
		answerTrivially(w, id)
	}
}

// decodeTrivially decodes a command envelope and returns its id, one made
// up when it has none; it answers 400 to one that does not decode.
func decodeTrivially(w http.ResponseWriter, r *http.Request) (string, bool) {
	var env struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		AggregateID string          `json:"aggregateId"`
		Name        string          `json:"name"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	if env.ID == "" {
		env.ID = "trivial-" + strconv.FormatInt(trivialIDs.Add(1), 10)
	}
	return env.ID, true
}

// answerTrivially answers 202 pending, as POST /commands does.
func answerTrivially(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/commands/"+id)
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"id": id, "status": "pending"})
}

var trivialIDs atomic.Int64

// sseEcho is the baseline SSE server: what it is posted, it answers as
// trivialJSON does and writes as an outcome frame of the command's id to
// every open stream.
type sseEcho struct {
	mu      sync.Mutex
	streams map[chan []byte]bool
}

func newSSEEcho() *sseEcho { return &sseEcho{streams: map[chan []byte]bool{}} }

func (e *sseEcho) post(w http.ResponseWriter, r *http.Request) {
	id, ok := decodeTrivially(w, r)
	if !ok {
		return
	}
	frame, _ := json.Marshal(map[string]string{"id": id})
	frame = append(append([]byte("event: outcome\ndata: "), frame...), "\n\n"...)
	e.mu.Lock()
	for ch := range e.streams {
		select {
		case ch <- frame:
		default: // a slow stream misses it, as no stream of the relay may stall others
		}
	}
	e.mu.Unlock()
	answerTrivially(w, id)
}

func (e *sseEcho) stream(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 4096)
	e.mu.Lock()
	e.streams[ch] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.streams, ch)
		e.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case f := <-ch:
			w.Write(f)
			for n := len(ch); n > 0; n-- { // what queued meanwhile, in one flush
				w.Write(<-ch)
			}
			if rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}
