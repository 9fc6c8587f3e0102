package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Key returns the data subject's key, making one when create and there is
// none; see engine.Keys.
func (s *Store) Key(ctx context.Context, subject string, create bool) ([]byte, bool, error) {
	var key []byte
	err := s.pool.QueryRow(ctx, `SELECT key FROM `+s.table("subject_keys")+` WHERE subject = $1`, subject).Scan(&key)
	if err == nil {
		return key, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("postgres: read key: %w", err)
	}
	if !create {
		return nil, false, nil
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	err = s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO `+s.table("subject_keys")+` (subject, key) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING RETURNING key)
		SELECT key FROM ins UNION ALL SELECT key FROM `+s.table("subject_keys")+` WHERE subject = $1 LIMIT 1`, subject, key).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another writer inserted the subject's key and committed while
		// the insert waited on it: the statement's snapshot, taken before,
		// sees neither row. A new statement sees that writer's.
		err = s.pool.QueryRow(ctx, `SELECT key FROM `+s.table("subject_keys")+` WHERE subject = $1`, subject).Scan(&key)
	}
	if err != nil {
		return nil, false, fmt.Errorf("postgres: store key: %w", err)
	}
	return key, true, nil
}

// Destroy deletes the data subject's key, then rewrites the key table
// (VACUUM FULL), so that the deleted row does not stay in its data files;
// see engine.Keys. A transaction open elsewhere in the database since
// before the deletion makes the rewrite keep the row, until the next
// vacuum of the table once it ended. PostgreSQL's write-ahead log keeps
// the key until its segments are recycled: where that matters, keep the
// keys outside the database (package filekeys, or a key management
// service behind engine.Keys).
func (s *Store) Destroy(ctx context.Context, subject string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.table("subject_keys")+` WHERE subject = $1`, subject); err != nil {
		return fmt.Errorf("postgres: destroy key: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM FULL `+s.table("subject_keys")); err != nil {
		return fmt.Errorf("postgres: rewrite the key table: %w", err)
	}
	return nil
}

// KeysOf returns the keys of those of subjects that have one; see
// engine.KeySet.
func (s *Store) KeysOf(ctx context.Context, subjects []string) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject, key FROM `+s.table("subject_keys")+` WHERE subject = ANY($1)`, subjects)
	if err != nil {
		return nil, fmt.Errorf("postgres: read keys: %w", err)
	}
	defer rows.Close()
	keys := make(map[string][]byte, len(subjects))
	for rows.Next() {
		var subject string
		var key []byte
		if err := rows.Scan(&subject, &key); err != nil {
			return nil, fmt.Errorf("postgres: read keys: %w", err)
		}
		keys[subject] = key
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read keys: %w", err)
	}
	return keys, nil
}
