package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

func TestContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) enginetest.Opener {
		path := filepath.Join(t.TempDir(), "plait.db")
		return func(t *testing.T) engine.Store {
			st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}

func TestKnownCommands(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC()
	var batch []*engine.Processed
	for _, id := range []string{"a", "b"} {
		batch = append(batch, &engine.Processed{Outcome: plait.Outcome{
			Command: plait.Command{ID: id, Type: "counter", AggregateID: "x", Name: "add", CorrelationID: id, At: at},
			Status:  plait.StatusRejected, Errors: []plait.FieldError{{Path: "by", Code: plait.CodeInvalid}},
		}})
	}
	if err := st.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	known, err := st.KnownCommands(ctx, []string{"a", "c", "b", "b", `"quoted"`})
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != 2 || !known["a"] || !known["b"] {
		t.Fatalf("known = %v, want a and b", known)
	}
	if known, err := st.KnownCommands(ctx, nil); err != nil || len(known) != 0 {
		t.Fatalf("no ids: %v %v", known, err)
	}
	// Past one IN list: 100 ids, "b" among the last.
	var many []string
	for i := 0; i < 99; i++ {
		many = append(many, fmt.Sprintf("n%d", i))
	}
	many = append(many, "b")
	if known, err := st.KnownCommands(ctx, many); err != nil || len(known) != 1 || !known["b"] {
		t.Fatalf("100 ids: %v %v", known, err)
	}
}

// A store opened ReadOnly reads what is there, refuses every write, and
// creates nothing: not a missing file, not a store in a file that is not
// one.
func TestReadOnlyOpenChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "none.db")
	if _, err := sqlite.Open(ctx, missing, sqlite.Options{ReadOnly: true}); !errors.Is(err, sqlite.ErrNoStore) {
		t.Fatalf("read-only open of a missing file: %v, want ErrNoStore", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing file made its directory: %v", err)
	}

	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE notes(text TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(ctx, other, sqlite.Options{ReadOnly: true}); !errors.Is(err, sqlite.ErrNoStore) {
		t.Fatalf("read-only open of a file with no store: %v, want ErrNoStore", err)
	}

	path := filepath.Join(dir, "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := plait.Command{ID: "c1", Type: "counter", AggregateID: "a", Name: "add", CorrelationID: "c1", User: "u", At: time.Now().UTC()}
	p := &engine.Processed{
		Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Owner: "u", Events: []plait.Event{{ID: plait.EventID("c1", 0), Type: "counter", AggregateID: "a", Seq: 1, Name: "added", CorrelationID: "c1", CausationID: "c1", User: "u", At: cmd.At}}},
		Instance: &engine.Instance{Type: "counter", ID: "a", Seq: 1, State: []byte(`{}`), Owner: "u", UpdatedAt: cmd.At},
	}
	if err := st.Commit(ctx, []*engine.Processed{p}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ro, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if head, err := ro.Head(ctx); err != nil || head != 2 {
		t.Fatalf("read-only Head = %d, %v; want 2", head, err)
	}
	if out, ok, err := ro.Outcome(ctx, "c1"); err != nil || !ok || out.Status != plait.StatusAccepted {
		t.Fatalf("read-only Outcome(c1) = %+v, %v, %v", out, ok, err)
	}
	p.Outcome.Command.ID, p.Outcome.Events[0].ID, p.Outcome.Events[0].Seq, p.Instance.Seq = "c2", plait.EventID("c2", 0), 2, 2
	if err := ro.Commit(ctx, []*engine.Processed{p}); err == nil {
		t.Fatal("a read-only store committed a command")
	}
	if err := ro.SaveCheckpoint(ctx, "r", 1); err == nil {
		t.Fatal("a read-only store saved a checkpoint")
	}
	if head, err := ro.Head(ctx); err != nil || head != 2 {
		t.Fatalf("read-only Head after refused writes = %d, %v; want 2", head, err)
	}
}

// TestOpenRefusesTheDatabaseOfSomethingElse: a file holding tables, none
// of them a store's, is left as it was; a file a store began to create
// (its first migration cut short) is taken up.
func TestOpenRefusesTheDatabaseOfSomethingElse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE notes(text TEXT)`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(ctx, other, sqlite.Options{})
	if !errors.Is(err, sqlite.ErrForeignDatabase) || !strings.Contains(err.Error(), "notes") {
		t.Fatalf("Open of another database: %v, want ErrForeignDatabase naming its table", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the other database holds %d objects (%v), want its one table", n, err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("the other database's journal mode is %q (%v), want delete, as it was", mode, err)
	}

	begun := filepath.Join(dir, "begun.db")
	db2, err := sql.Open("sqlite", begun)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Exec(`CREATE TABLE commands(id TEXT PRIMARY KEY, pos INTEGER NOT NULL UNIQUE, correlation_id TEXT NOT NULL, status TEXT NOT NULL,
		errors TEXT, owner TEXT NOT NULL, first_event INTEGER NOT NULL, event_count INTEGER NOT NULL, body TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	db2.Close()
	st, err := sqlite.Open(ctx, begun, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open of a store begun: %v", err)
	}
	st.Close()
}

// TestOpenRefusesAFileItCannotWrite: SQLite opens a file the process may
// not write read-only; Open says so, rather than a server that starts and
// fails every command.
func TestOpenRefusesAFileItCannotWrite(t *testing.T) {
	for _, earlier := range []bool{false, true} {
		t.Run(map[bool]string{false: "this release's", true: "an earlier release's"}[earlier], func(t *testing.T) {
			testOpenRefusesAFileItCannotWrite(t, earlier)
		})
	}
}

// testOpenRefusesAFileItCannotWrite is TestOpenRefusesAFileItCannotWrite
// on a store of this release, or of an earlier one (its tables to be
// migrated): either way, the file cannot be written, and says so.
func testOpenRefusesAFileItCannotWrite(t *testing.T, earlier bool) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if earlier {
		execSQL(t, path, earlierRelease)
	}
	// Root writes whatever the permissions say; an immutable file it
	// cannot.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
	} else if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err == nil {
		st.Close()
		t.Fatal("Open of a file it cannot write succeeded")
	}
	if !strings.Contains(err.Error(), "cannot be written") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want it to say the file cannot be written", err)
	}
	ro, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a read-only open of it: %v", err)
	}
	ro.Close()
}

