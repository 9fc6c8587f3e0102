package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/durable"
)

// A store's file is backed up while a server writes it, and restored while
// none runs.
//
// Backup asks SQLite for a consistent copy (VACUUM INTO, in one read
// transaction: every commit is in it whole or not at all) of the file and
// its write-ahead log, written beside the destination, synced, checked,
// and only then given its name: a file at the destination is a whole
// backup.
//
// Restore puts a backup in the store's place and keeps the store it
// replaces beside it. A backup holds the keys of the data subjects
// forgotten since it was taken; Restore destroys them again, telling
// them by the store it replaces, which holds no key of a forgotten
// subject (see Key and Destroy).

// ErrExists is returned by Backup when its destination exists: a backup
// never overwrites a file.
var ErrExists = errors.New("sqlite: the backup's destination exists")

// ErrBadBackup is returned by Restore when the file to restore is not a
// whole, sound store.
var ErrBadBackup = errors.New("sqlite: not a sound store")

// BackupInfo describes a backup made.
type BackupInfo struct {
	// Bytes is the backup's size.
	Bytes int64
	// Head is the backup's head (see Store.Head): the last position of
	// the log it holds, or the last one given before the restore of the
	// store it was taken of, when that is higher.
	Head int64
}

// Backup writes a consistent copy of the store in the file at path into a
// new file at to, readable by its owner only, while the store may be in
// use by a server. It refuses a destination that exists (ErrExists).
func Backup(ctx context.Context, path, to string) (BackupInfo, error) {
	if _, err := os.Lstat(to); err == nil {
		return BackupInfo{}, fmt.Errorf("%w: %s", ErrExists, to)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return BackupInfo{}, fmt.Errorf("%w %s: %w", ErrNoStore, path, err)
	}
	src, err := openDB("file:" + path + "?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer src.Close()
	if err := requireStore(ctx, src, path); err != nil {
		return BackupInfo{}, err
	}
	partial, err := newPrivateFile(filepath.Dir(to), filepath.Base(to)+".partial-*")
	if err != nil {
		return BackupInfo{}, err
	}
	defer os.Remove(partial) // once renamed, there is nothing left to remove
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, partial); err != nil {
		return BackupInfo{}, withDiskSpace(fmt.Errorf("sqlite: back up %s: %w", path, err), to)
	}
	if err := durable.SyncFile(partial); err != nil {
		return BackupInfo{}, err
	}
	head, err := checkSound(ctx, partial)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: the backup written is not sound: %w", err)
	}
	// A hard link fails if the destination appeared meanwhile, where a
	// rename would replace it.
	if err := os.Link(partial, to); errors.Is(err, fs.ErrExist) {
		return BackupInfo{}, fmt.Errorf("%w: %s", ErrExists, to)
	} else if err != nil {
		// A file system without hard links (exFAT, some network ones):
		// look, then rename, which leaves a moment for a file to appear.
		if _, err := os.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
			return BackupInfo{}, fmt.Errorf("%w: %s", ErrExists, to)
		}
		if err := os.Rename(partial, to); err != nil {
			return BackupInfo{}, fmt.Errorf("sqlite: name the backup %s: %w", to, err)
		}
	}
	if err := durable.SyncDir(filepath.Dir(to)); err != nil {
		return BackupInfo{}, err
	}
	st, err := os.Stat(to)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	return BackupInfo{Bytes: st.Size(), Head: head}, nil
}

// partialName matches the names of the copies Backup writes before naming
// them, and of their journals.
var partialName = regexp.MustCompile(`\.partial-[0-9]+(-journal)?$`)

// PartialBackups returns the files in dir that backups cut short (by a
// crash, a kill) left there: copies that never got their names, and their
// journals. They hold what the store held, personal data and keys
// included. Remove them only while no backup writes into dir.
func PartialBackups(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: partial backups: %w", err)
	}
	var partials []string
	for _, e := range entries {
		if e.Type().IsRegular() && partialName.MatchString(e.Name()) {
			partials = append(partials, filepath.Join(dir, e.Name()))
		}
	}
	return partials, nil
}

