package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// ReplaceView replaces every instance of view type typ in one transaction;
// see engine.Views. The new records are copied into a temporary table first
// (COPY, fast for millions), then swapped in with one statement; an instance
// keeps the seq of the one it replaces.
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
		owner text NOT NULL, updated_at timestamptz NOT NULL, search jsonb) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("postgres: replace view %s: %w", typ, err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"plait_view_rebuild"},
		[]string{"id", "seq", "state", "lineage", "owner", "updated_at", "search"},
		pgx.CopyFromSlice(len(insts), func(i int) ([]any, error) {
			in := &insts[i]
			var lineage, search any
			if len(in.Lineage) > 0 {
				lineage = in.Lineage
			}
			if doc := s.search.doc(typ, in.State, in.Seq); doc != "" {
				search = json.RawMessage(doc)
			}
			return []any{in.ID, in.Seq, in.State, lineage, in.Owner, in.UpdatedAt.UTC().Truncate(time.Microsecond), search}, nil
		}))
	if err != nil {
		return fmt.Errorf("postgres: replace view %s: copy: %w", typ, err)
	}
	// The temporary table is new on every call: QueryExecModeExec keeps the
	// statement out of the connection's cache of prepared statements.
	_, err = tx.Exec(ctx, `
		WITH live AS (DELETE FROM `+s.table("instances")+` WHERE type = $1 RETURNING id, seq)
		INSERT INTO `+s.table("instances")+` (type, id, seq, state, lineage, owner, updated_at, search)
		SELECT $1, r.id, coalesce(l.seq, r.seq), r.state, r.lineage, r.owner, r.updated_at, r.search
		FROM plait_view_rebuild r LEFT JOIN live l ON l.id = r.id`, pgx.QueryExecModeExec, typ)
	if err != nil {
		return fmt.Errorf("postgres: replace view %s: swap: %w", typ, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: replace view %s: commit: %w", typ, err)
	}
	return nil
}

// A view being rebuilt is written beside the live one, in the instances
// table under a physical type of its own ("orderList~1700000000"), which no
// read of the application ever names: the live view keeps serving from its
// own rows while the copy grows. Swap then applies the copy to the live rows
// in one transaction. The live view keeps its type, so the processes that
// share the schema need not learn of a new copy: each of their reads and
// commits names the same rows before and after, and sees the swap at once.
// Readers never wait for it (each sees the view before or after, whole);
// commits that write the view wait for it, and it rewrites only the
// instances the rebuild changed, so what it costs grows with the changes,
// its scan of the copy with the view.

var _ engine.StagedViews = (*Store)(nil)

// copyMark separates a view's type from its copy's suffix in the physical
// type of a staged copy; aggregate types never contain it.
const copyMark = "~"

