package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/bench/internal/rlimit"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/relay"
)

// The relay figures' defaults and targets.
const (
	// DefaultRelayClients is how many SSE clients the relay figures open.
	DefaultRelayClients = 10000
	// relayP99Target is the highest p99 wanted from submit to frame.
	relayP99Target = 250 * time.Millisecond
	// relayIdleTarget is the most resident memory wanted per idle
	// connection, in bytes.
	relayIdleTarget = 20 << 10
)

// The relay application: a board every user sees and an inbox per user
// that only its owner sees. Both take the bench's "add" data.
var (
	boardType = plait.NewAggregate[counter]("board",
		plait.Handle("post", func(s counter, c plait.Cmd[add]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("posted", c.Data)}, nil
		}),
		plait.Apply("posted", func(s counter, e add) counter { s.Count += e.By; return s }),
	)
	inboxType = plait.NewAggregate[counter]("inbox",
		plait.Handle("put", func(s counter, c plait.Cmd[add]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("stored", c.Data)}, nil
		}),
		plait.Apply("stored", func(s counter, e add) counter { s.Count += e.By; return s }),
		plait.WithAccess[counter](plait.Access{OwnerOnly: true}),
	)
)

// RelayApp is the application of the relay figures: "board", whose "post"
// every user sees, and "inbox", owner-only, whose "put" only the user who
// created the instance sees. Each command emits one event.
func RelayApp() plait.App {
	return plait.App{Name: "relaybench", Aggregates: []plait.Definition{boardType, inboxType}}
}

// relayShape is one relay figure.
type relayShape struct {
	key, mode, typ, command string
	rate                    float64 // commands per second
	describe                string
}

var relayShapes = []relayShape{
	{"relay-broadcast", "broadcast", "board", "post", 20, "every client entitled to every command"},
	{"relay-private", "private", "inbox", "put", 1000, "each client entitled to its own commands only, owner-only type, HS256 auth"},
}

