// Package sqlite is Plait's embedded store: the command log, the event log,
// the materialized state, the dedup records and the subscription checkpoints
// in one SQLite file (WAL mode), through the pure-Go modernc.org/sqlite
// driver. It implements engine.Store and engine.Queries.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/durable"
	fastjson "github.com/segmentio/encoding/json"
	msqlite "modernc.org/sqlite" // and it registers the "sqlite" driver
)

// Options tune the store. The zero value is the safe default.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "FULL" (default) makes an
	// acknowledged command survive power loss; "NORMAL" survives a process
	// crash only, and is faster.
	Synchronous string
	// ReadConns caps concurrent readers (default 8).
	ReadConns int
	// MaxPageBytes bounds the bytes one read of the feed, of an instance's
	// events or of a list page loads (default DefaultMaxPageBytes): the
	// read stops early, short of its limit in items, once it holds that
	// many bytes of stored data, and returns at least one item. A relay
	// resuming from far back so pages through the log in bounded memory.
	MaxPageBytes int
	// ReadOnly opens an existing store only to read it, for tools that
	// look at a store another process may be serving (plait inspect):
	// nothing is created or migrated, and every write fails.
	ReadOnly bool
	// Application names the application that runs on the store: a store
	// another application claimed is refused (engine.ErrOtherApplication)
	// before anything in it is changed, and one no application claimed
	// yet (new, or of a release before the claims) is claimed for it,
	// unless ReadOnly. Empty, the store is opened whoever claimed it.
	Application string
}

// ErrNoStore is returned by Open with Options.ReadOnly when the file is
// not a store: it is missing, or holds no store's tables.
var ErrNoStore = errors.New("sqlite: no store in the file")

// ErrForeignDatabase is returned by Open when the file is a database of
// something else: it holds tables, none of them a store's.
var ErrForeignDatabase = errors.New("sqlite: the file is the database of something else")

// walSizeLimit is the size the write-ahead log is cut back to once folded
// into the file: well above the 4 MiB or so it reaches between automatic
// checkpoints, so that it is cut only after growing past them.
const walSizeLimit = 64 << 20

// DefaultMaxPageBytes is the default of Options.MaxPageBytes.
const DefaultMaxPageBytes = 4 << 20

// Store is the embedded store. It is safe for concurrent use; writes go
// through one connection, reads through a pool.
type Store struct {
	path string
	w    *sql.DB // one connection: every write transaction
	r    *sql.DB // readers, concurrent thanks to WAL

	mu   sync.Mutex // serialises Commit and guards next
	next int64      // the next position to assign

	// Commit writes through multi-row statements: see multiInsert.
	insCommands, insEvents, putInstances *multiInsert
	// copyInstances writes to a staged copy of a view: see viewCopy.Write.
	copyInstances *multiInsert
	// The reads on the engine's path, prepared once on the reader pool.
	loadInstance, loadOutcome, loadEventRange *sql.Stmt

	maxPageBytes atomic.Int64 // see Options.MaxPageBytes

	physMu        sync.RWMutex
	phys          map[string]string // view type → the physical type of its live copy, for rebuilt views
	indexes       map[string]bool   // the names of the indexes on instances, see createIndex
	knownCommands map[int]*sql.Stmt // by the number of ids, see idsPerLookup

	// filter spares the dedup lookup of new commands a read; it is loaded
	// in the background, which Close stops.
	filter     *commandFilter
	stopFilter context.CancelFunc
	filterDone chan struct{}
	dedupReads atomic.Int64 // the reads of KnownCommands, for the tests

	keysMu    sync.Mutex  // creates the key table, see keys.go
	keysReady atomic.Bool // the key table exists

	synchronous string // Options.Synchronous, upper case
	readOnly    bool   // Options.ReadOnly
	// formerOwners is whether the events table has its former_owner
	// column, which a file of an earlier release opened read-only lacks.
	formerOwners bool

	// fullSync is set with synchronous=FULL: CommitUnsynced then leaves
	// the fsync to Sync, which syncs the write-ahead log through wal.
	fullSync bool
	walMu    sync.Mutex
	wal      *os.File
}

// CheckSynchronous reports whether mode is one of SQLite's synchronous
// modes, FULL, NORMAL, EXTRA or OFF (in any case).
func CheckSynchronous(mode string) error {
	switch strings.ToUpper(mode) {
	case "FULL", "NORMAL", "EXTRA", "OFF":
		return nil
	}
	return fmt.Errorf("synchronous %q: want FULL, NORMAL, EXTRA or OFF", mode)
}

