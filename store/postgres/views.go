package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait/engine"
)

// ReplaceView replaces every instance of view type typ in one transaction;
// see engine.Views. The new records are copied into a temporary table first
// (COPY, fast for millions), then swapped in with one statement; an instance
// keeps a seq at least as high as the one it replaces.
func (s *Store) ReplaceView(ctx context.Context, typ string, insts []engine.Instance) error {
	for i := range insts {
		in := &insts[i]
		if !textOK(in.ID) || !textOK(in.Owner) || !jsonOK(in.State) {
			return fmt.Errorf("postgres: replace view %s: %w: instance %q", typ, ErrUnstorable, in.ID)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: replace view %s: begin: %w", typ, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE plait_view_rebuild (
		id text COLLATE "C" PRIMARY KEY, seq bigint NOT NULL, state jsonb NOT NULL, lineage jsonb,
		owner text NOT NULL, updated_at timestamptz NOT NULL) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("postgres: replace view %s: %w", typ, err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"plait_view_rebuild"},
		[]string{"id", "seq", "state", "lineage", "owner", "updated_at"},
		pgx.CopyFromSlice(len(insts), func(i int) ([]any, error) {
			in := &insts[i]
			var lineage any
			if len(in.Lineage) > 0 {
				lineage = in.Lineage
			}
			return []any{in.ID, in.Seq, in.State, lineage, in.Owner, in.UpdatedAt.UTC().Truncate(time.Microsecond)}, nil
		}))
	if err != nil {
		return fmt.Errorf("postgres: replace view %s: copy: %w", typ, err)
	}
	// The temporary table is new on every call: QueryExecModeExec keeps the
	// statement out of the connection's cache of prepared statements.
	_, err = tx.Exec(ctx, `
		WITH live AS (DELETE FROM `+s.table("instances")+` WHERE type = $1 RETURNING id, seq)
		INSERT INTO `+s.table("instances")+` (type, id, seq, state, lineage, owner, updated_at)
		SELECT $1, r.id, greatest(r.seq, l.seq), r.state, r.lineage, r.owner, r.updated_at
		FROM plait_view_rebuild r LEFT JOIN live l ON l.id = r.id`, pgx.QueryExecModeExec, typ)
	if err != nil {
		return fmt.Errorf("postgres: replace view %s: swap: %w", typ, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: replace view %s: commit: %w", typ, err)
	}
	return nil
}