// StageView starts an empty copy of view typ; see engine.StagedViews. The
// copy needs no index of its own: it is never listed, and the live view
// keeps its indexes. One copy of a view is staged at a time among every
// process sharing the schema: the copy holds a lease (TryLease) until
// Cleanup, and StageView fails while another holds it. Holding it, it first
// deletes what copies of the view a process that crashed left behind.
func (s *Store) StageView(ctx context.Context, typ string, settings plait.Settings) (engine.ViewCopy, error) {
	if typ == "" || strings.Contains(typ, copyMark) || !textOK(typ) {
		return nil, fmt.Errorf("postgres: stage view %q: not a view type", typ)
	}
	lease, ok, err := s.TryLease(ctx, "view copy "+typ)
	if err != nil {
		return nil, fmt.Errorf("postgres: stage view %s: %w", typ, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s (%w)", ErrCopyStaged, typ, engine.ErrRebuilding)
	}
	// Every copy of typ sorts between "typ~" and "typ\x7f" (under the C
	// collation of the type column), a range of the primary key.
	if err := s.deleteChunked(ctx, `type > $1 AND type < $2`, typ+copyMark, typ+"\x7f"); err != nil {
		lease.Release()
		return nil, fmt.Errorf("postgres: stage view %s: drop abandoned copies: %w", typ, err)
	}
	if _, err := s.ViewGenerations(ctx, []string{typ}); err != nil { // the fence's row, for SwapFenced
		lease.Release()
		return nil, fmt.Errorf("postgres: stage view %s: %w", typ, err)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	return &viewCopy{s: s, typ: typ, lease: lease, searchable: slices.Clone(settings.Searchable),
		phys: fmt.Sprintf("%s%s%d.%s", typ, copyMark, time.Now().UnixNano(), hex.EncodeToString(suffix[:]))}, nil
}

// viewCopy is one staged copy of a view.
type viewCopy struct {
	s          *Store
	typ        string
	phys       string
	lease      *Lease
	searchable []string // the view's searchable fields, keyed as written
	swapped    bool
	done       bool
}

// Write puts instances into the copy, replacing earlier writes of the same
// ids, in one statement. The seqs are set to the live ones' by Swap,
// which sees the live view as it is when the copy is made live.
func (c *viewCopy) Write(ctx context.Context, insts []engine.Instance) error {
	if c.swapped || c.done {
		return fmt.Errorf("postgres: write to the copy of %s: the copy is no longer staged", c.typ)
	}
	return c.write(ctx, c.s.pool, insts)
}

// execer runs a statement: the pool, or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (c *viewCopy) write(ctx context.Context, db execer, insts []engine.Instance) error {
	var rows instanceRows
	for i := range insts {
		in := insts[i]
		if !textOK(in.ID) || !textOK(in.Owner) || !jsonOK(in.State) {
			return fmt.Errorf("postgres: write to the copy of %s: %w: instance %q", c.typ, ErrUnstorable, in.ID)
		}
		in.Type = c.phys
		in.UpdatedAt = in.UpdatedAt.UTC().Truncate(time.Microsecond)
		rows.add(&in, searchDoc(c.searchable, in.State, in.Seq))
	}
	if len(insts) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `INSERT INTO `+c.s.table("instances")+` AS t (type, id, seq, state, lineage, owner, updated_at, search)
		SELECT type, id, seq, state::jsonb, nullif(lineage, '')::jsonb, owner, updated_at, nullif(search, '')::jsonb
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
		AS u(type, id, seq, state, lineage, owner, updated_at, search)
		ON CONFLICT (type, id) DO UPDATE SET seq = excluded.seq, state = excluded.state, lineage = excluded.lineage,
			owner = excluded.owner, updated_at = excluded.updated_at, search = excluded.search`,
		rows.typ, rows.id, rows.seq, rows.state, rows.lineage, rows.owner, rows.at, rows.search)
	if err != nil {
		return fmt.Errorf("postgres: write to the copy of %s: %w", c.typ, err)
	}
	return nil
}

// Swap makes the copy the live view in one transaction: the live instances
// the copy lacks are deleted, and every instance of the copy that differs
// from its live record replaces it, keeping the live one's seq, its last
// event's in the log, so that its later events neither collide with its
// history nor leave a gap. An instance the rebuild left as it was is not written.
func (c *viewCopy) Swap(ctx context.Context) error { return c.swap(ctx, nil) }

// SwapFenced is Swap behind the view's fence, for a view that other
// processes update while it is rebuilt; see engine.FencedCopy. In one
// transaction it moves the view's generation on, which waits for the
// commits of the view under way (they hold the fence) and holds up those
// that come, then calls finish, which writes to the copy the last changes
// within the transaction, then swaps. Every commit decided on the view's
// records before the swap (CommitFenced with the former generation) then
// fails: its batch is decided again on the new records.
func (c *viewCopy) SwapFenced(ctx context.Context, finish func(ctx context.Context, write func([]engine.Instance) error) error) error {
	return c.swap(ctx, finish)
}