// Open opens or creates the store in the file at path, creating its
// directory, and migrates the schema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	if err := CheckSynchronous(opts.Synchronous); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 8
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w %s: %w", ErrNoStore, path, err)
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
	} else if err := createPrivate(path); err != nil {
		return nil, err
	}
	dsn := func(extra string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		if opts.ReadOnly {
			q.Add("mode", "ro")
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Add("_pragma", "journal_mode(WAL)")
			// A log that grew while readers kept it from being folded
			// back (a long backup, say) is cut back to this size once it
			// is, rather than keep its largest size on the disk for good.
			q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
		}
		q.Add("_pragma", "synchronous("+opts.Synchronous+")")
		q.Add("_pragma", "foreign_keys(on)")
		// Commit's multi-row statements keep a statement journal; in
		// memory, it costs no temporary file per statement.
		q.Add("_pragma", "temp_store(MEMORY)")
		if extra != "" {
			q.Add("_txlock", extra)
		}
		return "file:" + path + "?" + q.Encode()
	}
	if !opts.ReadOnly {
		if err := refuseForeignUnopened(ctx, path); err != nil {
			return nil, err
		}
	}
	w, err := openDB(dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{path: path, w: w, readOnly: opts.ReadOnly, synchronous: strings.ToUpper(opts.Synchronous), fullSync: strings.EqualFold(opts.Synchronous, "FULL")}
	s.SetMaxPageBytes(opts.MaxPageBytes)
	if opts.ReadOnly {
		if err = s.checkSchema(ctx); err == nil {
			err = s.readFormerOwners(ctx)
		}
		if err == nil && opts.Application != "" {
			err = s.checkApplication(ctx, w, opts.Application)
		}
	} else {
		err = s.migrate(ctx, opts.Application)
	}
	if err != nil {
		w.Close()
		if errors.Is(markCorrupt(err), engine.ErrCorrupt) {
			// Not a database, or one damaged: say which file.
			return nil, fmt.Errorf("sqlite: %s is no SQLite database, or a damaged one: %w", path, err)
		}
		return nil, withDiskSpace(err, path)
	}
	// Sync fsyncs the write-ahead log: without one (a file system where
	// SQLite could not turn WAL on), every commit waits for the disk itself.
	var mode string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		s.fullSync = false
	}
	r, err := openDB(dsn(""))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	s.r = r
	if err := s.loadCopies(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadIndexes(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.next, err = s.Head(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.next++
	for _, m := range []struct {
		dst        **multiInsert
		head, tail string
		cols       int
	}{
		{&s.insCommands, `INSERT INTO commands(id, pos, correlation_id, status, errors, owner, first_event, event_count, body) VALUES`, ``, 9},
		{&s.insEvents, `INSERT INTO events(pos, id, type, aggregate_id, seq, name, correlation_id, owner, body, former_owner) VALUES`, ``, 10},
		// An instance's owner is whoever sent its first command, so an
		// update leaves it, and the index by owner, as they are.
		{&s.putInstances, `INSERT INTO instances(type, id, seq, state, lineage, owner, updated_at) VALUES`,
			` ON CONFLICT(type, id) DO UPDATE SET seq=excluded.seq, state=excluded.state, lineage=excluded.lineage,
			updated_at=excluded.updated_at WHERE instances.seq < excluded.seq`, 7},
		{&s.copyInstances, `INSERT INTO instances(type, id, seq, state, lineage, owner, updated_at) VALUES`,
			` ON CONFLICT(type, id) DO UPDATE SET seq=excluded.seq, state=excluded.state, lineage=excluded.lineage,
			owner=excluded.owner, updated_at=excluded.updated_at`, 7},
	} {
		if opts.ReadOnly {
			break // a store only read writes nothing (see commit)
		}
		if *m.dst, err = prepareMulti(ctx, w, m.head, m.tail, m.cols); err != nil {
			s.Close()
			return nil, err
		}
	}
	for _, st := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.loadInstance, `SELECT seq, state, lineage, owner, updated_at FROM instances WHERE type = ? AND id = ?`},
		{&s.loadOutcome, `SELECT pos, status, errors, owner, first_event, event_count, body FROM commands WHERE id = ?`},
		{&s.loadEventRange, `SELECT body FROM events WHERE pos >= ? AND pos < ? ORDER BY pos`},
	} {
		if *st.dst, err = r.PrepareContext(ctx, st.sql); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
	}
	s.knownCommands = map[int]*sql.Stmt{}
	for _, n := range idsPerLookup {
		q := `SELECT id FROM commands WHERE id IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
		if s.knownCommands[n], err = r.PrepareContext(ctx, q); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
	}
	// The filter takes the ids of every commit from now on; the ids
	// stored before are read into it in the background. The head position
	// bounds their number.
	s.filter = newCommandFilter(uint(s.next), minFilterSize)
	loadCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopFilter, s.filterDone = stop, make(chan struct{})
	go func() {
		defer close(s.filterDone)
		s.loadFilter(loadCtx)
	}()
	return s, nil
}

// filterPage is how many ids loadFilter reads per query: each query is a
// short read transaction, so the log's checkpoints are not held back.
const filterPage = 4096

// loadFilter reads the ids of every stored command into the filter, in
// pages along the index of ids, and marks it ready. On an error it leaves
// the filter not ready, and the dedup lookups keep reading.
func (s *Store) loadFilter(ctx context.Context) {
	after := ""
	ids := make([]string, 0, filterPage)
	for {
		ids = ids[:0]
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM commands WHERE id > ? ORDER BY id LIMIT ?`, after, filterPage)
		if err != nil {
			return
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return
			}
			ids = append(ids, id)
		}
		rows.Close()
		if rows.Err() != nil {
			return
		}
		s.filter.add(ids...)
		if len(ids) < filterPage {
			s.filter.loaded()
			return
		}
		after = ids[len(ids)-1]
	}
}

// idsPerLookup are the sizes of the prepared IN lists of KnownCommands,
// smallest first; a shorter list is padded by repeating its last id.
var idsPerLookup = []int{4, 16, 64}

// rowsPerInsert are the sizes of the multi-row INSERT statements Commit
// writes with, largest first. Running a statement has a fixed cost (the
// driver's binding and stepping, database/sql's bookkeeping) comparable to
// writing a row, so a group commit writes its rows 64 to a statement.
var rowsPerInsert = []int{64, 16, 4, 1}

// multiInsert is one INSERT prepared for each size of rowsPerInsert.
type multiInsert struct {
	cols  int
	stmts map[int]*sql.Stmt
}

