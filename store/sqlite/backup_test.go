package sqlite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestBackupWhileCommandsCommitIsConsistent: a backup taken while
// submitters commit holds every command it holds whole: each counter's
// state and seq are what its events in the backup make, every accepted
// outcome has its event, and its head is its log's last position.
func TestBackupWhileCommandsCommitIsConsistent(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	defer st.Close()
	e, err := engine.New(enginetest.App(), st, engine.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := plait.Command{Type: "counter", AggregateID: fmt.Sprintf("c%d", (w*7+i)%20), Name: "add", Data: []byte(fmt.Sprintf(`{"by":%d}`, 1+i%3))}
				if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		})
	}
	for sent.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	to := filepath.Join(dir, "backups", "b1.db")
	info, err := sqlite.Backup(ctx, path, to)
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if fi, err := os.Stat(to); err != nil || fi.Size() != info.Bytes || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup's file: %v %v (info %+v)", fi, err, info)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "backups", "*partial*")); len(left) > 0 {
		t.Errorf("files left beside the backup: %v", left)
	}
	b, err := sqlite.Open(ctx, to, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkWhole(t, b, info.Head)
	if head, _ := st.Head(ctx); info.Head <= 0 || info.Head >= head {
		t.Errorf("the backup's head %d is not within the commits (live head %d): not taken while they committed", info.Head, head)
	}
}

