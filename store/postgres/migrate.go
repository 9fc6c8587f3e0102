package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// migration is one versioned change of the schema. Its SQL names tables as
// {name}, replaced by the qualified, prefixed table.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are applied in order, each once per schema and prefix. Never
// edit one that has shipped: append a new one.
var migrations = []migration{
	{1, "log, state, checkpoints and offsets", `
CREATE TABLE {log_head} (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	pos bigint NOT NULL
);
INSERT INTO {log_head} (one, pos) VALUES (true, 0);

CREATE TABLE {events} (
	pos            bigint PRIMARY KEY,
	id             text COLLATE "C" NOT NULL UNIQUE,
	type           text COLLATE "C" NOT NULL,
	aggregate_id   text COLLATE "C" NOT NULL,
	seq            bigint NOT NULL CHECK (seq > 0),
	name           text COLLATE "C" NOT NULL,
	correlation_id text COLLATE "C" NOT NULL,
	causation_id   text COLLATE "C" NOT NULL,
	user_id        text NOT NULL,
	at             timestamptz NOT NULL,
	owner          text NOT NULL,
	data           jsonb,
	lineage        jsonb,
	UNIQUE (type, aggregate_id, seq)
);
CREATE INDEX {@events_by_correlation} ON {events} (correlation_id, pos);

CREATE TABLE {commands} (
	id             text COLLATE "C" PRIMARY KEY,
	pos            bigint NOT NULL UNIQUE,
	type           text COLLATE "C" NOT NULL,
	aggregate_id   text COLLATE "C" NOT NULL,
	name           text COLLATE "C" NOT NULL,
	data           json, -- json, not jsonb: the command's data exactly as sent, for a rejection to give back
	expected_seq   bigint,
	correlation_id text COLLATE "C" NOT NULL,
	causation_id   text COLLATE "C" NOT NULL,
	user_id        text NOT NULL,
	at             timestamptz NOT NULL,
	status         text NOT NULL CHECK (status IN ('accepted', 'rejected')),
	errors         jsonb,
	owner          text NOT NULL,
	first_event    bigint NOT NULL,
	event_count    integer NOT NULL
);

CREATE TABLE {instances} (
	type       text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	seq        bigint NOT NULL,
	state      jsonb NOT NULL,
	lineage    jsonb,
	owner      text NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (type, id)
);
CREATE INDEX {@instances_by_owner} ON {instances} (type, owner, id);

CREATE TABLE {checkpoints} (
	name text PRIMARY KEY,
	pos  bigint NOT NULL
);

CREATE TABLE {offsets} (
	topic       text NOT NULL,
	partition   integer NOT NULL,
	next_offset bigint NOT NULL,
	PRIMARY KEY (topic, partition)
);
`},
	{2, "event versions", `
-- The version of an event's data shape; NULL is version 1, as in every
-- event recorded before versions existed.
ALTER TABLE {events} ADD COLUMN version integer CHECK (version > 1);
`},
	{3, "subject keys", `
-- One key per data subject, for the personal fields (see keys.go).
CREATE TABLE {subject_keys} (
	subject text COLLATE "C" PRIMARY KEY,
	key     bytea NOT NULL
);
`},
	{4, "view swaps", `
-- How many times each view was swapped for a rebuilt copy: the fence of
-- the commits decided on a record from before a swap (see views.go).
CREATE TABLE {view_swaps} (
	type text COLLATE "C" PRIMARY KEY,
	gen  bigint NOT NULL
);
`},
	{5, "search keys", `
-- The plait.SearchKeys of an instance's searchable fields (see
-- search.go), and of each type, as EnsureIndexes last found it declared,
-- its searchable fields and the field of its state naming its owner.
ALTER TABLE {instances} ADD COLUMN search jsonb;
CREATE TABLE {type_fields} (
	type        text COLLATE "C" PRIMARY KEY,
	searchable  text[] NOT NULL,
	owner_field text NOT NULL
);
`},
	{6, "former owners", `
-- For the events of a command that gave its instance another owner, the
-- owner it had before, who sees them too (see engine.Item.FormerOwner).
ALTER TABLE {events} ADD COLUMN former_owner text;
`},
	{7, "store meta", `
-- What the store holds: the application that first ran on it, under the
-- key 'application' (see ClaimApplication).
CREATE TABLE {store_meta} (
	key   text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);
`},
}