// prepareMulti prepares head, rows of cols values, tail, for each size of
// rowsPerInsert.
func prepareMulti(ctx context.Context, db *sql.DB, head, tail string, cols int) (*multiInsert, error) {
	m := &multiInsert{cols: cols, stmts: map[int]*sql.Stmt{}}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for _, n := range rowsPerInsert {
		q := head + " " + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + tail
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("sqlite: prepare %d-row insert: %w", n, err)
		}
		m.stmts[n] = st
	}
	return m, nil
}

// exec writes the rows whose values args holds, cols values a row, in tx,
// and returns how many rows the statements changed.
func (m *multiInsert) exec(ctx context.Context, tx *sql.Tx, args []any) (int64, error) {
	var changed int64
	for len(args) > 0 {
		rows := len(args) / m.cols
		n := rowsPerInsert[len(rowsPerInsert)-1]
		for _, size := range rowsPerInsert {
			if size <= rows {
				n = size
				break
			}
		}
		res, err := tx.StmtContext(ctx, m.stmts[n]).ExecContext(ctx, args[:n*m.cols]...)
		if err != nil {
			return changed, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return changed, err
		}
		changed += k
		args = args[n*m.cols:]
	}
	return changed, nil
}

func (m *multiInsert) close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, st := range m.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

const schema = `
CREATE TABLE IF NOT EXISTS commands (
	id             TEXT PRIMARY KEY,
	pos            INTEGER NOT NULL UNIQUE,
	correlation_id TEXT NOT NULL,
	status         TEXT NOT NULL,
	errors         TEXT,
	owner          TEXT NOT NULL,
	first_event    INTEGER NOT NULL,
	event_count    INTEGER NOT NULL,
	body           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
	pos            INTEGER PRIMARY KEY,
	id             TEXT NOT NULL UNIQUE,
	type           TEXT NOT NULL,
	aggregate_id   TEXT NOT NULL,
	seq            INTEGER NOT NULL,
	name           TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	owner          TEXT NOT NULL,
	body           TEXT NOT NULL,
	former_owner   TEXT,
	UNIQUE (type, aggregate_id, seq)
);
CREATE INDEX IF NOT EXISTS events_by_correlation ON events(correlation_id, pos);
CREATE TABLE IF NOT EXISTS instances (
	type       TEXT NOT NULL,
	id         TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	state      TEXT NOT NULL,
	lineage    TEXT,
	owner      TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (type, id)
);
-- A user who may see only their own instances lists them by this index:
-- the work is bounded by their items, not by the type's.
CREATE INDEX IF NOT EXISTS instances_owner ON instances(type, owner, id);
CREATE TABLE IF NOT EXISTS checkpoints (
	name TEXT PRIMARY KEY,
	pos  INTEGER NOT NULL
);
-- What the store holds: the application that first ran on it, under the
-- key 'application' (see ClaimApplication).
CREATE TABLE IF NOT EXISTS store_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
-- The field of each type's state that names its owner, as EnsureIndexes
-- last found it declared (see alignOwners).
CREATE TABLE IF NOT EXISTS type_fields (
	type        TEXT PRIMARY KEY,
	owner_field TEXT NOT NULL
);
`

// checkSchema reports ErrNoStore unless the file holds a store's tables.
func (s *Store) checkSchema(ctx context.Context) error {
	ok, err := s.hasTables(ctx, coreTables...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w %s", ErrNoStore, s.path)
	}
	return nil
}

// hasTables reports whether the file holds every one of the tables named.
func (s *Store) hasTables(ctx context.Context, names ...string) (bool, error) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	var n int
	err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(names)), ",")+`)`, args...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: read the schema: %w", err)
	}
	return n == len(names), nil
}

// migrate creates the store's tables in a file that has none, and those
// a later release added in a file of an earlier one. It refuses a file
// that holds tables, none of them the store's: the database of something
// else, which the store would otherwise move into. It runs in one
// transaction, which takes the write lock, so that openers of one file
// take turns. And it makes sure the file can be written: SQLite opens a
// file the process may not write (its permissions, another owner, an
// immutable file) read-only, and would say so only at the first commit.
func (s *Store) migrate(ctx context.Context, app string) error {
	if err := refuseForeign(ctx, s.w, s.path); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: it takes the write lock
	if err == nil {
		if err = s.migrateIn(ctx, tx, app); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	var se *msqlite.Error
	if errors.Is(err, engine.ErrOtherApplication) {
		return err
	}
	if errors.As(err, &se) && se.Code()&0xff == sqliteReadOnly {
		return fmt.Errorf("sqlite: %s cannot be written: %w", s.path, err)
	}
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}
	return nil
}

// sqliteReadOnly is SQLITE_READONLY, the primary code of a write to a
// database opened read-only.
const sqliteReadOnly = 8