// checkWhole checks that every command the store holds is there whole,
// and that its log ends at head.
func checkWhole(t *testing.T, st *sqlite.Store, head int64) {
	t.Helper()
	ctx := context.Background()
	sums, seqs := map[string]int{}, map[string]int64{}
	accepted, events, last := 0, 0, int64(0)
	for after := int64(0); ; {
		items, err := st.ReadFeed(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			switch {
			case it.Event != nil && it.Event.Type == "counter":
				var a enginetest.Added
				if err := json.Unmarshal(it.Event.Data, &a); err != nil {
					t.Fatal(err)
				}
				sums[it.Event.AggregateID] += a.By
				seqs[it.Event.AggregateID] = it.Event.Seq
				events++
			case it.Outcome != nil && it.Outcome.Command.Type == "counter" && it.Outcome.Status == plait.StatusAccepted:
				accepted++
			}
			after, last = it.Position, it.Position
		}
	}
	if last != head || accepted == 0 || accepted != events {
		t.Fatalf("the log ends at %d (head %d), %d accepted adds, %d events", last, head, accepted, events)
	}
	for id, sum := range sums {
		in, err := st.Load(ctx, "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		var c enginetest.Counter
		if err := json.Unmarshal(in.State, &c); err != nil {
			t.Fatal(err)
		}
		if c.Count != sum || in.Seq != seqs[id] {
			t.Errorf("counter %s: count %d at seq %d, its events sum %d to seq %d", id, c.Count, in.Seq, sum, seqs[id])
		}
	}
}

// TestBackupRefusesWhatItCannotDo: a destination that exists is left as
// it is, and a file that is not a store is not backed up; neither leaves
// a file behind.
func TestBackupRefusesWhatItCannotDo(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	st.Close()
	there := filepath.Join(dir, "there.db")
	os.WriteFile(there, []byte("mine"), 0o600)
	if _, err := sqlite.Backup(ctx, path, there); !errors.Is(err, sqlite.ErrExists) {
		t.Errorf("over an existing file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(there); string(b) != "mine" {
		t.Errorf("the existing file now holds %q", b)
	}
	if _, err := sqlite.Backup(ctx, there, filepath.Join(dir, "b.db")); !errors.Is(err, sqlite.ErrNoStore) {
		t.Errorf("a file that is not a store: %v, want ErrNoStore", err)
	}
	if _, err := sqlite.Backup(ctx, filepath.Join(dir, "none.db"), filepath.Join(dir, "b.db")); !errors.Is(err, sqlite.ErrNoStore) {
		t.Errorf("no store: %v, want ErrNoStore", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[live.db there.db]" {
		t.Errorf("the directory holds %v, want [live.db there.db]", names)
	}
}

// TestRestoreReplacesTheStoreAndKeepsItsForgets: a restore puts the
// backup's log in the store's place and the replaced store aside, whole;
// the subjects forgotten since the backup stay forgotten (their keys, or
// their older keys, are destroyed in the restored store), and the others
// keep their keys.
func TestRestoreReplacesTheStoreAndKeepsItsForgets(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	keys := map[string][]byte{}
	var err error
	for _, s := range []string{"kept", "forgotten", "rekeyed"} {
		if keys[s], _, err = st.Key(ctx, s, true); err != nil {
			t.Fatal(err)
		}
	}
	e, stopEngine := runCounters(t, st)
	add := func(id string) {
		t.Helper()
		cmd := plait.Command{ID: id, Type: "counter", AggregateID: "c", Name: "add", Data: []byte(`{"by":1}`)}
		if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	add("before")
	backup := filepath.Join(dir, "b.db")
	info, err := sqlite.Backup(ctx, path, backup)
	if err != nil {
		t.Fatal(err)
	}
	add("after")
	for _, s := range []string{"forgotten", "rekeyed"} {
		if err := st.Destroy(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.Key(ctx, "rekeyed", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Key(ctx, "new", true); err != nil {
		t.Fatal(err)
	}
	stopEngine()
	liveHead, _ := st.Head(ctx)
	st.Close()
	backupBytes, _ := os.ReadFile(backup)

	r, err := sqlite.Restore(ctx, backup, path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Head != info.Head || r.Given != liveHead || r.Regiven != nil || r.Reforgotten != 2 || r.Unchecked != nil || r.Replaced == "" {
		t.Fatalf("restored %+v, want head %d, positions given up to %d, 2 keys destroyed again, the replaced store moved", r, info.Head, liveHead)
	}
	if b, _ := os.ReadFile(backup); !bytes.Equal(b, backupBytes) {
		t.Error("the backup file changed")
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	// The log ends at the backup's head, and the store's head is the last
	// position the replaced store gave: new commits (the reactor's
	// included) take positions after it.
	if items, err := got.ReadFeed(ctx, 0, 100); err != nil || len(items) == 0 || items[len(items)-1].Position != info.Head {
		t.Errorf("the restored log: %v %v, want it to end at the backup's head %d", items, err, info.Head)
	}
	if head, _ := got.Head(ctx); head != liveHead {
		t.Errorf("the restored store's head is %d, want the replaced store's %d", head, liveHead)
	}
	// The positions given are no subscription's.
	cps, err := got.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range cps {
		if name != engine.ReactorCheckpoint(enginetest.TallyReactor.Name()) {
			t.Errorf("checkpoints %v, want the reactor's at most", cps)
		}
	}
	e2, stop2 := runCounters(t, got)
	if _, err := e2.Submit(ctx, plait.Command{ID: "restored", Type: "counter", AggregateID: "c", Name: "add", Data: []byte(`{"by":1}`)}, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	out, err := e2.Await(ctx, "restored")
	if err != nil {
		t.Fatal(err)
	}
	stop2()
	if len(out.Events) != 1 || out.Events[0].Position <= liveHead || out.Events[0].Seq != 2 {
		t.Errorf("a command after the restore: %+v, want its event after position %d, seq 2", out, liveHead)
	}
	if out, ok, _ := got.Outcome(ctx, "after"); ok {
		t.Errorf("a command after the backup is in the restored store: %+v", out)
	}
	for s, want := range map[string][]byte{"kept": keys["kept"], "forgotten": nil, "rekeyed": nil, "new": nil} {
		key, ok, err := got.Key(ctx, s, false)
		if err != nil || ok != (want != nil) || !bytes.Equal(key, want) {
			t.Errorf("subject %s: key %x (%v, %v), want %x", s, key, ok, err, want)
		}
	}
	// The replaced store is whole where it was moved.
	old, err := sqlite.Open(ctx, r.Replaced, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if head, _ := old.Head(ctx); head != liveHead {
		t.Errorf("the replaced store's head is %d, want %d", head, liveHead)
	}
	if _, ok, _ := old.Outcome(ctx, "after"); !ok {
		t.Error("the replaced store lost the command after the backup")
	}
}

// TestRestoreRefusesABadBackup: a file that is not a whole store is not
// restored, and the store is left as it was.
func TestRestoreRefusesABadBackup(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	st.Close()
	good := filepath.Join(dir, "good.db")
	if _, err := sqlite.Backup(ctx, path, good); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(good)
	before, _ := os.ReadFile(path)
	for name, content := range map[string][]byte{
		"garbage":   []byte("not a database at all, not even close"),
		"truncated": whole[:len(whole)/2],
	} {
		bad := filepath.Join(dir, name)
		os.WriteFile(bad, content, 0o600)
		if _, err := sqlite.Restore(ctx, bad, path); !errors.Is(err, sqlite.ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", name, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("the store changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "live.db.*")); len(left) > 0 {
		t.Errorf("files left beside the store: %v", left)
	}
}

// TestRestoreWithoutAStoreSaysItCouldNotCheckTheForgets: restoring where
// the store is gone (the usual reason to restore) restores, and says the
// forgets since the backup could not be checked.
func TestRestoreWithoutAStoreSaysItCouldNotCheckTheForgets(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	if _, _, err := st.Key(ctx, "s", true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	backup := filepath.Join(dir, "b.db")
	if _, err := sqlite.Backup(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	r, err := sqlite.Restore(ctx, backup, path)
	if err != nil || r.Unchecked == nil || r.Regiven == nil || r.Given != 0 || r.Replaced != "" {
		t.Fatalf("restore without a store: %+v %v", r, err)
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if _, ok, _ := got.Key(ctx, "s", false); !ok {
		t.Error("the backup's key is not restored")
	}
}

// runCounters runs an engine of enginetest.App on st; stop stops it and
// returns once its every commit is done, the store still.
func runCounters(t *testing.T, st *sqlite.Store) (e *engine.Engine, stop func()) {
	t.Helper()
	e, err := engine.New(enginetest.App(), st, engine.Options{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	ran, cancel := enginetest.Background(t, e)
	return e, func() {
		cancel()
		<-ran
	}
}

// openLive opens a new store, live.db in a directory of the test's own.
func openLive(t *testing.T) (st *sqlite.Store, dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "live.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st, dir, path
}

// TestRestoreOverAnotherStoreDestroysNoKey: the store being replaced
// tells the forgets since the backup only when it is a later state of
// the backup's own log. A fresh store (a server started on an empty data
// directory before the restore), or another store, holds none of the
// backup's keys, and forgot none of them: the restore keeps every key,
// and says it could not tell the forgets.
func TestRestoreOverAnotherStoreDestroysNoKey(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	key, _, err := st.Key(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	e, stopEngine := runCounters(t, st)
	cmd := plait.Command{ID: "one", Type: "counter", AggregateID: "c", Name: "add", Data: []byte(`{"by":1}`)}
	if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
		t.Fatal(err)
	}
	stopEngine()
	st.Close()
	backup := filepath.Join(dir, "b.db")
	if _, err := sqlite.Backup(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	fresh, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fresh.Key(ctx, "other", true); err != nil {
		t.Fatal(err)
	}
	fresh.Close()

	r, err := sqlite.Restore(ctx, backup, path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reforgotten != 0 || r.Unchecked == nil {
		t.Errorf("restored over a fresh store: %+v, want no key destroyed and the forgets unchecked", r)
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if k, ok, _ := got.Key(ctx, "s", false); !ok || !bytes.Equal(k, key) {
		t.Errorf("the backup's key was destroyed: %x %v", k, ok)
	}
}

// TestRestoreKeepsThePositionsGivenThroughBackups: a backup of a restored
// store keeps the positions the store before the restore gave, restored
// again, even over a store made afresh; and that store, which is no later
// state of the backup's log, destroys none of its keys, whatever
// positions no item of either log has.
func TestRestoreKeepsThePositionsGivenThroughBackups(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	key, _, err := st.Key(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	e, stopEngine := runCounters(t, st)
	for _, id := range []string{"one", "two", "three"} {
		cmd := plait.Command{ID: id, Type: "counter", AggregateID: "c", Name: "add", Data: []byte(`{"by":1}`)}
		if _, err := e.Submit(ctx, cmd, plait.User{ID: "u"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Await(ctx, id); err != nil {
			t.Fatal(err)
		}
		if id == "one" {
			if _, err := sqlite.Backup(ctx, path, filepath.Join(dir, "b1.db")); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopEngine()
	given, _ := st.Head(ctx)
	st.Close()
	if r, err := sqlite.Restore(ctx, filepath.Join(dir, "b1.db"), path); err != nil || r.Given != given {
		t.Fatalf("first restore: %+v %v, want positions given up to %d", r, err, given)
	}
	info, err := sqlite.Backup(ctx, path, filepath.Join(dir, "b2.db"))
	if err != nil || info.Head != given {
		t.Fatalf("a backup of the restored store: %+v %v, want head %d", info, err, given)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	fresh, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()

	r, err := sqlite.Restore(ctx, filepath.Join(dir, "b2.db"), path)
	if err != nil || r.Reforgotten != 0 || r.Unchecked == nil || r.Head != given || r.Given != 0 || r.Regiven != nil {
		t.Fatalf("restored over a fresh store: %+v %v, want head %d, no key destroyed and the forgets unchecked", r, err, given)
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if k, ok, _ := got.Key(ctx, "s", false); !ok || !bytes.Equal(k, key) {
		t.Errorf("the backup's key was destroyed: %x %v", k, ok)
	}
	if head, _ := got.Head(ctx); head != given {
		t.Errorf("head %d, want %d, the last position given before the first restore", head, given)
	}
}

// TestRestoreTakesTheLogOfTheFileRestored: a store restored from a file
// whose last commits are still in its write-ahead log (the store a
// restore moved aside while a reader kept its log from being folded, put
// back) is restored with them.
func TestRestoreTakesTheLogOfTheFileRestored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	from := filepath.Join(dir, "old.db")
	st, err := sqlite.Open(ctx, from, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Key(ctx, "first", true); err != nil {
		t.Fatal(err)
	}
	// A reader holds a snapshot: closing the store cannot fold the log.
	release := holdSnapshot(t, from)
	for i := range 20 {
		if _, _, err := st.Key(ctx, fmt.Sprintf("later%d", i), true); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	release()
	if fi, err := os.Stat(from + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("want a log beside the file restored: %v %v", fi, err)
	}

	path := filepath.Join(dir, "live.db")
	if _, err := sqlite.Restore(ctx, from, path); err != nil {
		t.Fatal(err)
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, s := range []string{"first", "later19"} {
		if _, ok, err := got.Key(ctx, s, false); !ok || err != nil {
			t.Errorf("key %s, committed to the file restored: %v %v", s, ok, err)
		}
	}
}

// TestRestoreLeavesAStoreAtItsNameThroughout: until the restored copy
// takes the store's name, the store it replaces is still there, whole: a
// restore cut short there (a crash) leaves the store as it was, not a
// data directory without a store, where a server would start afresh on
// an empty one.
func TestRestoreLeavesAStoreAtItsNameThroughout(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	if _, _, err := st.Key(ctx, "before", true); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "b.db")
	if _, err := sqlite.Backup(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Key(ctx, "after", true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	checked := false
	defer sqlite.SetBeforeRestoreRename(func() {
		checked = true
		old, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
		if err != nil {
			t.Errorf("the store, just before the restored copy takes its name: %v", err)
			return
		}
		defer old.Close()
		if _, ok, err := old.Key(ctx, "after", false); !ok || err != nil {
			t.Errorf("the store, just before the restored copy takes its name, lost a key: %v %v", ok, err)
		}
	})()
	r, err := sqlite.Restore(ctx, backup, path)
	if err != nil || !checked {
		t.Fatalf("restore: %+v %v (checked: %v)", r, err, checked)
	}
	got, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if _, ok, _ := got.Key(ctx, "after", false); ok {
		t.Error("the restored store holds a key made after the backup")
	}
	old, err := sqlite.Open(ctx, r.Replaced, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, ok, _ := old.Key(ctx, "after", false); !ok {
		t.Error("the replaced store lost a key")
	}
}

// TestRestoreSweepsTheCopiesOfARestoreCutShort: the staged copy a killed
// restore left beside the store (personal data, keys) is removed by the
// next restore.
func TestRestoreSweepsTheCopiesOfARestoreCutShort(t *testing.T) {
	ctx := context.Background()
	st, dir, path := openLive(t)
	st.Close()
	backup := filepath.Join(t.TempDir(), "b.db")
	if _, err := sqlite.Backup(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	left := path + ".restoring-123456"
	if err := os.WriteFile(left, []byte("a staged copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Restore(ctx, backup, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the copy a restore cut short left is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live.db")); err != nil {
		t.Error(err)
	}
}
