package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTheLoadGeneratorIsBuiltIntoARelativeDir: with a relative -dir, the
// generator was built under the source tree and then not found.
func TestTheLoadGeneratorIsBuiltIntoARelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("benchdir", 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := buildLoadGenerator(context.Background(), "benchdir")
	if errors.Is(err, errNoGenerator) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("benchdir", "sseload")); err != nil {
		t.Fatalf("built as %s, not in ./benchdir: %v", exe, err)
	}
	if out, err := exec.Command(exe, "-h").CombinedOutput(); err != nil && !strings.Contains(string(out), "Usage") {
		t.Fatalf("%s does not run: %v\n%s", exe, err, out)
	}
}

// TestRelayShapesDeliverExactly runs both relay shapes with a few hundred
// clients in a separate process and checks that every client received
// exactly the frames it is entitled to.
func TestRelayShapesDeliverExactly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	exe, err := buildLoadGenerator(ctx, dir)
	if errors.Is(err, errNoGenerator) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := startRelayServer(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, shape := range relayShapes {
		shape.rate = min(shape.rate, 200)
		res, err := runRelayShape(ctx, s, relayRun{
			exe: exe, shape: shape, clients: 300, duration: time.Second, warmup: 100 * time.Millisecond,
			settle: 10 * time.Millisecond, progress: testWriter{t},
		})
		if err != nil {
			t.Fatal(err)
		}
		g := res.Gen
		t.Logf("%s: %+v", shape.key, g)
		if g.Acked != g.Commands || g.Acked == 0 || g.Exact != g.Clients || g.Missing != 0 || g.Foreign != 0 || g.Repeats != 0 || g.StreamErrors != 0 {
			t.Errorf("%s: %+v: want every command acknowledged and every client exact", shape.key, g)
		}
		if shape.mode == "broadcast" && g.Outcomes != int64(g.Acked*g.Clients) {
			t.Errorf("%s: %d outcome frames, want %d", shape.key, g.Outcomes, g.Acked*g.Clients)
		}
		if shape.mode == "private" && (g.Outcomes != int64(g.Acked) || g.Events != int64(g.Acked)) {
			t.Errorf("%s: %d outcome and %d event frames, want %d of each", shape.key, g.Outcomes, g.Events, g.Acked)
		}
		if g.P50 <= 0 || g.P99 < g.P50 {
			t.Errorf("%s: p50 %v p99 %v", shape.key, g.P50, g.P99)
		}
	}
}

// TestRelayAtScale runs the relay figures at full scale; it runs only when
// asked:
//
//	PLAIT_BENCH_RELAY=10000 go test ./bench -run TestRelayAtScale -v -timeout 10m
//
// PLAIT_BENCH_DURATION sets how long commands are posted (default 10s);
// PLAIT_BENCH_CPUPROFILE names a file for the server's CPU profile,
// PLAIT_BENCH_GEN_CPUPROFILE a prefix for the load generator's.
func TestRelayAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PLAIT_BENCH_RELAY"))
	if n <= 0 {
		t.Skip("set PLAIT_BENCH_RELAY to a number of clients to run the relay figures")
	}
	d, _ := time.ParseDuration(os.Getenv("PLAIT_BENCH_DURATION"))
	if path := os.Getenv("PLAIT_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	rep := &Report{CPUs: runtime.NumCPU(), Duration: max(d, 10*time.Second), Dir: "(temporary)"}
	opts := Options{RelayClients: n, Duration: d, Progress: os.Stderr}
	if err := measureRelayProfiled(context.Background(), t.TempDir(), opts, rep, os.Getenv("PLAIT_BENCH_GEN_CPUPROFILE")); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}

// testWriter writes to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
