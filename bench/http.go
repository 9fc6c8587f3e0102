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
//   - http-wait: POST /commands?wait=outcome, one client, the round trip;
//   - http-sse: from sending POST /commands to reading the command's outcome
//     frame on GET /stream.
//
// It adds the ratio http-post / http-json, with a target of 50%.
func measureHTTP(ctx context.Context, dir string, opts Options, rep *Report) error {
	n, err := startNode(ctx, filepath.Join(dir, "http.db"))
	if err != nil {
		return err
	}
	defer n.shutdown()
	api := httpapi.New(n.e, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /bench/json", trivialJSON)
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
		{"http-wait", "POST /commands?wait=outcome, 1 client: the round trip", "/commands?wait=outcome", 1, http.StatusOK, nil},
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

	fmt.Fprintln(opts.Progress, "HTTP http-sse…")
	row, err := measureSSE(ctx, client, base, opts)
	if err != nil {
		return err
	}
	rep.Rows = append(rep.Rows, row)

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

// measureSSE follows GET /stream while sseSenders clients post commands
// without waiting, and times each command from the start of its POST to
// the arrival of its outcome frame.
func measureSSE(ctx context.Context, client *http.Client, base string, opts Options) (Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stream?types=counter", nil)
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
	if err := post(ctx, client, base+"/commands", commandBody(probe, 0), http.StatusAccepted); err != nil {
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
		return post(ctx, client, base+"/commands", commandBody(id, rngs[w].IntN(rawInstances)), http.StatusAccepted)
	}); err != nil {
		return Row{}, fmt.Errorf("bench: http-sse: %w", err)
	}
	time.Sleep(100 * time.Millisecond) // the last frames in flight
	counting.Store(false)
	cancel()
	<-readErr
	mu.Lock()
	defer mu.Unlock()
	if len(lats) == 0 {
		return Row{}, fmt.Errorf("bench: http-sse: %w", errNoOps)
	}
	slices.Sort(lats)
	return Row{
		Key:  "http-sse",
		Name: fmt.Sprintf("POST /commands to its outcome frame on GET /stream, %d clients posting", sseSenders),
		Rate: float64(len(lats)) / opts.Duration.Seconds(), Unit: "frames/s", Count: len(lats),
		P50: lats[len(lats)*50/100], P99: lats[min(len(lats)-1, len(lats)*99/100)],
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
	var env struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		AggregateID string          `json:"aggregateId"`
		Name        string          `json:"name"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if env.ID == "" {
		env.ID = "trivial-" + strconv.FormatInt(trivialIDs.Add(1), 10)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/commands/"+env.ID)
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"id": env.ID, "status": "pending"})
}

var trivialIDs atomic.Int64