// migrateIn is migrate's work, in its transaction tx, for the application
// app (see Options.Application).
func (s *Store) migrateIn(ctx context.Context, tx *sql.Tx, app string) error {
	if app != "" {
		if err := s.checkApplication(ctx, tx, app); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	if app != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_meta(key, value) VALUES ('application', ?) ON CONFLICT(key) DO NOTHING`, app); err != nil {
			return err
		}
	}
	// A file of a release before events named their former owners gets
	// the column, empty for the events it holds.
	if err := tx.QueryRowContext(ctx, formerOwnersColumn).Scan(&s.formerOwners); err != nil {
		return err
	}
	if !s.formerOwners {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE events ADD COLUMN former_owner TEXT`); err != nil {
			return err
		}
		s.formerOwners = true
	}
	// A write, undone at once, for a file that needed none of the above.
	_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints(name, pos) VALUES ('plait: can write', 0);
		DELETE FROM checkpoints WHERE name = 'plait: can write'`)
	return err
}

// formerOwnersColumn asks whether the events table has the column of their
// former owners.
const formerOwnersColumn = `SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'former_owner'`

// readFormerOwners finds whether the file's events have the column of
// their former owners, which a file of an earlier release opened only to
// be read lacks.
func (s *Store) readFormerOwners(ctx context.Context) error {
	err := s.w.QueryRowContext(ctx, formerOwnersColumn).Scan(&s.formerOwners)
	if err != nil {
		return fmt.Errorf("sqlite: read the schema: %w", err)
	}
	return nil
}

// markCorrupt wraps engine.ErrCorrupt around an error of SQLite's that
// says the file is damaged: SQLITE_CORRUPT or SQLITE_NOTADB, whatever
// their extended codes.
func markCorrupt(err error) error {
	const corrupt, notADatabase = 11, 26
	var se *msqlite.Error
	if errors.As(err, &se) {
		if c := se.Code() & 0xff; c == corrupt || c == notADatabase {
			return fmt.Errorf("%w: %w", engine.ErrCorrupt, err)
		}
	}
	return err
}

// lowDiskSpace is the free space under which a failure to open a store is
// said to come from it: SQLite reports a full disk at open as an I/O
// error, of the shared-memory file it could not create, say.
const lowDiskSpace = 1 << 20

// withDiskSpace adds to err, a failure to open the store at path, that
// the file system it is on is full, when it is.
func withDiskSpace(err error, path string) error {
	if free, ok := freeBytes(filepath.Dir(path)); ok && free < lowDiskSpace {
		return fmt.Errorf("%w (the file system of %s is full: %d bytes free)", err, filepath.Dir(path), free)
	}
	return err
}

// refuseForeign returns ErrForeignDatabase if db, the file at path, holds
// tables and none of a store's.
func refuseForeign(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return fmt.Errorf("sqlite: read the schema: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: read the schema: %w", err)
		}
		tables = append(tables, name)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("sqlite: read the schema: %w", err)
	}
	if len(tables) > 0 && !slices.ContainsFunc(tables, func(t string) bool { return slices.Contains(coreTables, t) }) {
		if len(tables) > 5 {
			tables = append(tables[:5], "…")
		}
		return fmt.Errorf("%w: %s holds other tables (%s) and none of a store's", ErrForeignDatabase, path, strings.Join(tables, ", "))
	}
	return nil
}

// refuseForeignUnopened is refuseForeign for a file not opened yet, in
// rollback-journal mode (a store's file is in WAL mode): opening it as a
// store would switch it to WAL, a change to another application's file.
// It reads the file without a write, read-only.
func refuseForeignUnopened(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // none yet: Open creates it
	}
	header := make([]byte, 20)
	_, err = io.ReadFull(f, header)
	f.Close()
	// The SQLite header: its magic string, then at offset 18 the file
	// format's write version, 1 for a rollback journal, 2 for WAL.
	if err != nil || string(header[:16]) != "SQLite format 3\x00" || header[18] != 1 {
		return nil // not a database, or in WAL mode: Open's own reading says what it is
	}
	db, err := openDB("file:" + path + "?mode=ro")
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	defer db.Close()
	return refuseForeign(ctx, db, path)
}

// createPrivate creates the file at path, and its directory, readable by
// their owner only, unless they exist: the file holds the application's
// data, personal data among them, and the keys that seal it. SQLite gives
// the file's -wal and -shm the file's own mode.
func createPrivate(path string) error {
	if err := durable.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return f.Close()
}

// coreTables are the tables every store has.
var coreTables = []string{"commands", "events", "instances", "checkpoints"}

// EnsureIndexes creates a partial secondary index on every field an
// aggregate type declares with plait.Indexed, and on the search keys of
// those it declares plait.Searchable. List names the index it uses (see
// listQuery): left to itself, SQLite's planner reads the type through the
// primary key and sorts. The instances of a type whose owner is a field
// of its state are given the owners their states name (see alignOwners).
func (s *Store) EnsureIndexes(ctx context.Context, defs []plait.Definition) error {
	for _, d := range defs {
		phys := s.physical(d.Type())
		if err := s.alignOwners(ctx, d.Type(), phys, d.Settings().Access); err != nil {
			return err
		}
		for _, f := range d.Settings().Indexes {
			if err := s.createIndex(ctx, indexName(phys, f), indexDDL(phys, f)); err != nil {
				return err
			}
		}
		for _, f := range d.Settings().Searchable {
			if err := s.createIndex(ctx, indexName(phys, f)+searchSuffix, searchIndexDDL(phys, f)); err != nil {
				return err
			}
		}
		if err := s.dropSearchIndexes(ctx, phys, d.Settings().Searchable); err != nil {
			return err
		}
	}
	return nil
}

// alignOwners gives the instances of typ (stored under phys) the owners
// their states name when its owner has become a field of its state
// (plait.Access.OwnerField) since the last EnsureIndexes: a command moves
// an instance to the owner its state names, and those from before had
// their first senders.
func (s *Store) alignOwners(ctx context.Context, typ, phys string, a plait.Access) error {
	field := ""
	if a.OwnerOnly {
		field = a.OwnerField
	}
	var recorded string
	err := s.w.QueryRowContext(ctx, `SELECT owner_field FROM type_fields WHERE type = ?`, typ).Scan(&recorded)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: owner field of %s: %w", typ, err)
	}
	if field == recorded {
		return nil
	}
	return s.writeTx(ctx, false, func(tx *sql.Tx) error {
		if field != "" {
			const owner = `CASE json_type(state, ?1) WHEN 'text' THEN json_extract(state, ?1) ELSE '' END`
			if _, err := tx.ExecContext(ctx, `UPDATE instances SET owner = `+owner+` WHERE type = ?2 AND owner IS NOT `+owner,
				"$."+field, phys); err != nil {
				return fmt.Errorf("sqlite: owners of %s: %w", typ, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO type_fields(type, owner_field) VALUES(?, ?)
			ON CONFLICT(type) DO UPDATE SET owner_field = excluded.owner_field`, typ, field); err != nil {
			return fmt.Errorf("sqlite: owner field of %s: %w", typ, err)
		}
		return nil
	})
}