// formerOwnersVersion is the migration that gave events their former
// owners.
const formerOwnersVersion = 6

// expand replaces {name} with the qualified table and {@name} with the
// unqualified, prefixed name (for indexes, which live in their table's
// schema).
func (s *Store) expand(sql string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(sql, '{')
		if i < 0 {
			b.WriteString(sql)
			return b.String()
		}
		j := strings.IndexByte(sql[i:], '}')
		if j < 0 {
			b.WriteString(sql)
			return b.String()
		}
		b.WriteString(sql[:i])
		name := sql[i+1 : i+j]
		if bare, ok := strings.CutPrefix(name, "@"); ok {
			b.WriteString(pgx.Identifier{s.opts.Prefix + bare}.Sanitize())
		} else {
			b.WriteString(s.table(name))
		}
		sql = sql[i+j+1:]
	}
}

// migrationLockTimeout is how long a migration waits for a table's lock
// before it gives way (see tryMigrate), and lockNotAvailable the SQLSTATE
// of its giving up.
const (
	migrationLockTimeout = "100ms"
	lockNotAvailable     = "55P03"
)

// errGaveWay is tryMigrate's word that a migration gave way to the readers
// of a table; migrate tries again after gaveWayPause, in which the commits
// that waited behind it go on.
var errGaveWay = errors.New("a migration gave way to the readers of a table")

const gaveWayPause = 500 * time.Millisecond

// lockPoll is how often a process waiting for the schema lock tries again.
const lockPoll = 25 * time.Millisecond

// migrate creates the schema when missing and applies every migration not yet
// applied, in one transaction holding the schema's advisory lock. Waiting
// processes poll with pg_try_advisory_xact_lock rather than block, so that
// no waiting transaction holds a snapshot a concurrent index build would
// wait for. A migration that waits over migrationLockTimeout for a table
// gives way and tries again until ctx ends (see tryMigrate). With
// Options.Application, a schema another application claimed is refused
// before any migration, and one unclaimed is claimed in the same
// transaction.
func (s *Store) migrate(ctx context.Context) error {
	gaveWay := 0
	for {
		done, err := s.tryMigrate(ctx)
		pause := lockPoll
		if errors.Is(err, errGaveWay) {
			pause, err = gaveWayPause, nil
			gaveWay++
		}
		if errors.Is(err, engine.ErrOtherApplication) {
			return fmt.Errorf("postgres: %w", err)
		}
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", s.opts.Schema, err)
		}
		if done {
			return nil
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			if gaveWay > 0 {
				return fmt.Errorf("postgres: migrate %s: gave way %d times to transactions using the tables it alters (one idle in a transaction, or a long read: see pg_stat_activity), which must end first: %w",
					s.opts.Schema, gaveWay, ctx.Err())
			}
			return fmt.Errorf("postgres: migrate %s: waiting for the schema lock: %w", s.opts.Schema, ctx.Err())
		}
	}
}

