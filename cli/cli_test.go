package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/internal/syncbuf"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(orderdesk.App(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExitWithTwo(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"serve", "--no-such-flag"},
		{"forget", "--no-such-flag", "c1"},
		{"replay"},
		{"replay", "--view", "order"},
		{"replay", "--view", "orderList", "--aggregate", "order"},
		{"replay", "--view", "orderList", "--kafka", "127.0.0.1:9092", "--postgres", "postgres://127.0.0.1/test"},
		{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir()},
		{"serve", "--addr", "18303", "--data", t.TempDir()},
		{"serve", "--addr", "127.0.0.1", "--data", t.TempDir()},
		{"serve", "--data", ""},
		{"serve", "--jwt-audience", "orderdesk", "--addr", "127.0.0.1:0", "--data", t.TempDir()},
		{"serve", "--max-body", "0", "--data", t.TempDir()},
		{"serve", "--drain", "-1s", "--data", t.TempDir()},
		{"serve", "--shutdown-delay", "-5s", "--data", t.TempDir()},
		{"serve", "--synchronous", "bogus", "--data", filepath.Join(t.TempDir(), "never")},
		{"replay", "--view", "orderList", "--data", ""},
		{"inspect", "--synchronous", "sometimes", "--data", t.TempDir()},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, " help')") && !strings.Contains(stderr, " --help')") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message of one line pointing to the help", args, code, stderr)
		}
		if d := args[len(args)-1]; strings.HasSuffix(d, "never") {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%v: made %s before refusing the flags", args, d)
			}
		}
	}
	if _, _, stderr := runCLI(t, "replay", "--view", "nope"); !strings.Contains(stderr, "(its views: orderList, customerOrders)") {
		t.Errorf("replay --view nope: %q, want the views listed", stderr)
	}
	// help, and --help without a command, list the commands on stdout.
	for _, help := range []string{"help", "--help", "-h"} {
		if code, out, _ := runCLI(t, help); code != 0 || !strings.Contains(out, "replay") || !strings.Contains(out, "inspect") {
			t.Errorf("%s: exit %d, %q", help, code, out)
		}
	}
}

// TestEveryCommandPrintsItsUsageOnce: --help prints one Usage line, with
// the arguments the command takes after its flags.
func TestEveryCommandPrintsItsUsageOnce(t *testing.T) {
	for _, c := range commands {
		code, out, stderr := runCLI(t, c.name, "--help")
		if code != 0 || strings.Count(out, "Usage:") != 1 || !strings.HasPrefix(out, "Usage: plait "+c.name+" [flags]") || stderr != "" {
			t.Errorf("%s --help: exit %d, stdout:\n%s\nstderr:\n%s", c.name, code, out, stderr)
		}
	}
	if _, out, _ := runCLI(t, "forget", "--help"); !strings.HasPrefix(out, "Usage: plait forget [flags] SUBJECT\n") {
		t.Errorf("forget --help:\n%s", out)
	}
	// An application's own program names itself.
	var out, errOut bytes.Buffer
	named := func(p *program) { p.name = "casedesk" }
	if code := run(orderdesk.App(), []string{"replay", "--help"}, &out, &errOut, named); code != 0 || !strings.HasPrefix(out.String(), "Usage: casedesk replay [flags]") {
		t.Errorf("replay --help of casedesk: exit %d:\n%s", code, out.String())
	}
	if code := run(orderdesk.App(), []string{"bogus"}, &out, &errOut, named); code != 2 || !strings.HasPrefix(errOut.String(), "casedesk: unknown command \"bogus\" (see 'casedesk help')") {
		t.Errorf("bogus of casedesk: exit %d: %s", code, errOut.String())
	}
	// help COMMAND is COMMAND --help.
	// Flags are named as the docs write them, with two dashes.
	if code, out, _ := runCLI(t, "help", "serve"); code != 0 || !strings.HasPrefix(out, "Usage: plait serve [flags]") ||
		!strings.Contains(out, "\n  --addr host:port\n") || !strings.Contains(out, "\n  --data DIR\n") || strings.Contains(out, "\n  -addr") {
		t.Errorf("help serve: exit %d:\n%s", code, out)
	}
	if code, _, stderr := runCLI(t, "help", "bogus"); code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("help bogus: exit %d, %s", code, stderr)
	}
}

