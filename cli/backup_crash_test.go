package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plaithq/plait/store/sqlite"
)

// storeState is what a crash test reads of a store: the position of its
// log's last item and whether it holds a given command.
type storeState struct {
	head   int64 // the last item's position (a restored store's Head is the one before it)
	marker bool  // holds the command marked: one acknowledged after the backup
}

// readStore opens the store in the file at path read-only, as plait does,
// reads its log's last position and whether it holds the command of id
// marker, and with check, checks it (PRAGMA quick_check). A store that
// does not open, or is not sound, is an error.
func readStore(ctx context.Context, path, marker string, check bool) (storeState, error) {
	st, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		return storeState{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer st.Close()
	_, found, err := st.Outcome(ctx, marker)
	if err != nil {
		return storeState{}, fmt.Errorf("read %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return storeState{}, err
	}
	defer db.Close()
	var head int64
	err = db.QueryRowContext(ctx, `SELECT max(coalesce((SELECT max(pos) FROM events), 0), coalesce((SELECT max(pos) FROM commands), 0))`).Scan(&head)
	if err != nil {
		return storeState{}, fmt.Errorf("the last position of %s: %w", path, err)
	}
	if !check {
		return storeState{head: head, marker: found}, nil
	}
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&verdict); err != nil || verdict != "ok" {
		return storeState{}, fmt.Errorf("quick_check of %s: %q %v", path, verdict, err)
	}
	return storeState{head: head, marker: found}, nil
}

// runKilled runs the plait binary with args and kills it with SIGKILL
// after delay, unless it is done before. It reports whether the kill
// came first, how long the process ran, and its output.
func runKilled(t *testing.T, bin string, delay time.Duration, args ...string) (killed bool, ran time.Duration, out string) {
	t.Helper()
	start := time.Now()
	var buf bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("plait %s: %v\n%s", strings.Join(args, " "), err, buf.String())
		}
		return false, time.Since(start), buf.String()
	case <-time.After(delay):
		cmd.Process.Kill()
		<-done
		// A process that exited just before the kill is not killed.
		return cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled(), time.Since(start), buf.String()
	}
}

// timed runs the plait binary with args to its end, and returns how long
// it took.
func timed(t *testing.T, bin string, args ...string) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("plait %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(start), string(out)
}

// killDelay spreads n kills over a run that takes about d: kill i lands in
// the i-th of n slices of it, at a random point, the last slice
// stretching a little past d. On a loaded machine a run's time varies:
// d is the shortest seen, so that kills land in the run rather than after.
func killDelay(rng *mrand.Rand, i, n int, d time.Duration) time.Duration {
	span := d + d/10
	return time.Duration((float64(i) + rng.Float64()) / float64(n) * float64(span))
}

