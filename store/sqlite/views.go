package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// A view being rebuilt is written beside the live one, in the instances
// table under a physical type of its own ("orderList~1700000000"), and made
// live by flipping the view's entry in view_copies: the swap costs one row
// whatever the size of the view. Every read and write of instances goes
// through physical, so the flip is seen at once.

const viewCopiesSchema = `
CREATE TABLE IF NOT EXISTS view_copies (
	type TEXT PRIMARY KEY,
	phys TEXT NOT NULL
);`

// loadCopies reads which copy of each rebuilt view is live.
func (s *Store) loadCopies(ctx context.Context) error {
	s.phys = map[string]string{}
	if s.readOnly {
		// A store no view was ever rebuilt in may have no table yet.
		if ok, err := s.hasTables(ctx, "view_copies"); err != nil || !ok {
			return err
		}
	} else if _, err := s.w.ExecContext(ctx, viewCopiesSchema); err != nil {
		return fmt.Errorf("sqlite: migrate view copies: %w", err)
	}
	rows, err := s.w.QueryContext(ctx, `SELECT type, phys FROM view_copies`)
	if err != nil {
		return fmt.Errorf("sqlite: read view copies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, phys string
		if err := rows.Scan(&typ, &phys); err != nil {
			return fmt.Errorf("sqlite: read view copies: %w", err)
		}
		s.phys[typ] = phys
	}
	return rows.Err()
}

// physical is the type under which typ's live instances are stored.
func (s *Store) physical(typ string) string {
	s.physMu.RLock()
	defer s.physMu.RUnlock()
	if p, ok := s.phys[typ]; ok {
		return p
	}
	return typ
}

// copyMark separates a view's type from its copy's suffix in the physical
// type of a copy.
const copyMark = "~"

// logical is the aggregate type of a physical type.
func logical(phys string) string {
	typ, _, _ := strings.Cut(phys, copyMark)
	return typ
}

// StageView starts a fresh copy of view typ, with the secondary indexes of
// the given fields; see engine.StagedViews.
func (s *Store) StageView(ctx context.Context, typ string, settings plait.Settings) (engine.ViewCopy, error) {
	if typ == "" || strings.Contains(typ, copyMark) {
		return nil, fmt.Errorf("sqlite: stage view %q: not a view type", typ)
	}
	if s.readOnly {
		return nil, fmt.Errorf("sqlite: stage view %q: %s is open read-only", typ, s.path)
	}
	if err := s.dropAbandoned(ctx, typ); err != nil {
		return nil, err
	}
	c := &viewCopy{s: s, typ: typ, phys: fmt.Sprintf("%s%s%d", typ, copyMark, time.Now().UnixNano())}
	var created []string
	// A copy is derived data until it is swapped in: its writes do not
	// wait for the disk; the swap's commit, which does, makes them
	// durable. A crash before the swap leaves a copy behind, which the
	// next rebuild of the view drops (dropAbandoned).
	err := s.unsyncedTx(ctx, func(tx *sql.Tx) error {
		create := func(name, ddl string) error {
			if _, err := tx.ExecContext(ctx, ddl); err != nil {
				return fmt.Errorf("sqlite: index %s: %w", name, err)
			}
			created = append(created, name)
			return nil
		}
		for _, f := range settings.Indexes {
			if err := create(indexName(c.phys, f), indexDDL(c.phys, f)); err != nil {
				return err
			}
		}
		for _, f := range settings.Searchable {
			if err := create(indexName(c.phys, f)+searchSuffix, searchIndexDDL(c.phys, f)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.physMu.Lock()
	for _, n := range created {
		s.indexes[n] = true
	}
	s.physMu.Unlock()
	return c, nil
}

// createIndex creates the index name on instances by its ddl.
func (s *Store) createIndex(ctx context.Context, name, ddl string) error {
	if _, err := s.w.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("sqlite: index %s: %w", name, err)
	}
	s.physMu.Lock()
	s.indexes[name] = true
	s.physMu.Unlock()
	return nil
}

// indexDDL creates the index of field over the instances of phys.
func indexDDL(phys, field string) string {
	return fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s" ON instances(json_extract(state, '$.%s'), id) WHERE type = '%s'`,
		indexName(phys, field), field, phys)
}

// indexName is the name of the index of field over the instances stored
// under the physical type phys.
func indexName(phys, field string) string { return "instances_" + phys + "_" + field }

// ownerIndex is the index of instances by type and owner, in id order. No
// indexName is the same: those have a second underscore.
const ownerIndex = "instances_owner"

// hasIndex reports whether the instances of phys have an index on field.
func (s *Store) hasIndex(phys, field string) bool { return s.hasIndexNamed(indexName(phys, field)) }

// hasIndexNamed reports whether the file has the index of instances name:
// one opened read-only may predate an index a newer store makes.
func (s *Store) hasIndexNamed(name string) bool {
	s.physMu.RLock()
	defer s.physMu.RUnlock()
	return s.indexes[name]
}

// loadIndexes reads the names of the indexes on instances.
func (s *Store) loadIndexes(ctx context.Context) error {
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instances'`)
	if err != nil {
		return fmt.Errorf("sqlite: read indexes: %w", err)
	}
	defer rows.Close()
	s.indexes = map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("sqlite: read indexes: %w", err)
		}
		s.indexes[name] = true
	}
	return rows.Err()
}

// viewCopy is one staged copy of a view.
type viewCopy struct {
	s       *Store
	typ     string
	phys    string
	swapped string // after Swap: the physical type it replaced
	done    bool
}

// Write puts instances into the copy; Swap sets their seqs to the live
// ones'. The rows go in through multi-row statements, as Commit's do.
func (c *viewCopy) Write(ctx context.Context, insts []engine.Instance) error {
	args := make([]any, 0, len(insts)*c.s.copyInstances.cols)
	for _, in := range insts {
		var lineage []byte
		if len(in.Lineage) > 0 {
			var err error
			if lineage, err = json.Marshal(in.Lineage); err != nil {
				return fmt.Errorf("sqlite: encode lineage of %s/%s: %w", c.typ, in.ID, err)
			}
		}
		args = append(args, c.phys, in.ID, in.Seq, string(in.State), nullable(lineage), in.Owner,
			in.UpdatedAt.UTC().Format(time.RFC3339Nano))
	}
	return c.s.unsyncedTx(ctx, func(tx *sql.Tx) error {
		if _, err := c.s.copyInstances.exec(ctx, tx, args); err != nil {
			return fmt.Errorf("sqlite: write to the copy of %s: %w", c.typ, err)
		}
		return nil
	})
}

// Swap makes the copy live: one row flips, whatever the view's size, after
// the copy's seqs are set to the live ones'.
func (c *viewCopy) Swap(ctx context.Context) error {
	c.s.mu.Lock() // no commit interleaves with the flip
	defer c.s.mu.Unlock()
	old := c.s.physical(c.typ)
	tx, err := c.s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: swap %s: %w", c.typ, err)
	}
	defer tx.Rollback()
	// The log holds the live instances' events up to their seq: an item of
	// the copy goes on from there, so that its next event neither takes a
	// seq the log has nor leaves a gap, however many events the rebuild
	// folded into it. (One the copy lacks starts from the log's: see
	// LastSeq.)
	if _, err := tx.ExecContext(ctx, `UPDATE instances SET seq = live.seq
		FROM (SELECT id, seq FROM instances WHERE type = ?) AS live
		WHERE instances.type = ? AND instances.id = live.id AND live.seq != instances.seq`, old, c.phys); err != nil {
		return fmt.Errorf("sqlite: swap %s: carry the seqs over: %w", c.typ, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO view_copies(type, phys) VALUES(?, ?)
		ON CONFLICT(type) DO UPDATE SET phys = excluded.phys`, c.typ, c.phys); err != nil {
		return fmt.Errorf("sqlite: swap %s: %w", c.typ, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: swap %s: %w", c.typ, err)
	}
	c.s.physMu.Lock()
	c.s.phys[c.typ] = c.phys
	c.s.physMu.Unlock()
	c.swapped = old
	return nil
}

// Cleanup drops the copy that lost: the replaced one after Swap, this one
// otherwise. It deletes in small transactions so writers are never held up
// long.
func (c *viewCopy) Cleanup(ctx context.Context) error {
	if c.done {
		return nil
	}
	c.done = true
	drop := c.phys
	if c.swapped != "" {
		drop = c.swapped
	}
	return c.s.dropCopy(ctx, c.typ, drop)
}

// dropCopy deletes the instances stored under the physical type phys, a
// copy of view typ, and the copy's indexes. It deletes in small
// transactions so writers are never held up long.
func (s *Store) dropCopy(ctx context.Context, typ, phys string) error {
	for {
		res, err := s.w.ExecContext(ctx, `DELETE FROM instances WHERE rowid IN (SELECT rowid FROM instances WHERE type = ? LIMIT 2000)`, phys)
		if err != nil {
			return fmt.Errorf("sqlite: drop old copy of %s: %w", typ, err)
		}
		if n, _ := res.RowsAffected(); n < 2000 {
			break
		}
	}
	if phys == typ { // the original copy has the plain indexes, which the type keeps using if ever unmapped
		return nil
	}
	names, err := s.copyIndexes(ctx, typ)
	if err != nil {
		return err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, indexName(phys, "")) })
	s.physMu.Lock()
	for _, n := range names {
		delete(s.indexes, n) // no list uses them from now on
	}
	s.physMu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	for _, n := range names {
		if _, err := tx.ExecContext(ctx, `DROP INDEX IF EXISTS "`+n+`"`); err != nil {
			return fmt.Errorf("sqlite: drop index %s: %w", n, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: drop indexes of %s: %w", phys, err)
	}
	return nil
}

// copyIndexes lists the indexes of every copy of view typ but its
// original ("instances_<typ>~<n>_<field>").
func (s *Store) copyIndexes(ctx context.Context, typ string) ([]string, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instances'`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list indexes of %s: %w", typ, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: list indexes of %s: %w", typ, err)
		}
		if strings.HasPrefix(n, "instances_"+typ+copyMark) {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

// dropAbandoned drops the copies of view typ that a process stopped in
// the middle of a rebuild left behind: a copy staged and never swapped
// in, or the one a swap replaced and did not get to drop. One process
// writes a data file, and the engine rebuilds a view once at a time, so
// when a copy is staged, every copy but the live one is abandoned.
func (s *Store) dropAbandoned(ctx context.Context, typ string) error {
	live := s.physical(typ)
	abandoned := map[string]bool{}
	if live != typ {
		abandoned[typ] = true
	}
	rows, err := s.w.QueryContext(ctx, `SELECT DISTINCT type FROM instances WHERE type > ? AND type < ?`, typ+copyMark, typ+"\x7f")
	if err != nil {
		return fmt.Errorf("sqlite: find abandoned copies of %s: %w", typ, err)
	}
	for rows.Next() {
		var phys string
		if err := rows.Scan(&phys); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: find abandoned copies of %s: %w", typ, err)
		}
		abandoned[phys] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: find abandoned copies of %s: %w", typ, err)
	}
	names, err := s.copyIndexes(ctx, typ)
	if err != nil {
		return err
	}
	for _, n := range names { // a copy may have its indexes and no rows yet
		suffix, _, _ := strings.Cut(strings.TrimPrefix(n, "instances_"+typ+copyMark), "_")
		abandoned[typ+copyMark+suffix] = true
	}
	delete(abandoned, live)
	for _, phys := range slices.Sorted(maps.Keys(abandoned)) {
		if err := s.dropCopy(ctx, typ, phys); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceView replaces every instance of a view type at once; see
// engine.Views. It stages a copy, writes it, swaps and cleans up.
func (s *Store) ReplaceView(ctx context.Context, typ string, insts []engine.Instance) error {
	c, err := s.StageView(ctx, typ, s.indexedFields(typ))
	if err != nil {
		return err
	}
	defer c.Cleanup(context.WithoutCancel(ctx))
	if err := c.Write(ctx, insts); err != nil {
		return err
	}
	return c.Swap(ctx)
}

// indexedFields gives the fields indexed for typ's live copy, as the
// settings that declare them.
func (s *Store) indexedFields(typ string) plait.Settings {
	phys := s.physical(typ)
	rows, err := s.r.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instances' AND name LIKE ? ESCAPE '\'`,
		"instances\\_"+phys+"\\_%")
	var indexed plait.Settings
	if err != nil {
		return indexed
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			f := strings.TrimPrefix(n, "instances_"+phys+"_")
			if field, ok := strings.CutSuffix(f, searchSuffix); ok {
				indexed.Searchable = append(indexed.Searchable, field)
			} else {
				indexed.Indexes = append(indexed.Indexes, f)
			}
		}
	}
	return indexed
}