// genResult is the load generator's final report (see internal/sseload).
type genResult struct {
	Clients          int     `json:"clients"`
	Commands         int     `json:"commands"`
	Acked            int     `json:"acked"`
	PostErrors       int     `json:"postErrors"`
	FirstPostError   string  `json:"firstPostError"`
	Expected         int64   `json:"expected"`
	Outcomes         int64   `json:"outcomes"`
	Events           int64   `json:"events"`
	Frames           int64   `json:"frames"`
	Exact            int     `json:"exact"`
	Missing          int64   `json:"missing"`
	Foreign          int64   `json:"foreign"`
	Repeats          int64   `json:"repeats"`
	StreamErrors     int     `json:"streamErrors"`
	FirstStreamError string  `json:"firstStreamError"`
	Seconds          float64 `json:"seconds"`
	FramesPerSec     float64 `json:"framesPerSec"`
	Samples          int64   `json:"samples"`
	P50              float64 `json:"p50"`
	P99              float64 `json:"p99"`
	P999             float64 `json:"p999"`
	Max              float64 `json:"max"`
	PostLagMax       float64 `json:"postLagMax"`
	DrainSeconds     float64 `json:"drainSeconds"`
	ConnectSeconds   float64 `json:"connectSecond"`
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// RelayResult is what one relay shape measured.
type RelayResult struct {
	Shape   string
	Clients int
	Rate    float64 // commands per second posted
	// Gen is the load generator's report.
	Gen genResult
	// IdleBytes is the server's resident memory per idle connection,
	// IdleGoroutines its goroutines per idle connection; both measured
	// once every stream was open and before any command.
	IdleBytes      float64
	IdleGoroutines float64
	// RawIdleBytes is IdleBytes without returning freed memory to the OS
	// first.
	RawIdleBytes float64
	// ServerCPU is the CPU time the server's process used over Wall, from
	// the first command to the generator's report; GenCPU is what the
	// generator used over its whole life.
	ServerCPU, Wall, GenCPU time.Duration
	// CPUShare is the share of a CPU one busy thread got just before, of
	// 1: below, other processes used the machine.
	CPUShare float64
	// Hub is what the server's relay hub did under the load: its streams
	// then, and the frames, writes, slow writes and overflows since.
	Hub relay.HubStats
}

// relayServer is an embedded instance serving RelayApp over HTTP with
// HS256 auth, on a loopback port.
type relayServer struct {
	n      *node
	api    *httpapi.Server
	srv    *http.Server
	base   string
	secret string
}

func startRelayServer(ctx context.Context, dir string) (*relayServer, error) {
	n, err := startNode(ctx, filepath.Join(dir, "relay.db"), RelayApp())
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	secret := hex.EncodeToString(key)
	api := httpapi.New(n.e, httpapi.Options{Auth: httpapi.NewHS256Auth([]byte(secret)), Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.shutdown()
		return nil, fmt.Errorf("bench: listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &relayServer{n: n, api: api, srv: srv, base: "http://" + ln.Addr().String(), secret: secret}, nil
}

func (s *relayServer) close() error {
	s.api.CloseStreams()
	s.srv.Close()
	return s.n.shutdown()
}

// errNoGenerator says the load generator could not be built, so the relay
// figures are skipped.
var errNoGenerator = errors.New("bench: cannot build the SSE load generator")

// buildLoadGenerator builds internal/sseload into dir with the Go
// toolchain, from the source tree this package was compiled from.
func buildLoadGenerator(ctx context.Context, dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("%w: no source path", errNoGenerator)
	}
	src := filepath.Join(filepath.Dir(file), "internal", "sseload")
	if _, err := os.Stat(filepath.Join(src, "main.go")); err != nil {
		return "", fmt.Errorf("%w: its source is not here: %v", errNoGenerator, err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: no go command: %v", errNoGenerator, err)
	}
	// Absolute: go build runs in the source's directory, and the
	// generator is started from this process's.
	exe, err := filepath.Abs(filepath.Join(dir, "sseload"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoGenerator, err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", exe, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build: %v\n%s", errNoGenerator, err, out)
	}
	return exe, nil
}

// relayRun configures one run of the load generator.
type relayRun struct {
	exe      string
	shape    relayShape
	clients  int
	duration time.Duration
	warmup   time.Duration
	settle   time.Duration // how long the idle streams sit before memory is read
	progress io.Writer
	// genProfile, when set, is where the generator writes a CPU profile of
	// its load phase (with the shape's key appended).
	genProfile string
}

// runRelayShape opens the streams from a separate process, measures the
// server's memory with every stream idle, then lets the generator post and
// collects its report.
func runRelayShape(ctx context.Context, s *relayServer, r relayRun) (RelayResult, error) {
	res := RelayResult{Shape: r.shape.key, Clients: r.clients, Rate: r.shape.rate}
	res.CPUShare = cpuShare(ctx, 500*time.Millisecond)
	debug.FreeOSMemory()
	rssBefore, rssErr := residentBytes()
	gBefore := runtime.NumGoroutine()

	cmd := exec.CommandContext(ctx, r.exe,
		"-url", s.base, "-clients", strconv.Itoa(r.clients), "-mode", r.shape.mode,
		"-type", r.shape.typ, "-command", r.shape.command,
		"-rate", strconv.FormatFloat(r.shape.rate, 'f', -1, 64),
		"-duration", r.duration.String(), "-warmup", r.warmup.String())
	if r.genProfile != "" {
		cmd.Args = append(cmd.Args, "-cpuprofile", r.genProfile+"."+r.shape.key)
	}
	cmd.Env = append(os.Environ(), "PLAIT_SSELOAD_SECRET="+s.secret, "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, fmt.Errorf("bench: load generator stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("bench: load generator stdout: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("bench: start the load generator: %w", err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	fail := func(what string, err error) (RelayResult, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return res, fmt.Errorf("bench: %s: %s: %w; its stderr: %s", r.shape.key, what, err, strings.TrimSpace(stderr.String()))
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	next := func(phase string, v any) error {
		if !lines.Scan() {
			if err := lines.Err(); err != nil {
				return err
			}
			return io.ErrUnexpectedEOF
		}
		var head struct {
			Phase string `json:"phase"`
		}
		if err := json.Unmarshal(lines.Bytes(), &head); err != nil || head.Phase != phase {
			return fmt.Errorf("want phase %q, got %q", phase, lines.Text())
		}
		return json.Unmarshal(lines.Bytes(), v)
	}
	var connected struct {
		Seconds float64 `json:"seconds"`
	}
	if err := next("connected", &connected); err != nil {
		return fail("open the streams", err)
	}
	fmt.Fprintf(r.progress, "relay %s: %d streams open in %.1fs\n", r.shape.key, r.clients, connected.Seconds)
	sleep(ctx, r.settle)
	rssRaw, _ := residentBytes()
	debug.FreeOSMemory()
	rssAfter, _ := residentBytes()
	gAfter := runtime.NumGoroutine()
	if rssErr == nil {
		res.IdleBytes = float64(rssAfter-rssBefore) / float64(r.clients)
		res.RawIdleBytes = float64(rssRaw-rssBefore) / float64(r.clients)
	}
	res.IdleGoroutines = float64(gAfter-gBefore) / float64(r.clients)

	hub0, cpu0, t0 := s.api.RelayStats(), processCPU(), time.Now()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return fail("start the load", err)
	}
	if err := next("done", &res.Gen); err != nil {
		return fail("run the load", err)
	}
	res.ServerCPU, res.Wall = processCPU()-cpu0, time.Since(t0)
	hub1 := s.api.RelayStats()
	res.Hub = relay.HubStats{
		Streams: hub0.Streams, Frames: hub1.Frames - hub0.Frames, Writes: hub1.Writes - hub0.Writes,
		Slow: hub1.Slow - hub0.Slow, Overflows: hub1.Overflows - hub0.Overflows,
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("bench: %s: the load generator: %w; its stderr: %s", r.shape.key, err, strings.TrimSpace(stderr.String()))
	}
	res.GenCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	// Let the server see every stream go before the next shape.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > gBefore+16 && time.Now().Before(deadline); {
		sleep(ctx, 50*time.Millisecond)
	}
	return res, ctx.Err()
}

// measureRelay adds the relay figures to the report: RelayClients SSE
// clients in a separate process, first each entitled to every command (20
// commands/s), then each to its own only (1000 commands/s), with the
// latency from submitting a command to its frame at each entitled client
// and the resident memory of the server per idle stream.
func measureRelay(ctx context.Context, dir string, opts Options, rep *Report) error {
	return measureRelayProfiled(ctx, dir, opts, rep, "")
}

// measureRelayProfiled is measureRelay, with the generator's CPU profiles
// written to genProfile.SHAPE when it is set.
func measureRelayProfiled(ctx context.Context, dir string, opts Options, rep *Report, genProfile string) error {
	clients := opts.RelayClients
	if clients < 0 {
		return nil
	}
	if clients == 0 {
		clients = DefaultRelayClients
		if opts.Quick {
			clients = 100
		}
	}
	run := relayRun{clients: clients, genProfile: genProfile, duration: max(opts.Duration, 10*time.Second), warmup: 2 * time.Second, settle: 2 * time.Second, progress: opts.Progress}
	if opts.Quick {
		run.duration, run.warmup, run.settle = time.Second, 200*time.Millisecond, 100*time.Millisecond
	}
	if err := rlimit.RaiseFiles(clients + 1024); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("relay figures skipped: %v", err))
		return nil
	}
	fmt.Fprintln(opts.Progress, "relay: building the load generator…")
	exe, err := buildLoadGenerator(ctx, dir)
	if errors.Is(err, errNoGenerator) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("relay figures skipped: %v", err))
		return nil
	}
	if err != nil {
		return err
	}
	run.exe = exe
	s, err := startRelayServer(ctx, dir)
	if err != nil {
		return err
	}
	defer s.close()
	var results []RelayResult
	for _, shape := range relayShapes {
		run.shape = shape
		fmt.Fprintf(opts.Progress, "relay %s: %d clients, %g commands/s…\n", shape.key, clients, shape.rate)
		res, err := runRelayShape(ctx, s, run)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	addRelayRows(rep, results, opts.Quick)
	return nil
}

// addRelayRows turns the relay results into rows and notes.
func addRelayRows(rep *Report, results []RelayResult, quick bool) {
	for _, res := range results {
		g := res.Gen
		shape := relayShapeOf(res.Shape)
		rep.Rows = append(rep.Rows, Row{
			Key: res.Shape,
			Name: fmt.Sprintf("GET /stream, %d clients in another process, %s, %g commands/s: POST to each entitled frame (outcome and event)",
				res.Clients, shape.describe, res.Rate),
			Rate: g.FramesPerSec, Unit: "frames/s", Count: int(g.Frames),
			P50: seconds(g.P50), P99: seconds(g.P99),
			// The raw SSE server's POST to frame, one stream: what the
			// relay adds at this many streams, routing and auth.
			LatencyBaselines: []string{"sse-echo"},
		})
		verdict := "met"
		if seconds(g.P99) > relayP99Target || g.Exact != g.Clients || g.PostErrors > 0 || g.StreamErrors > 0 {
			verdict = "MISSED"
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: p99 %s, p99.9 %s, max %s (target p99 ≤ %s); %d of %d clients got exactly their frames (%d missing, %d not theirs, %d repeated); %d of %d commands acknowledged, %d stream errors; server CPU %.2f s/s, generator CPU %.1fs; hub: %d frames in %d writes, %d slow, %d overflows; a busy thread got %.0f%% of a CPU before: %s",
			res.Shape, formatLatency(seconds(g.P99)), formatLatency(seconds(g.P999)), formatLatency(seconds(g.Max)), relayP99Target,
			g.Exact, g.Clients, g.Missing, g.Foreign, g.Repeats, g.Acked, g.Commands, g.StreamErrors, res.ServerCPU.Seconds()/max(res.Wall.Seconds(), 1e-9), res.GenCPU.Seconds(), res.Hub.Frames, res.Hub.Writes, res.Hub.Slow, res.Hub.Overflows, 100*res.CPUShare, verdict))
	}
	if quick || len(results) == 0 {
		return // too few connections for the memory to mean anything
	}
	worst := results[0]
	for _, res := range results[1:] {
		if res.IdleBytes > worst.IdleBytes {
			worst = res
		}
	}
	if worst.IdleBytes <= 0 {
		return
	}
	rep.Rows = append(rep.Rows, Row{
		Key:  "relay-idle",
		Name: fmt.Sprintf("server resident memory per idle SSE connection (VmRSS delta over %d connections, %s, after returning freed memory; %.1f KiB before; %.2f goroutines each)", worst.Clients, worst.Shape, worst.RawIdleBytes/1024, worst.IdleGoroutines),
		Rate: worst.IdleBytes / 1024, Unit: "KiB/conn", Count: worst.Clients,
	})
	verdict := "met"
	if worst.IdleBytes > relayIdleTarget {
		verdict = "MISSED"
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("relay-idle: %.1f KiB per idle connection (target ≤ %d KiB) %s", worst.IdleBytes/1024, relayIdleTarget>>10, verdict))
}

func relayShapeOf(key string) relayShape {
	for _, s := range relayShapes {
		if s.key == key {
			return s
		}
	}
	return relayShape{key: key}
}

// cpuShare spins one goroutine for d and returns the share of a CPU the
// process got meanwhile: about 1 on an idle machine, less when other
// processes compete for it.
func cpuShare(ctx context.Context, d time.Duration) float64 {
	c0, t0 := processCPU(), time.Now()
	for x := 0; time.Since(t0) < d && ctx.Err() == nil; x++ {
		for i := 0; i < 10000; i++ {
			x ^= i
		}
	}
	return (processCPU() - c0).Seconds() / time.Since(t0).Seconds()
}

// residentBytes is the process's resident memory (VmRSS).
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("bench: read resident memory: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: parse VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("bench: no VmRSS in /proc/self/status")
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
