package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// The store keeps the data subjects' keys (engine.Keys) in a table of its
// own, written with SQLite's secure_delete on, so that a deleted key's
// bytes are overwritten with zeros in the pages that held them; after a
// deletion the write-ahead log is checkpointed and truncated, so that no
// older copy of those pages stays in it. Once Destroy returns, the key can
// be read from neither file.

const keysSchema = `CREATE TABLE IF NOT EXISTS subject_keys (
	subject TEXT PRIMARY KEY,
	key     BLOB NOT NULL
)`

// Key returns the subject's key, making one when create and there is none;
// see engine.Keys.
func (s *Store) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	if err := s.ensureKeyTable(ctx); err != nil {
		return nil, false, err
	}
	var key []byte
	err := s.r.QueryRowContext(ctx, `SELECT key FROM subject_keys WHERE subject = ?`, subject).Scan(&key)
	if err == nil {
		return key, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("sqlite: read key: %w", err)
	}
	if !create {
		return nil, false, nil
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	err = s.secure(ctx, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, `INSERT INTO subject_keys(subject, key) VALUES(?, ?) ON CONFLICT(subject) DO NOTHING`, subject, key); err != nil {
			return err
		}
		return c.QueryRowContext(ctx, `SELECT key FROM subject_keys WHERE subject = ?`, subject).Scan(&key)
	})
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: store key: %w", err)
	}
	return key, true, nil
}

// Destroy deletes the subject's key for good; see engine.Keys.
func (s *Store) Destroy(ctx context.Context, subject string) error {
	purge, err := s.DestroyKey(ctx, subject)
	if err != nil {
		return err
	}
	return purge(ctx)
}

// DestroyKey deletes the subject's key, and returns the function that
// empties the write-ahead log of its former pages, which waits for the
// readers of older snapshots; see shred.Purger.
func (s *Store) DestroyKey(ctx context.Context, subject string) (purge func(context.Context) error, err error) {
	if err := s.ensureKeyTable(ctx); err != nil {
		return nil, err
	}
	err = s.secure(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, `DELETE FROM subject_keys WHERE subject = ?`, subject)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: destroy key: %w", err)
	}
	return s.truncateWAL, nil
}

// ensureKeyTable creates the key table on the first use of the keys. It is
// not left to the caller's context (a request that goes away must not
// leave the table missing), and a failure is not remembered: the next use
// tries again.
func (s *Store) ensureKeyTable(ctx context.Context) error {
	if s.keysReady.Load() {
		return nil
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keysReady.Load() {
		return nil
	}
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), keysSchema); err != nil {
		return fmt.Errorf("sqlite: create the key table: %w", err)
	}
	s.keysReady.Store(true)
	return nil
}

// secure runs fn on the writer's connection with secure_delete on.
func (s *Store) secure(ctx context.Context, fn func(*sql.Conn) error) error {
	c, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return err
	}
	ferr := fn(c)
	_, err = c.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`)
	return errors.Join(ferr, err)
}

// truncateBudget is how long truncateWAL waits for readers that hold
// older snapshots, a backup running say, before it gives up.
const truncateBudget = time.Minute

// truncateWAL copies the write-ahead log into the database and truncates
// it, retrying while readers hold older snapshots, for up to
// truncateBudget. A checkpoint holds the write lock while it waits for
// readers, so each attempt waits only a moment: commits go on between
// them.
func (s *Store) truncateWAL(ctx context.Context) error {
	pause := 20 * time.Millisecond
	for deadline := time.Now().Add(truncateBudget); ; {
		busy, err := s.tryTruncateWAL(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: checkpoint: %w", err)
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("sqlite: checkpoint: readers kept the write-ahead log busy (a backup running?); ask again once they are done")
		}
		if err := sleepCtx(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// tryTruncateWAL makes one attempt of truncateWAL, waiting at most 25 ms
// for readers, and reports whether they kept the log busy.
func (s *Store) tryTruncateWAL(ctx context.Context) (busy bool, err error) {
	c, err := s.w.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `PRAGMA busy_timeout = 25`); err != nil {
		return false, err
	}
	var blocked, frames, done int
	err = c.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&blocked, &frames, &done)
	// The writer's own timeout, as Open sets it (busy_timeout(10000)). A
	// connection left with 25 ms would fail commits behind any reader:
	// if it cannot be put back, the connection is dropped.
	if _, rerr := c.ExecContext(context.WithoutCancel(ctx), `PRAGMA busy_timeout = 10000`); rerr != nil {
		c.Raw(func(any) error { return driver.ErrBadConn })
		return false, errors.Join(err, rerr)
	}
	return blocked != 0, err
}

// sleepCtx waits for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