// TestSIGKILLDuringBackupAndRestore kills `plait backup` and `plait
// restore` processes with SIGKILL at random moments, a few times each,
// over a store large enough that each runs for tens of milliseconds.
//
// A backup killed leaves no file at its destination, or a whole, sound
// backup, never a part of one; the store it was reading, served
// meanwhile by a server taking commands, is unharmed: every command
// acknowledged is in it, and it is sound.
//
// A restore killed always leaves a store at the store's name that opens
// and is sound, holding either the store it was replacing or the backup;
// the store replaced is never lost: it is at its name, or whole at a
// .replaced-* name beside it. A restore run again then succeeds, and a
// server started on the directory serves the backup's data.
func TestSIGKILLDuringBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	bin := buildPlait(t)
	data := t.TempDir()
	store := filepath.Join(data, "orderdesk.db")
	backups := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)

	// A store of a few hundred orders, each with lines of long skus: a
	// few megabytes, which a backup or a restore takes tens of
	// milliseconds to copy.
	in := startInstance(t, bin, "serve", "--data", data, "--synchronous", "NORMAL", "--log-level", "warn")
	if st, err := postCommand(in.base, map[string]any{"id": "in-both", "type": "customer", "aggregateId": "c1", "name": "create",
		"data": map[string]any{"name": "Ann", "email": "ann@example.com"}}, true); err != nil || st != "accepted" {
		t.Fatalf("create c1: %q %v", st, err)
	}
	start := time.Now()
	const orders, workers = 200, 8
	sku := strings.Repeat("0123456789abcdef", 24)
	var wg sync.WaitGroup
	var populateErr atomic.Value
	for w := range workers {
		wg.Go(func() {
			for n := w; n < orders; n += workers {
				lines := make([]map[string]any, 8)
				for i := range lines {
					lines[i] = map[string]any{"sku": fmt.Sprintf("%s-%d-%d", sku, n, i), "qty": 1 + i, "price": 2.5}
				}
				cmd := map[string]any{"id": fmt.Sprintf("fill-%d", n), "type": "order", "aggregateId": fmt.Sprintf("o%d", n),
					"name": "place", "data": map[string]any{"customerId": "c1", "lines": lines}}
				if _, err := postCommand(in.base, cmd, false); err != nil {
					populateErr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := populateErr.Load().(error); ok {
		t.Fatal(err)
	}
	t.Logf("%d orders placed in %v", orders, time.Since(start))

	// A writer goes on posting commands while the backups run: each one
	// acknowledged must be in the store at the end.
	var (
		stopWriter atomic.Bool
		writerDone = make(chan struct{})
		ackedMu    sync.Mutex
		acked      []string
	)
	t.Cleanup(func() { stopWriter.Store(true); <-writerDone })
	go func() {
		defer close(writerDone)
		for n := 0; !stopWriter.Load(); n++ {
			cmd := crashCommand(0, 0, n)
			cmd["id"] = fmt.Sprintf("live-%d", n)
			if _, err := postCommand(in.base, cmd, false); err != nil {
				t.Errorf("post %s while backing up: %v", cmd["id"], err)
				return
			}
			ackedMu.Lock()
			acked = append(acked, cmd["id"].(string))
			ackedMu.Unlock()
		}
	}()

	// One backup run to its end: how long a backup takes, and the
	// backup the restores put back.
	full := filepath.Join(backups, "full.db")
	took, out := timed(t, bin, "backup", "--data", data, "--to", full)
	fullState, err := readStore(ctx, full, "marker", true)
	if err != nil {
		t.Fatalf("the backup run to its end: %v", err)
	}
	st, _ := os.Stat(full)
	t.Logf("a backup of %d bytes, log head %d, takes %v: %s", st.Size(), fullState.head, took, strings.TrimSpace(out))

	const backupKills = 5
	killedBackups, whole := 0, 0
	for i := range backupKills {
		to := filepath.Join(backups, fmt.Sprintf("b%d.db", i))
		delay := killDelay(rng, i, backupKills, took)
		killed, ran, out := runKilled(t, bin, delay, "backup", "--data", data, "--to", to)
		t.Logf("backup %d: killed %v after %v", i, killed, delay)
		if killed {
			killedBackups++
		} else if !strings.Contains(out, "backed up") {
			t.Errorf("backup %d not killed, but said: %s", i, out)
		} else {
			took = min(took, ran)
		}
		if _, err := os.Lstat(to); os.IsNotExist(err) {
			if !killed {
				t.Errorf("backup %d ran to its end, and left no file at %s", i, to)
			}
			continue
		}
		s, err := readStore(ctx, to, "marker", true)
		if err != nil {
			t.Errorf("backup %d killed after %v left a file at its destination that is no whole backup: %v", i, delay, err)
			continue
		}
		if s.head < fullState.head {
			t.Errorf("backup %d has log head %d, before the head %d of an earlier backup", i, s.head, fullState.head)
		}
		whole++
	}
	partials, _ := filepath.Glob(filepath.Join(backups, "*.partial-*[0-9]")) // not their journals
	t.Logf("%d of %d backups killed; %d left a whole backup at their destination, %d a .partial-* file beside it (each backup removes those before it)",
		killedBackups, backupKills, whole, len(partials))
	// The next backup into the directory removes what the killed ones
	// left, journals included.
	if _, out := timed(t, bin, "backup", "--data", data, "--to", filepath.Join(backups, "after-kills.db")); !strings.Contains(out, "backed up") {
		t.Errorf("a backup after the killed ones: %s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(backups, "*.partial-*")); len(left) > 0 {
		t.Errorf("partial copies left after a backup ran to its end: %v", left)
	}

	// The command that tells the store replaced from the backup: in it
	// only.
	if st, err := postCommand(in.base, map[string]any{"id": "marker", "type": "customer", "aggregateId": "c2", "name": "create",
		"data": map[string]any{"name": "Bob", "email": "bob@example.com"}}, true); err != nil || st != "accepted" {
		t.Fatalf("marker: %q %v", st, err)
	}
	stopWriter.Store(true)
	<-writerDone
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
	// The live store is unharmed: sound, and every command acknowledged
	// is in it.
	ackedMu.Lock()
	ids := append([]string{"in-both", "marker"}, acked...)
	ackedMu.Unlock()
	oldState, err := readStore(ctx, store, "marker", true)
	if err != nil || !oldState.marker {
		t.Fatalf("the live store after the backups killed: %+v %v", oldState, err)
	}
	checkAcked(t, store, ids)
	t.Logf("%d commands acknowledged while backups ran and were killed, all in the store", len(ids)-2)
	if oldState.head <= fullState.head || fullState.marker {
		t.Fatalf("the store (head %d) is no later state of the backup (head %d, marker %v)", oldState.head, fullState.head, fullState.marker)
	}

	// The store to replace, kept to be put back before each restore.
	pristine := filepath.Join(t.TempDir(), "pristine.db")
	copyStore(t, store, pristine)
	reset := func() {
		t.Helper()
		entries, err := os.ReadDir(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "orderdesk.db") {
				if err := os.Remove(filepath.Join(data, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		copyStore(t, pristine, store)
	}
	// replaced returns the states of the stores at .replaced-* names,
	// checked with check.
	replaced := func(check bool) (names []string, states []storeState) {
		t.Helper()
		matches, _ := filepath.Glob(store + ".replaced-*")
		for _, m := range matches {
			if strings.HasSuffix(m, "-wal") || strings.HasSuffix(m, "-shm") {
				continue
			}
			s, err := readStore(ctx, m, "marker", check)
			if err != nil {
				t.Errorf("the store moved aside to %s: %v", m, err)
				continue
			}
			names, states = append(names, m), append(states, s)
		}
		return names, states
	}
	// oldKept fails the test unless the store replaced is at one of the
	// .replaced-* names, whole when checked with check.
	oldKept := func(when string, check bool) {
		t.Helper()
		names, states := replaced(check)
		for _, s := range states {
			if s == oldState {
				return
			}
		}
		t.Errorf("%s: the store replaced (head %d, with the marker) is nowhere: at .replaced-* names %v are %+v", when, oldState.head, names, states)
	}

	reset()
	took, out = timed(t, bin, "restore", "--data", data, "--from", full)
	t.Logf("a restore takes %v: %s", took, strings.SplitN(out, "\n", 2)[0])
	const restoreKills = 5
	killedRestores, swapped := 0, 0
	for i := range restoreKills {
		reset()
		delay := killDelay(rng, i, restoreKills, took)
		killed, ran, out := runKilled(t, bin, delay, "restore", "--data", data, "--from", full)
		t.Logf("restore %d: killed %v after %v", i, killed, delay)
		if killed {
			killedRestores++
		} else if !strings.Contains(out, "restored") {
			t.Errorf("restore %d not killed, but said: %s", i, out)
		} else {
			took = min(took, ran)
		}
		s, err := readStore(ctx, store, "marker", true)
		switch {
		case err != nil:
			t.Errorf("restore %d killed after %v: no sound store at the store's name: %v", i, delay, err)
		case s == oldState:
			// The store replaced is still in its place.
		case s == fullState:
			swapped++
			oldKept(fmt.Sprintf("restore %d killed after %v", i, delay), true)
		default:
			t.Errorf("restore %d killed after %v left a store with head %d (marker %v): neither the store replaced (head %d) nor the backup (head %d)",
				i, delay, s.head, s.marker, oldState.head, fullState.head)
		}
		// Restoring again, to the end, puts the backup in place.
		if took, out := timed(t, bin, "restore", "--data", data, "--from", full); !strings.Contains(out, "restored") {
			t.Errorf("restore %d run again: %s", i, out)
		} else {
			t.Logf("restore %d run again in %v", i, took)
		}
		// Checked whole above (a restore checks the copy it puts in
		// place): the head and the marker tell which store is where.
		if s, err := readStore(ctx, store, "marker", false); err != nil || s != fullState {
			t.Errorf("restore %d run again: the store is %+v (%v), want the backup's %+v", i, s, err, fullState)
		}
		// New commits take positions after those the replaced store gave.
		if st, err := sqlite.Open(ctx, store, sqlite.Options{ReadOnly: true}); err != nil {
			t.Error(err)
		} else {
			if head, err := st.Head(ctx); err != nil || head != oldState.head {
				t.Errorf("restore %d run again: head %d (%v), want %d, the last position the replaced store gave", i, head, err, oldState.head)
			}
			st.Close()
		}
		oldKept(fmt.Sprintf("restore %d run again", i), false)
		if t.Failed() {
			break
		}
	}
	t.Logf("%d of %d restores killed; %d had put the backup in place", killedRestores, restoreKills, swapped)

	// A server on the directory serves the backup's data.
	in = startInstance(t, bin, "serve-restored", "--data", data, "--log-level", "warn")
	if got, err := commandStatus(in.base, "in-both"); err != nil || got != "accepted" {
		t.Errorf("a command of the backup, served after the restore: %q %v", got, err)
	}
	if got, err := commandStatus(in.base, "marker"); err != nil || got != "unknown" {
		t.Errorf("a command after the backup, served after the restore: %q %v", got, err)
	}
	if st, err := postCommand(in.base, map[string]any{"id": "after-restore", "type": "customer", "aggregateId": "c3", "name": "create",
		"data": map[string]any{"name": "Cy", "email": "cy@example.com"}}, true); err != nil || st != "accepted" {
		t.Errorf("a command after the restore: %q %v", st, err)
	}
}

// checkAcked fails the test unless each command of ids has an outcome in
// the store in the file at path.
func checkAcked(t *testing.T, path string, ids []string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	known, err := st.KnownCommands(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !known[id] {
			t.Errorf("acknowledged command %s is not in the store", id)
		}
	}
}

// copyStore copies the files of a stopped store, its write-ahead log
// included if it has one, to new files at to.
func copyStore(t *testing.T, from, to string) {
	t.Helper()
	copyFile(t, from, to)
	if _, err := os.Stat(from + "-wal"); err == nil {
		copyFile(t, from+"-wal", to+"-wal")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