// Close closes the store.
func (s *Store) Close() error {
	var errs []error
	if s.stopFilter != nil {
		s.stopFilter()
		<-s.filterDone
	}
	for _, st := range []*sql.Stmt{s.loadInstance, s.loadOutcome, s.loadEventRange} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, m := range []*multiInsert{s.insCommands, s.insEvents, s.putInstances, s.copyInstances} {
		errs = append(errs, m.close())
	}
	for _, st := range s.knownCommands {
		errs = append(errs, st.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	s.walMu.Lock()
	if s.wal != nil {
		errs = append(errs, s.wal.Close())
	}
	s.walMu.Unlock()
	return errors.Join(errs...)
}

// SetMaxPageBytes changes Options.MaxPageBytes; n <= 0 restores the
// default. It is safe to call while the store is in use.
func (s *Store) SetMaxPageBytes(n int) {
	if n <= 0 {
		n = DefaultMaxPageBytes
	}
	s.maxPageBytes.Store(int64(n))
}

// full reports whether a page holding n bytes in items items is full.
func (s *Store) full(items, n int) bool {
	return items > 0 && int64(n) >= s.maxPageBytes.Load()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Commit writes the batch in one transaction; see engine.Log. The rows go
// in through multi-row statements, and of the records of one instance in
// the batch only the last (the newest) is written.
func (s *Store) Commit(ctx context.Context, batch []*engine.Processed) error {
	return s.commit(ctx, batch, false)
}

// CommitUnsynced writes the batch as Commit does but, with synchronous=FULL,
// returns before it is on disk: Sync makes it durable. Meanwhile the next
// batch can be written. See engine.SyncingLog.
//
// The transaction runs with synchronous=NORMAL, which in WAL mode writes
// the frames without an fsync; Sync then fsyncs the log file, which holds
// every frame written before it. Between the two a crash of the process
// loses nothing (the frames are in the operating system), and a power loss
// loses only batches not yet synced, which the engine has not answered.
// Every other write keeps synchronous=FULL.
func (s *Store) CommitUnsynced(ctx context.Context, batch []*engine.Processed) error {
	return s.commit(ctx, batch, s.fullSync)
}

// Sync makes every batch written by CommitUnsynced before it durable, with
// one fsync of the write-ahead log. See engine.SyncingLog.
func (s *Store) Sync(ctx context.Context) error {
	if !s.fullSync {
		return nil
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	name := s.path + "-wal"
	if s.wal != nil {
		// SQLite keeps the log file while a connection is open; should it
		// ever be replaced, sync the new one.
		now, err1 := os.Stat(name)
		was, err2 := s.wal.Stat()
		if err1 != nil || err2 != nil || !os.SameFile(now, was) {
			s.wal.Close()
			s.wal = nil
		}
	}
	if s.wal == nil {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("sqlite: open the write-ahead log to sync it: %w", err)
		}
		s.wal = f
	}
	if err := s.wal.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync the write-ahead log: %w", err)
	}
	return nil
}

// writeTx runs fn in a write transaction and commits it; unsynced, see
// unsyncedTx.
func (s *Store) writeTx(ctx context.Context, unsynced bool, fn func(tx *sql.Tx) error) error {
	if unsynced {
		return s.unsyncedTx(ctx, fn)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	return inTx(tx, err, fn)
}

// inTx runs fn in tx, begun with err, and commits it; should fn fail, it
// rolls tx back.
func inTx(tx *sql.Tx, err error, fn func(tx *sql.Tx) error) error {
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// unsyncedTx runs fn in a write transaction that, with synchronous=FULL or
// EXTRA, runs with synchronous=NORMAL: SQLite writes it to the log without
// waiting for the disk, and a later fsync of the log (Sync, or a commit
// that waits) makes it durable with everything before it. The one writer
// connection is held throughout, so no other write runs at NORMAL; one
// that cannot be set back is dropped, and the pool opens a new one with
// the pragmas of its DSN.
func (s *Store) unsyncedTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: connect: %w", err)
	}
	defer conn.Close()
	if s.synchronous == "FULL" || s.synchronous == "EXTRA" {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
			return fmt.Errorf("sqlite: synchronous: %w", err)
		}
		defer func() {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = `+s.synchronous); err != nil {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	return inTx(tx, err, fn)
}

// commit writes the batch in one transaction; unsynced, with
// synchronous=NORMAL (see CommitUnsynced).
func (s *Store) commit(ctx context.Context, batch []*engine.Processed, unsynced bool) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if s.readOnly {
		return fmt.Errorf("sqlite: commit: %s is open read-only", s.path)
	}
	// Once begun, the transaction runs to its end: a cancelled context
	// would only turn a commit that is nearly done into a rollback, and it
	// costs the driver a goroutine per statement to watch it.
	ctx = context.WithoutCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.next
	defer func() {
		if err != nil {
			err = markCorrupt(err)
			s.next = start
			for _, p := range batch {
				p.Outcome.Position = 0
				for i := range p.Outcome.Events {
					p.Outcome.Events[i].Position = 0
				}
			}
		}
	}()
	var events, commands, instances []any
	ids := make([]string, len(batch))
	type instKey struct{ typ, id string }
	last := map[instKey]int{}  // the index in instances of each instance's record
	var moved map[instKey]bool // the instances given another owner, rarely any
	for i, p := range batch {
		out := &p.Outcome
		ids[i] = out.Command.ID
		first := s.next
		var formerOwner any // NULL but for a command that moved its instance
		if p.FormerOwner != "" {
			formerOwner = p.FormerOwner
		}
		for i := range out.Events {
			ev := &out.Events[i]
			ev.Position = s.next
			s.next++
			body, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("sqlite: encode event %s: %w", ev.ID, err)
			}
			events = append(events, ev.Position, ev.ID, ev.Type, ev.AggregateID, ev.Seq, ev.Name, ev.CorrelationID, out.Owner, string(body), formerOwner)
		}
		out.Position = s.next
		s.next++
		body, err := json.Marshal(out.Command)
		if err != nil {
			return fmt.Errorf("sqlite: encode command %s: %w", out.Command.ID, err)
		}
		var errs []byte
		if len(out.Errors) > 0 {
			if errs, err = json.Marshal(out.Errors); err != nil {
				return fmt.Errorf("sqlite: encode errors of %s: %w", out.Command.ID, err)
			}
		}
		commands = append(commands, out.Command.ID, out.Position, out.Command.CorrelationID,
			string(out.Status), nullable(errs), out.Owner, first, len(out.Events), string(body))
		if in := p.Instance; in != nil {
			var lineage []byte
			if len(in.Lineage) > 0 {
				if lineage, err = json.Marshal(in.Lineage); err != nil {
					return fmt.Errorf("sqlite: encode lineage of %s/%s: %w", in.Type, in.ID, err)
				}
			}
			row := []any{s.physical(in.Type), in.ID, in.Seq, string(in.State), nullable(lineage), in.Owner, in.UpdatedAt.UTC().Format(time.RFC3339Nano)}
			k := instKey{in.Type, in.ID}
			if p.OwnerMoved {
				if moved == nil {
					moved = map[instKey]bool{}
				}
				moved[k] = true
			}
			if i, ok := last[k]; ok {
				if prev := instances[i+2].(int64); prev >= in.Seq {
					return fmt.Errorf("sqlite: write %s/%s: seq %d after seq %d in one batch", in.Type, in.ID, in.Seq, prev)
				}
				copy(instances[i:], row)
			} else {
				last[k] = len(instances)
				instances = append(instances, row...)
			}
		}
	}

	// The filter learns the ids before they are stored, so that it never
	// misses a stored one; should the transaction fail, they are merely
	// looked up for nothing later.
	s.filter.add(ids...)
	return s.writeTx(ctx, unsynced, func(tx *sql.Tx) error {
		if _, err := s.insEvents.exec(ctx, tx, events); err != nil {
			return fmt.Errorf("sqlite: insert events: %w", err)
		}
		if _, err := s.insCommands.exec(ctx, tx, commands); err != nil {
			return fmt.Errorf("sqlite: insert commands: %w", err)
		}
		n, err := s.putInstances.exec(ctx, tx, instances)
		if err != nil {
			return fmt.Errorf("sqlite: write instances: %w", err)
		}
		if want := int64(len(last)); n != want {
			return fmt.Errorf("sqlite: write instances: %d of %d records are not newer than the stored ones", want-n, want)
		}
		// A record written over another keeps its owner, which the
		// index by owner has: only those moved are written again.
		for k := range moved {
			row := instances[last[k]:]
			if _, err := tx.ExecContext(ctx, `UPDATE instances SET owner = ? WHERE type = ? AND id = ?`, row[5], row[0], row[1]); err != nil {
				return fmt.Errorf("sqlite: move %s/%s to its owner: %w", k.typ, k.id, err)
			}
		}
		return nil
	})
}

func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Load returns the instance's record; see engine.Log.
func (s *Store) Load(ctx context.Context, typ, id string) (engine.Instance, error) {
	in := engine.Instance{Type: typ, ID: id}
	var state string
	var lineage sql.NullString
	var updated string
	err := s.loadInstance.QueryRowContext(ctx, s.physical(typ), id).
		Scan(&in.Seq, &state, &lineage, &in.Owner, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return in, nil
	}
	if err != nil {
		return in, fmt.Errorf("sqlite: load %s/%s: %w", typ, id, err)
	}
	in.State = json.RawMessage(state)
	if lineage.Valid {
		if err := fastjson.Unmarshal([]byte(lineage.String), &in.Lineage); err != nil {
			return in, fmt.Errorf("sqlite: decode lineage of %s/%s: %w", typ, id, err)
		}
	}
	in.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	return in, nil
}

// LastSeq returns the seq of the last event of an instance in the log, 0
// if it has none; see engine.SeqLog.
func (s *Store) LastSeq(ctx context.Context, typ, id string) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE type = ? AND aggregate_id = ?`, typ, id).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last seq of %s/%s: %w", typ, id, err)
	}
	return seq, nil
}

// Outcome returns the recorded outcome of a command; see engine.Log.
func (s *Store) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	var out plait.Outcome
	var status, body string
	var errs sql.NullString
	var first, count int64
	err := s.loadOutcome.QueryRowContext(ctx, id).
		Scan(&out.Position, &status, &errs, &out.Owner, &first, &count, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return out, false, nil
	}
	if err != nil {
		return out, false, fmt.Errorf("sqlite: outcome %s: %w", id, err)
	}
	out.Status = plait.Status(status)
	if err := fastjson.Unmarshal([]byte(body), &out.Command); err != nil {
		return out, false, fmt.Errorf("sqlite: decode command %s: %w", id, err)
	}
	if errs.Valid {
		if err := fastjson.Unmarshal([]byte(errs.String), &out.Errors); err != nil {
			return out, false, fmt.Errorf("sqlite: decode errors of %s: %w", id, err)
		}
	}
	if count > 0 {
		rows, err := s.loadEventRange.QueryContext(ctx, first, first+count)
		if err != nil {
			return out, false, fmt.Errorf("sqlite: events of %s: %w", id, err)
		}
		if out.Events, err = scanEvents(rows); err != nil {
			return out, false, err
		}
	}
	return out, true, nil
}