func (s *Store) tryMigrate(ctx context.Context) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, s.lockKey).Scan(&locked); err != nil {
		return false, fmt.Errorf("take the schema lock: %w", err)
	}
	if !locked {
		return false, nil
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, s.opts.Schema).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up the schema: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{s.opts.Schema}.Sanitize()); err != nil {
			return false, fmt.Errorf("create the schema: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, s.expand(`CREATE TABLE IF NOT EXISTS {schema_migrations} (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)); err != nil {
		return false, fmt.Errorf("create the migrations table: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, s.expand(`SELECT coalesce(max(version), 0) FROM {schema_migrations}`)).Scan(&current); err != nil {
		return false, fmt.Errorf("read the schema version: %w", err)
	}
	if current > len(migrations) {
		return false, fmt.Errorf("the schema is at version %d, newer than this program knows (%d): upgrade the program", current, len(migrations))
	}
	if s.opts.Application != "" {
		if err := s.checkApplication(ctx, tx); err != nil {
			return false, err
		}
	}
	if current < len(migrations) {
		// A migration that alters a table waits for the transactions
		// reading it, and every commit of the processes still running
		// waits behind it: rather than hold them for as long as a long
		// read lasts, it gives way after a moment and tries again.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+migrationLockTimeout+`'`); err != nil {
			return false, fmt.Errorf("set the lock timeout: %w", err)
		}
	}
	for _, m := range migrations[current:] {
		if _, err := tx.Exec(ctx, s.expand(m.sql)); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable {
				return false, errGaveWay
			}
			return false, fmt.Errorf("apply migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, s.expand(`INSERT INTO {schema_migrations} (version, name) VALUES ($1, $2)`), m.version, m.name); err != nil {
			return false, fmt.Errorf("record migration %d: %w", m.version, err)
		}
	}
	if s.opts.Application != "" {
		if _, err := tx.Exec(ctx, s.expand(`INSERT INTO {store_meta} (key, value) VALUES ('application', $1) ON CONFLICT (key) DO NOTHING`), s.opts.Application); err != nil {
			return false, fmt.Errorf("claim the schema: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// checkReadable checks, for a read-only store, that the schema holds a
// store of a version this program reads.
func (s *Store) checkReadable(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("schema_migrations")).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look up schema %s: %w", s.opts.Schema, err)
	}
	if !exists {
		return fmt.Errorf("postgres: schema %s holds no Plait store: is it the schema of an application that has run?", s.opts.Schema)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v == 0 || v > len(migrations) {
		return fmt.Errorf("postgres: schema %s is at version %d; this program reads versions 1 to %d", s.opts.Schema, v, len(migrations))
	}
	if v < formerOwnersVersion {
		s.sql = newStatements(s.table, false)
	}
	return nil
}

// SchemaVersion returns the last migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, s.expand(`SELECT coalesce(max(version), 0) FROM {schema_migrations}`)).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// sortExpr is the JSONB expression lists filter and sort field on, and the
// one its index is built on: a missing field counts as JSON null.
func sortExpr(field string) string {
	return "coalesce(state -> " + literal(field) + ", 'null'::jsonb)"
}

// indexName names the index of typ.field, within PostgreSQL's 63 bytes.
func (s *Store) indexName(typ, field string) string {
	name := s.opts.Prefix + "instances_" + typ + "_" + field
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(typ + "." + field))
		name = s.opts.Prefix + "instances_" + hex.EncodeToString(sum[:8])
	}
	return name
}

// EnsureIndexes creates a partial expression index on every field an
// aggregate type declares with plait.Indexed:
//
//	CREATE INDEX CONCURRENTLY ... ON instances ((coalesce(state->'field', 'null'::jsonb)), id) WHERE type = 'typ'
//
// so list queries that filter or sort on it stay fast with millions of
// instances. Indexes are built concurrently, so writes go on while a new one
// builds; an index a crashed build left invalid is dropped and built again.
// Processes that call it at once take turns under the schema's advisory lock.
//
// The instances of a type whose owner is a field of its state
// (plait.Access.OwnerField) are given the owners their states name, which
// those from before the field was its owner's have not.
//
// A type's searchable fields (plait.Searchable) get their indexes, and
// the keys its instances lack, or have of an older record or of other
// fields, are written once the indexes are there, out of the lock; then
// the fields are recorded, for every process that writes the type to key
// them. Fields no longer searchable lose their indexes.
func (s *Store) EnsureIndexes(ctx context.Context, defs []plait.Definition) error {
	recorded, err := s.ensureIndexes(ctx, defs)
	if err != nil {
		return err
	}
	for _, d := range defs {
		fields := canonical(d.Settings().Searchable)
		if len(fields) > 0 {
			if err := s.backfillSearch(ctx, d.Type(), fields); err != nil {
				return fmt.Errorf("postgres: search keys of %s: %w", d.Type(), err)
			}
		}
		if slices.Equal(recorded[d.Type()], fields) {
			continue
		}
		// Recorded once the keys are written: a backfill cut short is
		// done again at the next start.
		if _, err := s.pool.Exec(ctx, `INSERT INTO `+s.table("type_fields")+` (type, searchable, owner_field) VALUES ($1, $2, '')
			ON CONFLICT (type) DO UPDATE SET searchable = excluded.searchable`, d.Type(), fields); err != nil {
			return fmt.Errorf("postgres: record the searchable fields of %s: %w", d.Type(), err)
		}
	}
	return nil
}

// canonical is a list of searchable fields sorted, as they are recorded
// and compared, never nil.
func canonical(fields []string) []string {
	sorted := slices.Compact(slices.Sorted(slices.Values(fields)))
	if sorted == nil {
		return []string{} // stored as '{}', not NULL
	}
	return sorted
}

// ensureIndexes is EnsureIndexes but for the keys, under the schema lock;
// it returns the searchable fields recorded of each type (canonical).
func (s *Store) ensureIndexes(ctx context.Context, defs []plait.Definition) (recordedOf map[string][]string, err error) {
	recordedOf = map[string][]string{}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: ensure indexes: %w", err)
	}
	defer conn.Release()
	for {
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.lockKey).Scan(&locked); err != nil {
			return nil, fmt.Errorf("postgres: ensure indexes: take the schema lock: %w", err)
		}
		if locked {
			break
		}
		select {
		case <-time.After(lockPoll):
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres: ensure indexes: waiting for the schema lock: %w", ctx.Err())
		}
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, s.lockKey); err != nil {
			// The lock goes with the session: close it rather than hand a
			// locked connection back to the pool.
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	for _, d := range defs {
		typ := d.Type()
		fields, ownerField := canonical(d.Settings().Searchable), ""
		if a := d.Settings().Access; a.OwnerOnly {
			ownerField = a.OwnerField
		}
		var recorded []string
		var recordedOwner string
		err := conn.QueryRow(ctx, `SELECT searchable, owner_field FROM `+s.table("type_fields")+` WHERE type = $1`, typ).
			Scan(&recorded, &recordedOwner)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: read the fields of %s: %w", typ, err)
		}
		if ownerField != "" && ownerField != recordedOwner {
			// Instances from before the type's owner was this field
			// of its state: given the owners their states name.
			const owner = `CASE jsonb_typeof(state -> $2::text) WHEN 'string' THEN state ->> $2::text ELSE '' END`
			if _, err := conn.Exec(ctx, `UPDATE `+s.table("instances")+` SET owner = `+owner+`
				WHERE type = $1 AND owner IS DISTINCT FROM `+owner, typ, ownerField); err != nil {
				return nil, fmt.Errorf("postgres: owners of %s: %w", typ, err)
			}
		}
		// The searchable fields are recorded by EnsureIndexes once their
		// keys are written; the owner field, here.
		if ownerField != recordedOwner {
			if _, err := conn.Exec(ctx, `INSERT INTO `+s.table("type_fields")+` (type, searchable, owner_field) VALUES ($1, $2, $3)
				ON CONFLICT (type) DO UPDATE SET owner_field = excluded.owner_field`,
				typ, canonical(recorded), ownerField); err != nil {
				return nil, fmt.Errorf("postgres: record the owner field of %s: %w", typ, err)
			}
		}
		for _, f := range d.Settings().Indexes {
			if err := s.ensureIndex(ctx, conn.Conn(), typ, s.indexName(typ, f), sortExpr(f)); err != nil {
				return nil, fmt.Errorf("postgres: index %s.%s: %w", typ, f, err)
			}
		}
		recordedOf[typ] = canonical(recorded)
		if err := s.ensureSearchIndexes(ctx, conn.Conn(), typ, recordedOf[typ], fields); err != nil {
			return nil, err
		}
	}
	return recordedOf, nil
}