// TestACommitOverDamagedDataSaysSo: a commit that meets a damaged page of
// the file fails with engine.ErrCorrupt, on which the engine stops.
func TestACommitOverDamagedDataSaysSo(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	processed := func(id, instance string) *engine.Processed {
		cmd := plait.Command{ID: id, Type: "counter", AggregateID: instance, Name: "add", CorrelationID: id, User: "u", At: at}
		return &engine.Processed{
			Outcome:  plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Owner: "u", Events: []plait.Event{{ID: plait.EventID(id, 0), Type: "counter", AggregateID: instance, Seq: 1, Name: "added", CorrelationID: id, CausationID: id, User: "u", At: at}}},
			Instance: &engine.Instance{Type: "counter", ID: instance, Seq: 1, State: []byte(`{}`), Owner: "u", UpdatedAt: at},
		}
	}
	if err := st.Commit(ctx, []*engine.Processed{processed("c1", "a")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, []*engine.Processed{processed("c2", "b")}); err != nil {
		t.Fatalf("a commit over sound data: %v", err)
	}
	st.Close()

	// Garbage over the instances table's root page.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'instances'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, pageSize)
	for i := range garbage {
		garbage[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(garbage, (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()

	st, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open (the damage is in a table Open does not read): %v", err)
	}
	defer st.Close()
	err = st.Commit(ctx, []*engine.Processed{processed("c3", "c")})
	if !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("a commit over a damaged page: %v, want engine.ErrCorrupt", err)
	}
}

// TestAFileOfAnEarlierReleaseGetsFormerOwners: a file whose events have no
// former_owner column, as an earlier release wrote it, is read, opened
// read-only, with every event of no former owner, and opened to be written,
// given the column; the events it held name none, new ones theirs.
func TestAFileOfAnEarlierReleaseGetsFormerOwners(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	processed := func(id string, seq int64, owner, former string) *engine.Processed {
		cmd := plait.Command{ID: id, Type: "case", AggregateID: "k", Name: "assign", CorrelationID: id, User: "u", At: at}
		return &engine.Processed{
			Outcome: plait.Outcome{Command: cmd, Status: plait.StatusAccepted, Owner: owner, Events: []plait.Event{{
				ID: plait.EventID(id, 0), Type: "case", AggregateID: "k", Seq: seq, Name: "assigned", CorrelationID: id, CausationID: id, User: "u", At: at}}},
			Instance:    &engine.Instance{Type: "case", ID: "k", Seq: seq, State: []byte(`{}`), Owner: owner, UpdatedAt: at},
			OwnerMoved:  former != "",
			FormerOwner: former,
		}
	}
	if err := st.Commit(ctx, []*engine.Processed{processed("c1", 1, "ann", ""), processed("c2", 2, "bob", "ann")}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	execSQL(t, path, earlierRelease)

	formerOwners := func(st engine.Feed) string { return enginetest.FormerOwners(t, st) }
	ro, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := formerOwners(ro); got != "c1: c2:" {
		t.Errorf("the earlier file's events, read only: %s", got)
	}
	ro.Close()
	st, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Commit(ctx, []*engine.Processed{processed("c3", 3, "sue", "bob")}); err != nil {
		t.Fatal(err)
	}
	if got := formerOwners(st); got != "c1: c2: c3:bob" {
		t.Errorf("the events once the file is opened to be written: %s", got)
	}
}

// TestAStoreIsOneApplications: the first application to open a store for
// itself claims it; another is refused, writing or only reading, before
// anything is changed (a file to migrate stays as it is); a store of a
// release before the claim is claimed by the first.
func TestAStoreIsOneApplications(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	execSQL(t, path, `DROP TABLE store_meta`)
	open := func(app string, readOnly bool) error {
		st, err := sqlite.Open(ctx, path, sqlite.Options{Application: app, ReadOnly: readOnly})
		if err == nil {
			st.Close()
		}
		return err
	}
	if err := open("helpdesk", true); err != nil {
		t.Errorf("a store of an earlier release, read by any application: %v", err)
	}
	for range 2 {
		if err := open("orderdesk", false); err != nil {
			t.Fatalf("orderdesk opens the store: %v", err)
		}
	}
	execSQL(t, path, `ALTER TABLE events DROP COLUMN former_owner`)
	for _, readOnly := range []bool{false, true} {
		if err := open("helpdesk", readOnly); !errors.Is(err, engine.ErrOtherApplication) || !strings.Contains(err.Error(), `application "orderdesk", not "helpdesk"`) {
			t.Errorf("helpdesk on orderdesk's store (read-only %v): %v", readOnly, err)
		}
	}
	if app, err := sqlite.ApplicationOf(ctx, path); err != nil || app != "orderdesk" {
		t.Errorf("ApplicationOf: %q, %v", app, err)
	}
	db, err := sqlite.OpenSQL(path)
	if err != nil {
		t.Fatal(err)
	}
	var migrated bool
	err = db.QueryRow(`SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'former_owner'`).Scan(&migrated)
	db.Close()
	if err != nil || migrated {
		t.Errorf("the refused open migrated the file: %v %v", migrated, err)
	}
	if err := open("", false); err != nil {
		t.Errorf("opened for no application in particular: %v", err)
	}
}

// earlierRelease makes a store the store of a release before events
// named their former owners and stores their application.
const earlierRelease = `ALTER TABLE events DROP COLUMN former_owner; DROP TABLE store_meta`

// execSQL runs statements on the store file at path, which no store has
// open.
func execSQL(t *testing.T, path, statements string) {
	t.Helper()
	db, err := sqlite.OpenSQL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(statements); err != nil {
		t.Fatal(err)
	}
}

// TestOpenersOfAnEarlierFileTakeTurns: stores opened at once on a file of
// an earlier release migrate it once between them, none failing on the
// column another added.
func TestOpenersOfAnEarlierFileTakeTurns(t *testing.T) {
	for round := range 5 { // the openers meet at random: a few rounds
		t.Run(fmt.Sprint(round), testOpenersOfAnEarlierFileTakeTurns)
	}
}

func testOpenersOfAnEarlierFileTakeTurns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "plait.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	execSQL(t, path, earlierRelease)
	const openers = 4
	errs := make(chan error, openers)
	for range openers {
		go func() {
			st, err := sqlite.Open(ctx, path, sqlite.Options{})
			if err == nil {
				st.Close()
			}
			errs <- err
		}()
	}
	for range openers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