// Restored describes a restore done.
type Restored struct {
	// Head is the backup's head (see BackupInfo.Head). The restored
	// store's head is Given when that is set, Head otherwise.
	Head int64
	// Given is the last position the replaced store had given, when it is
	// past Head: the restored store's new commits take positions after it,
	// so that a stream resumed with a token the replaced store gave misses
	// none of them. It is 0 when the replaced store gave no position past
	// Head, or could not tell (see Regiven).
	Given int64
	// Regiven is set when the replaced store could not be read (it is
	// missing or damaged): positions after Head that it may have given are
	// given again to new commits, so a stream resumed with one of its
	// tokens can miss frames. It says why.
	Regiven error
	// Replaced is where the store that the backup replaced was moved, its
	// write-ahead log beside it; "" when there was none.
	Replaced string
	// Reforgotten is how many keys of data subjects forgotten since the
	// backup was taken were destroyed again in the restored store.
	Reforgotten int
	// Unchecked is set when the replaced store could not tell the keys it
	// no longer holds (it is missing or damaged, or not a later state of
	// the backup's log: a store made afresh, say): the data
	// subjects forgotten since the backup was taken are remembered again,
	// and must be forgotten again. It says why.
	Unchecked error
}

// Restore puts the backup at from in the place of the store in the file
// at path, which no process may be using: the store there is moved aside,
// to Restored.Replaced, and the keys of the data subjects it had forgotten
// that the backup still holds are destroyed in the restored copy. The
// backup file itself is left as it is. A backup that is not a sound store
// is refused (ErrBadBackup) and nothing is changed.
func Restore(ctx context.Context, from, path string) (Restored, error) {
	if _, err := os.Stat(from); err != nil {
		return Restored{}, fmt.Errorf("sqlite: restore: %w", err)
	}
	head, err := checkSound(ctx, from)
	if err != nil {
		return Restored{}, fmt.Errorf("%w: %s: %w", ErrBadBackup, from, err)
	}
	// A restore cut short left its staged copy (personal data, keys): no
	// other restore runs, so every one there is such a leftover.
	if entries, err := os.ReadDir(filepath.Dir(path)); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), filepath.Base(path)+".restoring-") {
				os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
			}
		}
	}
	staged, err := newPrivateFile(filepath.Dir(path), filepath.Base(path)+".restoring-*")
	if err != nil {
		return Restored{}, err
	}
	defer os.Remove(staged)
	// A copy through SQLite, not of the file's bytes: the file restored
	// may have commits in its write-ahead log (a store moved aside by a
	// restore, put back), and a copy of the file alone would miss them.
	if err := vacuumInto(ctx, from, staged); err != nil {
		return Restored{}, withDiskSpace(fmt.Errorf("sqlite: restore %s: %w", from, err), path)
	}
	r := Restored{Head: head}
	live, err := subjectKeys(ctx, path)
	if err == nil {
		// Only a later state of the backup's own log tells the subjects
		// forgotten since: another store (one a server made afresh on an
		// empty data directory, say) holds none of the backup's keys,
		// and would have them all destroyed.
		err = requireLaterState(ctx, staged, path)
	}
	if err != nil {
		r.Unchecked = err
	} else if r.Reforgotten, err = destroyKeysNotIn(ctx, staged, live); err != nil {
		return Restored{}, err
	}
	// Any store that served at path gave its positions to streams, a
	// later state of the backup's log or not.
	if given, err := storeHead(ctx, path); err != nil {
		r.Regiven = err
	} else if given > r.Head {
		if err := giveUpTo(ctx, staged, given); err != nil {
			return Restored{}, err
		}
		r.Given = given
	}
	if _, err = checkSound(ctx, staged); err != nil {
		return Restored{}, fmt.Errorf("sqlite: the copy restored is not sound: %w", err)
	}
	if err := durable.SyncFile(staged); err != nil {
		return Restored{}, err
	}
	if r.Replaced, err = moveAside(ctx, path); err != nil {
		return Restored{}, err
	}
	if beforeRestoreRename != nil {
		beforeRestoreRename()
	}
	if err := os.Rename(staged, path); err != nil {
		return Restored{}, fmt.Errorf("sqlite: restore %s: %w", path, err)
	}
	return r, durable.SyncDir(filepath.Dir(path))
}