// ensureIndex creates the index name of the instances of typ on expr and
// their ids, unless it exists and is valid.
func (s *Store) ensureIndex(ctx context.Context, conn *pgx.Conn, typ, name, expr string) error {
	return s.ensureIndexOn(ctx, conn, typ, name, "("+expr+"), id", "")
}

// ensureIndexOn creates the index name of the instances of typ that meet
// cond (all if "") on cols, unless it exists and is valid.
func (s *Store) ensureIndexOn(ctx context.Context, conn *pgx.Conn, typ, name, cols, cond string) error {
	var valid bool
	err := conn.QueryRow(ctx, `
		SELECT i.indisvalid FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, s.opts.Schema, name).Scan(&valid)
	switch {
	case err == nil && valid:
		return nil
	case err == nil: // a build that failed or crashed left it invalid
		if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{s.opts.Schema, name}.Sanitize()); err != nil {
			return fmt.Errorf("drop invalid index: %w", err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("look up index: %w", err)
	}
	where := "type = " + literal(typ)
	if cond != "" {
		where += " AND " + cond
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE INDEX CONCURRENTLY IF NOT EXISTS %s ON %s (%s) WHERE %s`,
		pgx.Identifier{name}.Sanitize(), s.table("instances"), cols, where))
	return err
}