// KnownCommands returns the ids among ids that have a recorded outcome. The
// engine uses it to look up a whole batch for dedup at once. The ids the
// command filter has never seen are certainly new and cost no read; the
// others are read, 64 to a query.
func (s *Store) KnownCommands(ctx context.Context, ids []string) (map[string]bool, error) {
	known := map[string]bool{}
	if maybe, ok := s.filter.maybeHeld(ids); ok {
		ids = maybe
	}
	args := make([]any, 0, idsPerLookup[len(idsPerLookup)-1])
	for len(ids) > 0 {
		n := idsPerLookup[len(idsPerLookup)-1]
		for _, size := range idsPerLookup {
			if size >= len(ids) {
				n = size
				break
			}
		}
		chunk := ids[:min(n, len(ids))]
		ids = ids[len(chunk):]
		args = args[:0]
		for i := 0; i < n; i++ {
			args = append(args, chunk[min(i, len(chunk)-1)])
		}
		if err := s.known(ctx, s.knownCommands[n], args, known); err != nil {
			return nil, err
		}
	}
	return known, nil
}

func (s *Store) known(ctx context.Context, st *sql.Stmt, args []any, known map[string]bool) error {
	s.dedupReads.Add(1)
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("sqlite: known commands: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("sqlite: scan known command: %w", err)
		}
		known[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: known commands: %w", err)
	}
	return nil
}