func (c *viewCopy) swap(ctx context.Context, finish func(ctx context.Context, write func([]engine.Instance) error) error) error {
	if c.swapped || c.done {
		return fmt.Errorf("postgres: swap %s: the copy is no longer staged", c.typ)
	}
	instances := c.s.table("instances")
	tx, err := c.s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: swap %s: begin: %w", c.typ, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if finish != nil {
		if _, err := tx.Exec(ctx, `UPDATE `+c.s.table("view_swaps")+` SET gen = gen + 1 WHERE type = $1`, c.typ); err != nil {
			return fmt.Errorf("postgres: swap %s: fence: %w", c.typ, err)
		}
		if err := finish(ctx, func(insts []engine.Instance) error { return c.write(ctx, tx, insts) }); err != nil {
			return fmt.Errorf("postgres: swap %s: %w", c.typ, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+instances+` l WHERE l.type = $1
		AND NOT EXISTS (SELECT FROM `+instances+` c WHERE c.type = $2 AND c.id = l.id)`, c.typ, c.phys); err != nil {
		return fmt.Errorf("postgres: swap %s: delete: %w", c.typ, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+instances+` AS t (type, id, seq, state, lineage, owner, updated_at, search)
		SELECT $1, id, seq, state, lineage, owner, updated_at, search FROM `+instances+` WHERE type = $2 ORDER BY id
		ON CONFLICT (type, id) DO UPDATE SET state = excluded.state,
			lineage = excluded.lineage, owner = excluded.owner, updated_at = excluded.updated_at, search = excluded.search
		WHERE t.state IS DISTINCT FROM excluded.state OR t.lineage IS DISTINCT FROM excluded.lineage
			OR t.owner IS DISTINCT FROM excluded.owner OR t.updated_at IS DISTINCT FROM excluded.updated_at
			OR t.search IS DISTINCT FROM excluded.search`, c.typ, c.phys); err != nil {
		return fmt.Errorf("postgres: swap %s: %w", c.typ, classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: swap %s: commit: %w", c.typ, err)
	}
	c.swapped = true
	return nil
}

// Cleanup deletes the copy's rows, whether it was swapped in (its records
// are the live ones' now) or not, and gives up the copy's lease; see
// engine.ViewCopy. It deletes in small transactions so that no lock is held
// long.
func (c *viewCopy) Cleanup(ctx context.Context) error {
	if c.done {
		return nil
	}
	c.done = true
	defer c.lease.Release()
	if err := c.s.deleteChunked(ctx, `type = $1`, c.phys); err != nil {
		return fmt.Errorf("postgres: drop the copy of %s: %w", c.typ, err)
	}
	return nil
}

// deleteChunk is how many instance rows one statement of deleteChunked
// deletes.
const deleteChunk = 5000

// deleteChunked deletes the instance rows where the condition holds, a
// chunk per statement.
func (s *Store) deleteChunked(ctx context.Context, where string, args ...any) error {
	instances := s.table("instances")
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+instances+` WHERE (type, id) IN
			(SELECT type, id FROM `+instances+` WHERE `+where+` LIMIT `+strconv.Itoa(deleteChunk)+`)`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < deleteChunk {
			return nil
		}
	}
}

var _ engine.ViewFence = (*Store)(nil)

// ViewGenerations returns how many times each of the views types was
// swapped for a rebuilt copy (SwapFenced), the fence of CommitFenced; see
// engine.ViewFence. It makes the fence's row of a view that has none.
func (s *Store) ViewGenerations(ctx context.Context, types []string) (map[string]int64, error) {
	for _, t := range types {
		if !textOK(t) {
			return nil, fmt.Errorf("postgres: view generations: %w: type %q", ErrUnstorable, t)
		}
	}
	read := func() (map[string]int64, error) {
		rows, err := s.pool.Query(ctx, s.sql.viewGens, types)
		if err != nil {
			return nil, err
		}
		gens := make(map[string]int64, len(types))
		var t string
		var g int64
		_, err = pgx.ForEachRow(rows, []any{&t, &g}, func() error { gens[t] = g; return nil })
		return gens, err
	}
	gens, err := read()
	if err == nil && len(gens) < len(types) {
		_, err = s.pool.Exec(ctx, `INSERT INTO `+s.table("view_swaps")+` (type, gen)
			SELECT unnest($1::text[]), 0 ON CONFLICT (type) DO NOTHING`, types)
		if err == nil {
			gens, err = read()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: view generations: %w", err)
	}
	return gens, nil
}