// beforeRestoreRename, set by tests, runs just before Restore puts the
// restored copy at the store's name.
var beforeRestoreRename func()

// requireStore returns ErrNoStore unless db, the file at path, holds a
// store's tables: a file that is no database at all included.
func requireStore(ctx context.Context, db *sql.DB, path string) error {
	s := &Store{w: db, path: path}
	err := s.checkSchema(ctx)
	if errors.Is(markCorrupt(err), engine.ErrCorrupt) {
		return fmt.Errorf("%w %s: %w", ErrNoStore, path, err)
	}
	return err
}

// checkSound opens the file at path read-only, checks that it is a whole
// store and sound (SQLite's quick_check), and returns its log's head.
func checkSound(ctx context.Context, path string) (head int64, err error) {
	db, err := openStore(ctx, path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&verdict); err != nil {
		return 0, fmt.Errorf("check %s: %w", path, err)
	}
	if verdict != "ok" {
		return 0, fmt.Errorf("check %s: %s", path, verdict)
	}
	return readHead(ctx, db, true)
}

// storeHead returns the head of the store at path (see Store.Head).
func storeHead(ctx context.Context, path string) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	db, err := openStore(ctx, path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return readHead(ctx, db, true)
}

// openStore opens the file at path read-only, unless it holds no store
// (see requireStore).
func openStore(ctx context.Context, path string) (*sql.DB, error) {
	db, err := openDB("file:" + path + "?mode=ro")
	if err != nil {
		return nil, err
	}
	if err := requireStore(ctx, db, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// giveUpTo records in the store at path that the positions up to pos were
// given: its new commits take positions after it (see positionsGiven).
func giveUpTo(ctx context.Context, path string, pos int64) error {
	db, err := openDB("file:" + path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `INSERT INTO checkpoints(name, pos) VALUES(?, ?)
		ON CONFLICT(name) DO UPDATE SET pos = max(pos, excluded.pos)`, positionsGiven, pos)
	if err != nil {
		return fmt.Errorf("sqlite: record the positions the replaced store gave: %w", err)
	}
	return nil
}

// subjectKeys reads every data subject's key in the store at path.
func subjectKeys(ctx context.Context, path string) (map[string]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read the store being replaced: %w", err)
	}
	db, err := openDB("file:" + path + "?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	s := &Store{w: db, path: path}
	if ok, err := s.hasTables(ctx, "subject_keys"); err != nil || !ok {
		return map[string]string{}, err // no key made yet
	}
	rows, err := db.QueryContext(ctx, `SELECT subject, key FROM subject_keys`)
	if err != nil {
		return nil, fmt.Errorf("read the keys of the store being replaced: %w", err)
	}
	defer rows.Close()
	keys := map[string]string{}
	for rows.Next() {
		var subject string
		var key []byte
		if err := rows.Scan(&subject, &key); err != nil {
			return nil, fmt.Errorf("read the keys of the store being replaced: %w", err)
		}
		keys[subject] = string(key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the keys of the store being replaced: %w", err)
	}
	return keys, nil
}

// destroyKeysNotIn destroys, in the store at path, every key that live
// does not hold: the key of a subject forgotten since (a subject given a
// new key after it was forgotten included). It returns how many.
func destroyKeysNotIn(ctx context.Context, path string, live map[string]string) (int, error) {
	// The journal is kept in memory: a journal file would hold the keys'
	// pages on the disk after its deletion. The file is a staged copy,
	// thrown away on any failure, so a journal lost in a crash costs
	// nothing.
	db, err := openDB("file:" + path + "?_pragma=secure_delete(on)&_pragma=journal_mode(MEMORY)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	s := &Store{w: db, path: path}
	if ok, err := s.hasTables(ctx, "subject_keys"); err != nil || !ok {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT subject, key FROM subject_keys`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: read the backup's keys: %w", err)
	}
	var gone []string
	for rows.Next() {
		var subject string
		var key []byte
		if err := rows.Scan(&subject, &key); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlite: read the backup's keys: %w", err)
		}
		if k, ok := live[subject]; !ok || k != string(key) {
			gone = append(gone, subject)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("sqlite: read the backup's keys: %w", err)
	}
	for _, subject := range gone {
		if _, err := tx.ExecContext(ctx, `DELETE FROM subject_keys WHERE subject = ?`, subject); err != nil {
			return 0, fmt.Errorf("sqlite: destroy a forgotten key: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: destroy forgotten keys: %w", err)
	}
	return len(gone), nil
}

// moveAside gives the store at path, with its write-ahead log and its
// shared-memory index, a name of its own beside it. It returns the new
// name, or "" when there was nothing at path. It first folds the log into
// the file, when it can: SQLite then removes the log, and the store moves
// in one rename. Whatever is left at path (a log without its file, from a
// restore cut short) is moved too: a log left there would be applied to
// the store restored.
func moveAside(ctx context.Context, path string) (string, error) {
	foldLog(ctx, path)
	aside := path + ".replaced-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	// A store whose log is folded is given its new name by a link, and
	// keeps its own until the restored copy replaces it, in one rename: a
	// restore cut short leaves it in its place.
	if folded(path) {
		if err := os.Link(path, aside); err == nil {
			return aside, nil
		}
		// No hard links here: it is moved, as a store with its log is.
	}
	moved := false
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := os.Rename(path+suffix, aside+suffix)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("sqlite: move the replaced store aside: %w", err)
		}
		moved = true
	}
	if !moved {
		return "", nil
	}
	return aside, nil
}

// folded reports whether the file at path exists, with neither a
// write-ahead log nor its index beside it.
func folded(path string) bool {
	if _, err := os.Lstat(path); err != nil {
		return false
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(path + suffix); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// foldLog copies the write-ahead log of the store at path into its file;
// closing the last connection then removes the log. A store it cannot
// open (damaged, or none) is left as it is.
func foldLog(ctx context.Context, path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	db, err := openDB("file:" + path + "?_pragma=busy_timeout(10000)")
	if err != nil {
		return
	}
	defer db.Close()
	db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
}

// newPrivateFile creates an empty file in dir, readable by its owner only,
// named after pattern (see os.CreateTemp), and returns its path.
func newPrivateFile(dir, pattern string) (string, error) {
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.CreateTemp(dir, pattern) // 0600
	if err != nil {
		return "", fmt.Errorf("sqlite: create a file in %s: %w", dir, err)
	}
	return f.Name(), f.Close()
}

// vacuumInto writes a consistent copy of the store in the file at from,
// its write-ahead log included, into the empty file at to, in rollback
// journal mode. The copy is not synced.
func vacuumInto(ctx context.Context, from, to string) error {
	db, err := openDB("file:" + from + "?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `VACUUM INTO ?`, to)
	return err
}

// requireLaterState returns an error unless the store at path is a later
// state of the store at backup: its log holds the backup's last item at
// the same position.
func requireLaterState(ctx context.Context, backup, path string) error {
	b, err := openDB("file:" + backup + "?mode=ro")
	if err != nil {
		return err
	}
	defer b.Close()
	head, err := readHead(ctx, b, false) // the last item, not a position given before a restore
	if err != nil {
		return err
	}
	if head == 0 {
		return nil // an empty log: every store's log comes after it
	}
	want, err := itemAt(ctx, b, head)
	if err != nil {
		return err
	}
	l, err := openDB("file:" + path + "?mode=ro")
	if err != nil {
		return err
	}
	defer l.Close()
	got, err := itemAt(ctx, l, head)
	if err != nil {
		return fmt.Errorf("read the store being replaced: %w", err)
	}
	if got != want {
		return fmt.Errorf("the store being replaced is not a later state of the backup: its log does not hold the backup's last item, at position %d", head)
	}
	return nil
}

// itemAt returns what tells the item at position pos of a store's log:
// its kind and id; "" when there is none.
func itemAt(ctx context.Context, db *sql.DB, pos int64) (string, error) {
	var item string
	err := db.QueryRowContext(ctx, `SELECT coalesce((SELECT 'event '||id FROM events WHERE pos = ?1),
		(SELECT 'command '||id FROM commands WHERE pos = ?1), '')`, pos).Scan(&item)
	return item, err
}
