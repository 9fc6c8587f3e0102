//go:build linux

package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
)

// The fault tests inject a storage fault into a running engine on the
// embedded store, keep submitting through it, lift it, and then check the
// invariants on the file (checkCrashInvariants, checkTalliesConverged and
// PRAGMA integrity_check):
//
//   - while the fault lasts, a command that cannot be committed gets a
//     clear error (over HTTP, a 503 problem) and is not acknowledged, and
//     no outcome of it is stored;
//   - every acknowledged command has exactly one outcome, the one it was
//     acknowledged with; no event is stored twice; positions and every
//     instance's seqs are gap-free;
//   - once the fault is lifted the engine goes on without a restart, and
//     the commands that failed, submitted again, each get one outcome.
//
// The faults: the database may not grow (SQLite's max_page_count on the
// writer connection), a real full disk (a 1 MiB tmpfs, when this process may
// mount one), a read-only data directory and files (chattr +i, which holds
// even for root, when the file system supports it), and a clock that jumps
// back and forth.

// faultCommand is crashCommand, except that half the commands are labels
// of 2 KiB, so that the database grows quickly.
func faultCommand(id string) plait.Command {
	cmd := crashCommand(id)
	h := fnv.New32a()
	h.Write([]byte(id))
	if h.Sum32()%2 == 0 {
		cmd.Name, cmd.ExpectedSeq = "label", nil
		cmd.Data = json.RawMessage(fmt.Sprintf(`{"label":%q}`, strings.Repeat(id+" ", 2048/(len(id)+1))))
	}
	return cmd
}

// faultRun is an engine on a store file, with an HTTP server over it, and
// the record of what was submitted.
type faultRun struct {
	t      *testing.T
	path   string
	st     *sqlite.Store
	e      *engine.Engine
	api    *httptest.Server
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	acked  map[string]string // id → outcome summary
	failed map[string]error  // ids whose Submit failed, not yet acknowledged
}