// scanEventsBounded is scanEvents, stopping once the page is full; see
// Options.MaxPageBytes.
func (s *Store) scanEventsBounded(rows *sql.Rows) ([]plait.Event, error) {
	defer rows.Close()
	var evs []plait.Event
	size := 0
	for !s.full(len(evs), size) && rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: scan event: %w", err)
		}
		var ev plait.Event
		if err := fastjson.Unmarshal([]byte(body), &ev); err != nil {
			return nil, fmt.Errorf("sqlite: decode event: %w", err)
		}
		evs = append(evs, ev)
		size += len(body)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return evs, nil
}

func scanEvents(rows *sql.Rows) ([]plait.Event, error) {
	defer rows.Close()
	var evs []plait.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: scan event: %w", err)
		}
		var ev plait.Event
		if err := fastjson.Unmarshal([]byte(body), &ev); err != nil {
			return nil, fmt.Errorf("sqlite: decode event: %w", err)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return evs, nil
}

// Events returns an instance's history; see engine.Queries.
func (s *Store) Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT body FROM events WHERE type = ? AND aggregate_id = ? AND seq > ? ORDER BY seq LIMIT ?`, typ, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events of %s/%s: %w", typ, id, err)
	}
	return s.scanEventsBounded(rows)
}

// ReadFeed returns events and outcomes in position order; see engine.Feed.
func (s *Store) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	former := "former_owner"
	if !s.formerOwners {
		former = "NULL"
	}
	rows, err := s.r.QueryContext(ctx, `
		SELECT pos, 'e', body, owner, NULL, NULL, `+former+` FROM events WHERE pos > ?1
		UNION ALL
		SELECT pos, 'o', body, owner, status, errors, NULL FROM commands WHERE pos > ?1
		ORDER BY pos LIMIT ?2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read feed: %w", err)
	}
	defer rows.Close()
	var items []engine.Item
	size := 0
	for !s.full(len(items), size) && rows.Next() {
		var it engine.Item
		var kind, body string
		var status, errs, former sql.NullString
		if err := rows.Scan(&it.Position, &kind, &body, &it.Owner, &status, &errs, &former); err != nil {
			return nil, fmt.Errorf("sqlite: scan feed: %w", err)
		}
		size += len(body) + len(errs.String)
		it.FormerOwner = former.String
		if kind == "e" {
			it.Event = new(plait.Event)
			if err := fastjson.Unmarshal([]byte(body), it.Event); err != nil {
				return nil, fmt.Errorf("sqlite: decode event: %w", err)
			}
		} else {
			out := &plait.Outcome{Status: plait.Status(status.String), Position: it.Position, Owner: it.Owner}
			if err := fastjson.Unmarshal([]byte(body), &out.Command); err != nil {
				return nil, fmt.Errorf("sqlite: decode command: %w", err)
			}
			if errs.Valid {
				if err := fastjson.Unmarshal([]byte(errs.String), &out.Errors); err != nil {
					return nil, fmt.Errorf("sqlite: decode errors: %w", err)
				}
			}
			it.Outcome = out
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read feed: %w", err)
	}
	return items, nil
}