// TestCommandsOnAStoreCreateNone: inspect, replay and forget read or change
// a store that serve made; given a data directory that does not exist, or
// one without the application's store, they fail (exit 1) saying so and
// create nothing.
func TestCommandsOnAStoreCreateNone(t *testing.T) {
	missing, empty := filepath.Join(t.TempDir(), "nope"), t.TempDir()
	for _, dir := range []string{missing, empty} {
		for _, args := range [][]string{
			{"inspect"},
			{"replay", "--view", "orderList"},
			{"replay", "--aggregate", "customer"},
			{"forget", "c1"},
		} {
			args = append([]string{args[0], "--data", dir}, args[1:]...)
			code, out, stderr := runCLI(t, args...)
			want := "no data directory " + dir
			if dir == empty {
				want = "no store orderdesk.db in the data directory"
			}
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("%v: exit %d\n%s%s; want 1 and %q", args, code, out, stderr, want)
			}
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a missing data directory was created")
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("the empty data directory holds %v (%v)", entries, err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReplayGoesThroughTheRunningServer serves, places orders, rebuilds the
// view through the server (the data directory is locked by it), stops the
// server and rebuilds again offline, then inspects. serve creates the data
// directory.
func TestReplayGoesThroughTheRunningServer(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // serve creates it
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var serveOut, serveErr bytes.Buffer
	go func() {
		done <- runServe(ctx, program{app: orderdesk.App()}, []string{"--addr", addr, "--data", data, "--log-level", "warn"}, &serveOut, &serveErr)
	}()
	base := "http://" + addr
	waitHealthy(t, base)
	for _, id := range []string{"o1", "o2"} {
		body := `{"type":"order","aggregateId":"` + id + `","name":"place","data":{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}}`
		resp, err := http.Post(base+"/commands?wait=settled", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("place %s: %v %v", id, err, resp)
		}
		resp.Body.Close()
	}
	code, out, stderr := runCLI(t, "replay", "--view", "orderList", "--data", data)
	// Through the server or not, the progress reads alike, to its last line.
	if code != 0 || !strings.Contains(out, "rebuilding through "+base) || !strings.Contains(out, "2 instances") || !strings.Contains(out, "\ndone      orderList: position") {
		t.Fatalf("replay through the server: exit %d\n%s\n%s", code, out, stderr)
	}
	if code, _, _ := runCLI(t, "serve", "--addr", freeAddr(t), "--data", data); code != 1 {
		t.Errorf("a second server on the same data: exit %d, want 1", code)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, serveErr.String())
	}
	code, out, stderr = runCLI(t, "replay", "--view", "orderList", "--data", data)
	if code != 0 || strings.Contains(out, "through") || !strings.Contains(out, "2 instances") || !strings.Contains(out, "\ndone      orderList: position") {
		t.Fatalf("offline replay: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "inspect", "--data", data)
	if code != 0 || !strings.Contains(out, "reactor:orderListFeed") || !strings.Contains(out, "orderList") {
		t.Fatalf("inspect: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(data, "orderdesk.db")); err != nil {
		t.Fatal(err)
	}
}

// TestALockedDataDirectorySaysWhoHoldsIt: a server records its address in
// the lock; a process that holds it without one (an offline replay, a
// server starting) is named as such, and replay does not try to rebuild
// through an empty address.
func TestALockedDataDirectorySaysWhoHoldsIt(t *testing.T) {
	data := t.TempDir()
	sf := storeFlags{data: data, synchronous: "NORMAL"}
	if err := sf.withEngine(context.Background(), orderdesk.App(), io.Discard, func(*engine.Engine) error { return nil }); err != nil {
		t.Fatal(err)
	}
	lock, err := lockData(data, orderdesk.App().Name)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.release()
	code, _, stderr := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--data", data)
	if code != 1 || !strings.Contains(stderr, "in use by another plait process") {
		t.Fatalf("serve on a held directory: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "replay", "--view", "orderList", "--data", data)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "another plait process") || !strings.Contains(stderr, "try again once it is done") {
		t.Fatalf("replay on a held directory: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if err := lock.advertise("http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "serve", "--addr", "127.0.0.1:0", "--data", data)
	if code != 1 || !strings.Contains(stderr, "in use by a running server (http://127.0.0.1:1): stop it first") {
		t.Fatalf("serve on a served directory: exit %d, %s", code, stderr)
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":           "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":   "http://127.0.0.1:8080",
		"https://desk.example/app": "https://desk.example/app",
		"localhost:1":              "http://localhost:1",
	} {
		if got, err := serverURL(in); err != nil || got != want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://h:1", "http://", "h:1?x=1", "http://h:1/#f"} {
		if got, err := serverURL(bad); err == nil {
			t.Errorf("serverURL(%q) = %q, want a usage error", bad, got)
		}
	}
}

func TestRelativePathsReadAsPaths(t *testing.T) {
	for in, want := range map[string]string{
		"plait-data/orderdesk.db": "./plait-data/orderdesk.db",
		"./x/orderdesk.db":        "./x/orderdesk.db",
		"../x/orderdesk.db":       "../x/orderdesk.db",
		"/var/lib/plait/desk.db":  "/var/lib/plait/desk.db",
	} {
		if got := relative(in); got != want {
			t.Errorf("relative(%q) = %q, want %q", in, got, want)
		}
	}
}

// waitHealthy waits until the server at base answers /healthz, and fails t
// if it does not within 10 s.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server at %s did not start: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestALockClearsTheURLOfAKilledServer: a server killed before it released
// its lock left its URL in the file. The next holder (an offline replay or
// forget, or a server still opening its store) clears it, so no other
// command is sent to that dead address, or to whatever listens there now.
func TestALockClearsTheURLOfAKilledServer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "orderdesk.lock"), []byte("http://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := lockData(dir, "orderdesk")
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	_, err = lockData(dir, "orderdesk")
	if url, locked := lockedBy(err); !locked || url != "" {
		t.Fatalf("a second lock while the first is held: locked %v, told of a server at %q (%v)", locked, url, err)
	}
}

// TestServeTakesTheMetricsTokenFromTheEnvironment: $PLAIT_METRICS_TOKEN
// closes GET /metrics to requests without it; the API stays as it was.
func TestServeTakesTheMetricsTokenFromTheEnvironment(t *testing.T) {
	t.Setenv("PLAIT_METRICS_TOKEN", "scrape-secret")
	base, _ := serveInBackground(t, "--data", t.TempDir(), "--log-level", "warn")
	for _, tc := range []struct {
		authorization string
		status        int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"Bearer scrape-secret", http.StatusOK}} {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET /metrics with %q: %d, want %d", tc.authorization, resp.StatusCode, tc.status)
		}
	}
	if resp, err := http.Get(base + "/lists/orderList"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /lists/orderList: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
}

// TestServeHelpKeepsTheSecretsOfTheEnvironment: --help names the
// variables the secrets come from, never their values, which would end up
// in a terminal's scrollback, a CI log or a pasted ticket.
func TestServeHelpKeepsTheSecretsOfTheEnvironment(t *testing.T) {
	t.Setenv("PLAIT_JWT_SECRET", "jwt-secret-from-env")
	t.Setenv("PLAIT_METRICS_TOKEN", "metrics-token-from-env")
	code, help, _ := runCLI(t, "serve", "--help")
	if code != 0 || !strings.Contains(help, "$PLAIT_JWT_SECRET") || !strings.Contains(help, "$PLAIT_METRICS_TOKEN") {
		t.Fatalf("serve --help: exit %d\n%s", code, help)
	}
	for _, secret := range []string{"jwt-secret-from-env", "metrics-token-from-env"} {
		if strings.Contains(help, secret) {
			t.Errorf("serve --help prints %q", secret)
		}
	}
}

// TestLocalRolesAreForTheLocalUserOnly: with a token required, roles come
// from the token, and --local-roles is a mistake said at once.
func TestLocalRolesAreForTheLocalUserOnly(t *testing.T) {
	code, _, stderr := runCLI(t, "serve", "--jwt-secret", strings.Repeat("s", 32), "--local-roles", "dispatcher", "--addr", freeAddr(t), "--data", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "--local-roles") {
		t.Fatalf("serve --jwt-secret … --local-roles: exit %d, %q; want 2 naming the flag", code, stderr)
	}
	if _, help, _ := runCLI(t, "serve", "--help"); !strings.Contains(help, "--local-roles roles") {
		t.Fatalf("serve --help does not explain --local-roles:\n%s", help)
	}
}

// serveInBackground runs serve for orderdesk with args, on a free --addr,
// until the test ends: then it stops it, and fails the test if serve
// returned an error. It returns the server's base URL once /healthz
// answers, and the buffer serve logs to.
func serveInBackground(t *testing.T, args ...string) (base string, logs *syncbuf.Buffer) {
	t.Helper()
	base, logs, _ = serveUntilStopped(t, args...)
	return base, logs
}

// serveUntilStopped is serveInBackground until stop is called, or the
// test ends: stop returns once serve has.
func serveUntilStopped(t *testing.T, args ...string) (base string, logs *syncbuf.Buffer, stop func()) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs = &syncbuf.Buffer{}
	go func() {
		done <- runServe(ctx, program{app: orderdesk.App()}, append([]string{"--addr", addr}, args...), io.Discard, logs)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	})
	t.Cleanup(stop)
	base = "http://" + addr
	waitHealthy(t, base)
	return base, logs, stop
}

// listStatus is the status of GET /lists/orderList with the bearer tok.
func listStatus(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/lists/orderList", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestVersionSaysWhatTheProgramWasBuiltOf: version (and --version) name
// the application, its module and Go; an application's own module names
// Plait's version too, and a commit the go command recorded.
func TestVersionSaysWhatTheProgramWasBuiltOf(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, stderr := runCLI(t, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(out, "orderdesk: ") || !strings.HasSuffix(out, "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	if code, _, _ := runCLI(t, "version", "now"); code != 2 {
		t.Errorf("version now: exit %d, want 2", code)
	}
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "example.com/casedesk", Version: "v1.2.0"},
		Deps: []*debug.Module{{Path: "github.com/plaithq/plait", Version: "v0.9.0", Replace: &debug.Module{Path: "../plait"}}},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4ee21e2c"}, {Key: "vcs.time", Value: "2026-11-25T07:04:00Z"}, {Key: "vcs.modified", Value: "true"},
		},
	}
	want := "casedesk: example.com/casedesk v1.2.0, commit 4ee21e2c of 2026-11-25T07:04:00Z, with changes not committed\n" +
		"plait: github.com/plaithq/plait v0.9.0 replaced by ../plait\n" +
		"go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := versions("casedesk", bi); got != want {
		t.Errorf("versions:\n%s\nwant:\n%s", got, want)
	}
}

// TestFlagMistakesSayWhatTheFlagWants: a value of the wrong kind, or one
// the flag cannot mean, is refused saying what it wants, naming the flag
// as the docs do; nothing is made.
func TestFlagMistakesSayWhatTheFlagWants(t *testing.T) {
	if code, _, stderr := runCLI(t, "bench", "--quick=maybe"); code != 2 || !strings.Contains(stderr, `--quick "maybe": want true or false`) {
		t.Errorf("bench --quick=maybe: exit %d, stderr %q", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--drain", "soon"}, `--drain "soon": want a duration such as 10s`},
		{[]string{"--max-array", "many"}, `--max-array "many": want a whole number`},
		{[]string{"--rate-ip", "fast"}, `--rate-ip "fast": want a number`},
		{[]string{"--no-such-flag"}, `unknown flag --no-such-flag`},
		{[]string{"--max-array", "0"}, `--max-array 0: want at least 1, or -1 for no limit`},
		{[]string{"--max-string", "-5"}, `--max-string -5: want at least 1, or -1 for no limit`},
		{[]string{"--max-streams-per-user", "0"}, `--max-streams-per-user 0: want at least 1`},
		{[]string{"--max-requests-per-user", "-2"}, `--max-requests-per-user -2: want at least 1, or -1 for no limit`},
		{[]string{"--rate-user", "-3"}, `--rate-user -3: want requests per second, from 0`},
		{[]string{"--rate-ip", "NaN"}, `--rate-ip NaN: want requests per second`},
		{[]string{"--rate-ip-burst", "-1"}, `--rate-ip-burst -1: want a number from 0`},
		{[]string{"--max-conns-per-ip", "-1"}, `--max-conns-per-ip -1: want a number from 0`},
		{[]string{"--addr", "127.0.0.1:99999"}, `port 99999 is out of range`},
		{[]string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
	} {
		data := filepath.Join(t.TempDir(), "never")
		code, _, stderr := runCLI(t, append(append([]string{"serve"}, c.args...), "--data", data)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("serve %v: made %s before refusing the flags", c.args, data)
		}
	}
}

// TestStorageMistakesSayWhatIsWrong: a data directory that is a file, a
// store file that is no database and an address another server holds are
// refused saying so, not with the system's words alone.
func TestStorageMistakesSayWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "afile")
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(junk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "orderdesk.db"), bytes.Repeat([]byte("not a database "), 400), 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--addr", "127.0.0.1:0", "--data", file}, "--data " + file + ": a file stands where a directory should be"},
		{[]string{"inspect", "--data", file}, "--data " + file + " is a file"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--data", junk}, filepath.Join(junk, "orderdesk.db") + " is no SQLite database, or a damaged one"},
		{[]string{"inspect", "--data", junk}, "is no SQLite database, or a damaged one"},
		{[]string{"serve", "--addr", held.Addr().String(), "--data", filepath.Join(dir, "new")}, "another server listens there"},
	} {
		if code, _, stderr := runCLI(t, c.args...); code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", c.args, code, stderr, c.want)
		}
	}
}

