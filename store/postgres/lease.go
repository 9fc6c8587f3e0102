package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease is a PostgreSQL session-level advisory lock held on a connection of
// its own: among every process sharing the store's schema and prefix, at
// most one holds a lease of a given name at a time. It lasts until Release,
// or until its connection fails, which Check reports.
type Lease struct {
	conn *pgxpool.Conn
	key  int64
	name string
}

// TryLease takes the lease named name if no one holds it, without waiting:
// ok is false when another session holds it. The lease keeps one of the
// pool's connections until Release.
func (s *Store) TryLease(ctx context.Context, name string) (l *Lease, ok bool, err error) {
	key := s.leaseKey(name)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: lease %s: acquire a connection: %w", name, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return &Lease{conn: conn, key: key, name: name}, true, nil
}

// leaseKey is the advisory lock's key of the lease named name.
func (s *Store) leaseKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("plait lease " + s.opts.Schema + "." + s.opts.Prefix + " " + name))
	return int64(h.Sum64())
}

// heldLease selects the session (pid) holding the advisory lock of key $1
// in this database: advisory locks are per database.
const heldLease = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`

// LeaseHolder names the session that holds the lease named name, "" when
// none does.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var pid int32
	err := s.pool.QueryRow(ctx, heldLease, s.leaseKey(name)).Scan(&pid)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("postgres: the holder of lease %s: %w", name, err)
	}
	return strconv.Itoa(int(pid)), nil
}

// EvictLease ends the database session holder (see LeaseHolder) if it
// still holds the lease named name, which releases it, and reports
// whether it did: for a holder that stopped making progress, such as a
// frozen process, whose session, and lock, stay open as long as its
// connection does. The holder finds out at its next Check. It needs the
// right to end the session: the same database role, or
// pg_signal_backend.
func (s *Store) EvictLease(ctx context.Context, name, holder string) (bool, error) {
	pid, err := strconv.Atoi(holder)
	if err != nil {
		return false, fmt.Errorf("postgres: evict the holder of lease %s: no session %q", name, holder)
	}
	var ended bool
	err = s.pool.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM (`+heldLease+`) AS holder WHERE pid = $2`,
		s.leaseKey(name), pid).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("postgres: evict the holder of lease %s: %w", name, err)
	}
	return ended, nil
}

// Check returns an error when the lease may be lost: its connection no
// longer answers, so the database may have ended its session and with it
// the lock.
func (l *Lease) Check(ctx context.Context) error {
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM (`+heldLease+`) AS holder WHERE pid = pg_backend_pid())`, l.key).Scan(&held)
	if err != nil {
		return fmt.Errorf("postgres: lease %s: %w", l.name, err)
	}
	if !held {
		return fmt.Errorf("postgres: lease %s: no longer held", l.name)
	}
	return nil
}

// Release gives the lease up and returns its connection to the pool. A
// connection that cannot unlock is closed, which ends its session and the
// lock with it.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a dead connection must not hold up a shutdown
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
		l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
}