// Head returns the highest position committed, or given by a store that a
// restore replaced when that is higher (see positionsGiven); see
// engine.Feed.
func (s *Store) Head(ctx context.Context) (int64, error) {
	db := s.r
	if db == nil {
		db = s.w
	}
	return readHead(ctx, db, true)
}

// LastItem returns the position of the log's last item: below Head when
// a restore recorded positions the store it replaced gave past it.
func (s *Store) LastItem(ctx context.Context) (int64, error) {
	return readHead(ctx, s.r, false)
}

// positionsGiven names the row of the checkpoints table that holds the
// last position the store a restore replaced had given. The restored
// store's head starts there, so that its new commits take positions after
// every one the replaced store gave: a stream resumed with a token the
// replaced store gave then misses none of them. Checkpoints leaves it out.
const positionsGiven = "plait: positions given"

// readHead returns the last position of the log in db; with given, the
// last position given by a store a restore replaced if that is higher.
func readHead(ctx context.Context, db *sql.DB, given bool) (int64, error) {
	q := `SELECT max(coalesce((SELECT max(pos) FROM events), 0), coalesce((SELECT max(pos) FROM commands), 0))`
	if given {
		q = `SELECT max(coalesce((SELECT max(pos) FROM events), 0), coalesce((SELECT max(pos) FROM commands), 0),
			coalesce((SELECT pos FROM checkpoints WHERE name = '` + positionsGiven + `'), 0))`
	}
	var head int64
	if err := db.QueryRowContext(ctx, q).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite: head: %w", err)
	}
	return head, nil
}

// Checkpoint returns a subscription's position; see engine.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.r.QueryRowContext(ctx, `SELECT pos FROM checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint records a subscription's position; see engine.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO checkpoints(name, pos) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET pos = max(pos, excluded.pos)`, name, pos)
	if err != nil {
		return fmt.Errorf("sqlite: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Checkpoints returns every subscription's position, by name.
func (s *Store) Checkpoints(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, pos FROM checkpoints WHERE name <> ? ORDER BY name`, positionsGiven)
	if err != nil {
		return nil, fmt.Errorf("sqlite: checkpoints: %w", err)
	}
	defer rows.Close()
	cps := map[string]int64{}
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return nil, fmt.Errorf("sqlite: scan checkpoint: %w", err)
		}
		cps[name] = pos
	}
	return cps, rows.Err()
}

// LastEventOf returns the correlation's last event among keys; see
// engine.Correlations.
func (s *Store) LastEventOf(ctx context.Context, correlationID string, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	args := []any{correlationID}
	var cond []string
	for _, k := range keys {
		typ, name, _ := strings.Cut(k, ".")
		cond = append(cond, "(type = ? AND name = ?)")
		args = append(args, typ, name)
	}
	var pos sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT max(pos) FROM events WHERE correlation_id = ? AND (`+strings.Join(cond, " OR ")+`)`, args...).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last event of %s: %w", correlationID, err)
	}
	return pos.Int64, nil
}

// EventsAfter counts the events of keys ("type.name") in the positions
// (after, upTo]: for a subscription at its checkpoint, the events it has
// still to handle up to the head.
func (s *Store) EventsAfter(ctx context.Context, after, upTo int64, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	args := []any{after, upTo}
	var cond []string
	for _, k := range keys {
		typ, name, _ := strings.Cut(k, ".")
		cond = append(cond, "(type = ? AND name = ?)")
		args = append(args, typ, name)
	}
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE pos > ? AND pos <= ? AND (`+strings.Join(cond, " OR ")+`)`, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count events after %d: %w", after, err)
	}
	return n, nil
}

// Counts returns the instances and events of every aggregate type, by type.
func (s *Store) Counts(ctx context.Context) (map[string]engine.TypeCount, error) {
	counts := map[string]engine.TypeCount{}
	for _, q := range []struct {
		sql    string
		events bool
	}{
		{`SELECT type, count(*) FROM instances GROUP BY type`, false},
		{`SELECT type, count(*) FROM events GROUP BY type`, true},
	} {
		rows, err := s.r.QueryContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("sqlite: counts: %w", err)
		}
		for rows.Next() {
			var typ string
			var n int64
			if err := rows.Scan(&typ, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: counts: %w", err)
			}
			if !q.events && typ != s.physical(logical(typ)) {
				continue // a copy of a view being rebuilt, or left by a crash
			}
			c := counts[logical(typ)]
			if q.events {
				c.Events = n
			} else {
				c.Instances = n
			}
			counts[logical(typ)] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: counts: %w", err)
		}
	}
	return counts, nil
}

// ReadEventsOf returns the events of the given keys in a range of
// positions; see engine.FilteredEvents.
func (s *Store) ReadEventsOf(ctx context.Context, after, upTo int64, keys []string, limit int) ([]plait.Event, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args := []any{after, upTo}
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, limit)
	// Matching type || '.' || name keeps SQLite on the position order
	// (a range of the primary key); matching (type, name) makes it pick the
	// (type, aggregate_id, seq) index and sort, six times slower.
	rows, err := s.r.QueryContext(ctx, `SELECT body FROM events WHERE pos > ? AND pos <= ? AND type || '.' || name IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`) ORDER BY pos LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return scanEvents(rows)
}

// ReadEvents returns events in position order; see engine.Feed.
func (s *Store) ReadEvents(ctx context.Context, after int64, limit int) ([]plait.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT body FROM events WHERE pos > ? ORDER BY pos LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	for i := range evs {
		if evs[i].Position == 0 {
			return nil, fmt.Errorf("sqlite: event %s has no position", evs[i].ID)
		}
	}
	return evs, nil
}