// TestLimitsOfTheLocalUserOnlyWhenGiven: the caps per user reach the
// server with a token required, and for the single local user only when
// their flag is given.
func TestLimitsOfTheLocalUserOnlyWhenGiven(t *testing.T) {
	f := serveFlags{requests: 5, streams: 3}
	if o := f.limits(httpapi.Options{}); o.MaxRequestsPerUser != 0 || o.MaxStreamsPerUser != 0 {
		t.Errorf("the local user, no flag given: %d requests, %d streams; want no cap", o.MaxRequestsPerUser, o.MaxStreamsPerUser)
	}
	if o := f.limits(httpapi.Options{Auth: httpapi.NewHS256Auth([]byte("a secret of thirty-two bytes, ok"))}); o.MaxRequestsPerUser != 5 || o.MaxStreamsPerUser != 3 {
		t.Errorf("with a token required: %d requests, %d streams; want 5 and 3", o.MaxRequestsPerUser, o.MaxStreamsPerUser)
	}
	f.requestsSet, f.streamsSet = true, true
	if o := f.limits(httpapi.Options{}); o.MaxRequestsPerUser != 5 || o.MaxStreamsPerUser != 3 {
		t.Errorf("the local user, the flags given: %d requests, %d streams; want 5 and 3", o.MaxRequestsPerUser, o.MaxStreamsPerUser)
	}
}