func startFault(t *testing.T, path string, opts engine.Options) *faultRun {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Partitions = 4
	opts.Logger = slog.New(slog.DiscardHandler)
	e, err := engine.New(enginetest.App(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &faultRun{t: t, path: path, st: st, e: e, cancel: cancel, done: make(chan error, 1),
		acked: map[string]string{}, failed: map[string]error{}}
	go func() { f.done <- e.Run(ctx) }()
	<-e.Ready()
	f.api = httptest.NewServer(httpapi.New(e, httpapi.Options{Logger: opts.Logger}))
	t.Cleanup(f.stop)
	return f
}

// stop stops the server and the engine and closes the store; it may be
// called more than once.
func (f *faultRun) stop() {
	if f.cancel == nil {
		return
	}
	f.api.Close()
	f.cancel()
	<-f.done
	f.st.Close()
	f.cancel = nil
}

// submit submits one command and records the result.
func (f *faultRun) submit(id string) error {
	rec, err := f.e.Submit(context.Background(), faultCommand(id), crashUser)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if _, ok := f.acked[id]; !ok {
			f.failed[id] = err
		}
		return err
	}
	sum := outcomeSummary(*rec.Outcome)
	if prev, ok := f.acked[id]; ok && prev != sum {
		f.t.Errorf("%s acknowledged as %s and as %s", id, prev, sum)
	}
	f.acked[id] = sum
	delete(f.failed, id)
	return nil
}

// load submits the ids from 8 goroutines and returns the errors.
func (f *faultRun) load(ids []string) []error {
	var mu sync.Mutex
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				if err := f.submit(ids[i]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// failedIDs returns the ids not acknowledged, and checks that none of
// them has an outcome in the store: a command that failed was not applied.
func (f *faultRun) failedIDs() []string {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.failed {
		if _, ok, err := f.st.Outcome(context.Background(), id); err != nil || ok {
			f.t.Errorf("command %s failed (%v) yet has an outcome (%v, %v)", id, f.failed[id], ok, err)
		}
		out = append(out, id)
	}
	return out
}

// postProblem posts one command over HTTP and returns the status and the
// problem's detail.
func (f *faultRun) postProblem(id string) (int, string, string) {
	c := faultCommand(id)
	body, _ := json.Marshal(map[string]any{"id": c.ID, "type": c.Type, "aggregateId": c.AggregateID, "name": c.Name, "data": c.Data, "expectedSeq": c.ExpectedSeq})
	resp, err := http.Post(f.api.URL+"/commands", "application/json", strings.NewReader(string(body)))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct{ Detail, ID string }
	json.Unmarshal(b, &p)
	if resp.StatusCode == http.StatusServiceUnavailable && p.ID != id {
		f.t.Errorf("POST %s answered 503 with id %q: a client must learn which id to send again", id, p.ID)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), p.Detail
}

// settle waits until the reactor has consumed the whole feed.
func (f *faultRun) settle() {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := f.e.Stats()
		caught := true
		for _, s := range st.Subscriptions {
			caught = caught && s.Position == st.Head
		}
		if caught {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("the reactor did not catch up: %+v", f.e.Stats())
}

// check stops everything and checks the invariants on the file.
func (f *faultRun) check() {
	f.t.Helper()
	f.settle()
	f.stop()
	f.mu.Lock()
	acked := f.acked
	f.mu.Unlock()
	checkCrashInvariants(f.t, f.path, acked)
	checkTalliesConverged(f.t, f.path)
	checkIntegrity(f.t, f.path)
}

func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	var res string
	if err := openRaw(t, path).QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

// duringFault checks, while a fault lasts, that commands fail with a clear
// error and that the HTTP API answers 503, and returns how many failed.
// Every error is a failed commit; at least one names the cause (the others
// were decided on top of a failed batch and say so).
func (f *faultRun) duringFault(prefix string, n int, clue string) int {
	f.t.Helper()
	errs := f.load(ids(prefix, n))
	if len(errs) == 0 {
		f.t.Fatalf("%d commands went through the fault", n)
	}
	named := 0
	for _, err := range errs {
		if !strings.HasPrefix(err.Error(), "commit: ") {
			f.t.Errorf("not a failed commit: %v", err)
		}
		if strings.Contains(err.Error(), clue) {
			named++
		}
	}
	if named == 0 {
		f.t.Errorf("no error says %q; the first: %v", clue, errs[0])
	} else {
		f.t.Logf("during the fault: %d of %d commands failed, %d naming the cause: %v", len(errs), n, named, firstWith(errs, clue))
	}
	// On a real full disk a small commit can still fit in WAL space a
	// failed batch left behind, so a POST may be acknowledged: then it is
	// held to what every acknowledged command is held to. Posting goes on
	// until one is refused, which must be a clear 503.
	refused := false
	for i := 0; i < 20 && !refused; i++ {
		id := fmt.Sprintf("%s-http-%d", prefix, i)
		status, ct, detail := f.postProblem(id)
		switch {
		case status == http.StatusAccepted:
			// Submitting again reads the stored outcome and records it.
			if err := f.submit(id); err != nil {
				f.t.Errorf("POST %s was acknowledged, yet its outcome cannot be read: %v", id, err)
			}
		case status == http.StatusServiceUnavailable && ct == "application/problem+json" && detail == "the command is not acknowledged: it may be stored; send it again with the same id, "+id+", for its one outcome":
			refused = true
			f.mu.Lock()
			f.failed[id] = errors.New(detail) // checked and submitted again with the others
			f.mu.Unlock()
		default:
			f.t.Errorf("POST /commands during the fault: %d %s %q", status, ct, detail)
			return len(errs)
		}
	}
	if !refused {
		f.t.Errorf("20 POSTs during the fault were all acknowledged")
	}
	// Reads go on.
	if _, err := f.e.Load(context.Background(), "counter", "n1"); err != nil {
		f.t.Errorf("a read during the fault: %v", err)
	}
	return len(errs)
}

func firstWith(errs []error, clue string) error {
	for _, err := range errs {
		if strings.Contains(err.Error(), clue) {
			return err
		}
	}
	return nil
}

// afterFault checks that the engine works again: new commands and the ones
// that failed, submitted again, are all acknowledged.
func (f *faultRun) afterFault(prefix string) {
	f.t.Helper()
	failed := f.failedIDs()
	if errs := f.load(append(ids(prefix, 50), failed...)); len(errs) > 0 {
		f.t.Fatalf("%d commands failed after the fault was lifted: %v", len(errs), errs[0])
	}
	f.t.Logf("after the fault: %d failed commands submitted again, all acknowledged", len(failed))
}

func TestDiskFullMaxPageCount(t *testing.T) {
	ctx := context.Background()
	f := startFault(t, filepath.Join(t.TempDir(), "plait.db"), engine.Options{})
	if errs := f.load(ids("before", 100)); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	pages, err := f.st.WriterPragma(ctx, "page_count")
	if err != nil {
		t.Fatal(err)
	}
	// The database may not grow by a page: full.
	if _, err := f.st.WriterPragma(ctx, fmt.Sprintf("max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	n := f.duringFault("full", 150, "full")
	t.Logf("database held at %d pages: %d of 150 commands failed", pages, n)
	if _, err := f.st.WriterPragma(ctx, "max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	f.afterFault("after")
	f.check()
}

func TestDiskFullTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): the max_page_count test stands in", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "plait.db")
	f := startFault(t, path, engine.Options{})
	// Fill the disk: the file and its WAL grow until a write fails.
	var failures int
	for round := 0; failures == 0 && round < 20; round++ {
		failures = len(f.load(ids(fmt.Sprintf("fill%d", round), 100)))
	}
	if failures == 0 {
		t.Fatal("a 1 MiB disk never filled")
	}
	f.duringFault("full", 100, "full")
	// Space returns.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	f.afterFault("after")
	f.check()
}

// chattr sets or clears the immutable attribute of the paths.
func chattr(flag string, paths ...string) error {
	out, err := exec.Command("chattr", append([]string{flag}, paths...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chattr %s: %v: %s", flag, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func TestReadOnlyDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A store cannot be made in a read-only directory: a clear error at
	// Open, not later.
	if err := chattr("+i", dir); err != nil {
		t.Skipf("no immutable attribute here (%v)", err)
	}
	_, err := sqlite.Open(context.Background(), filepath.Join(dir, "plait.db"), sqlite.Options{})
	if err2 := chattr("-i", dir); err2 != nil {
		t.Fatal(err2)
	}
	if err == nil {
		t.Fatal("opened a new store in a read-only directory")
	}
	t.Logf("open in a read-only directory: %v", err)

	path := filepath.Join(dir, "plait.db")
	f := startFault(t, path, engine.Options{})
	if errs := f.load(ids("before", 100)); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// The directory and the files become read-only under the running
	// engine; the immutable attribute holds even for root, and even for
	// files already open for writing.
	locked := []string{dir, path, path + "-wal"}
	if err := chattr("+i", locked...); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if err := chattr("-i", locked...); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(unlock)
	f.duringFault("readonly", 100, "disk I/O error")
	unlock()
	f.afterFault("after")
	f.check()
}

// TestClockJumps runs the engine with a clock that jumps years back and
// forth between commands, and across a restart: positions and seqs stay
// gap-free and ordered, nothing is lost, and the times stamped on the
// commands are the clock's, however wrong.
func TestClockJumps(t *testing.T) {
	base := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	offsets := []time.Duration{0, -time.Hour, 24 * time.Hour, -10 * 365 * 24 * time.Hour, time.Second, 30 * 365 * 24 * time.Hour, -time.Nanosecond}
	var tick atomic.Int64
	clock := func() time.Time {
		return base.Add(offsets[int(tick.Add(1))%len(offsets)])
	}
	path := filepath.Join(t.TempDir(), "plait.db")
	f := startFault(t, path, engine.Options{Clock: clock})
	if errs := f.load(ids("jump", 200)); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	f.settle()
	f.stop()
	acked := f.acked
	// Restart with the clock turned back twenty years.
	past := func() time.Time { return base.Add(-20 * 365 * 24 * time.Hour) }
	g := startFault(t, path, engine.Options{Clock: past})
	g.acked = acked
	if errs := g.load(ids("past", 50)); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// The stamps are the clock's: years apart, out of order.
	var minAt, maxAt string
	if err := openRaw(t, path).QueryRow(`SELECT min(json_extract(body, '$.at')), max(json_extract(body, '$.at')) FROM commands`).Scan(&minAt, &maxAt); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(minAt, "2010") || !strings.HasPrefix(maxAt, "2060") {
		t.Errorf("command times from %s to %s: the clock was not used", minAt, maxAt)
	}
	g.check()
}

// TestOpeningOnAFullDiskSaysTheDiskIsFull: SQLite, which cannot create a
// stopped store's shared-memory file on a full disk, says "disk I/O
// error"; Open adds that the disk is full.
func TestOpeningOnAFullDiskSaysTheDiskIsFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "plait.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Fill the disk.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	filler.Close()
	_, err = sqlite.Open(context.Background(), path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "the file system of "+dir+" is full") {
		t.Fatalf("Open on a full disk: %v, want it to say the disk is full", err)
	}
}

// TestANewStoreIsItsOwnersOnly: the file holds the application's data,
// personal data among them, and the keys that seal it, so a new store's
// directory and files are readable by their owner only. A file that
// exists keeps the mode it has.
func TestANewStoreIsItsOwnersOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "plait.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read it", p, fi.Mode().Perm())
		}
	}

	shared := filepath.Join(t.TempDir(), "shared.db")
	if err := os.WriteFile(shared, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	st2, err := sqlite.Open(context.Background(), shared, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("an existing file's mode changed: %v %v", fi.Mode(), err)
	}
}
