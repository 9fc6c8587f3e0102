package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// Load returns the instance's record; see engine.Log.
func (s *Store) Load(ctx context.Context, typ, id string) (engine.Instance, error) {
	in := engine.Instance{Type: typ, ID: id}
	var state, lineage []byte
	err := s.pool.QueryRow(ctx, s.sql.load, typ, id).Scan(&in.Seq, &state, &lineage, &in.Owner, &in.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return in, nil
	}
	if err != nil {
		return in, fmt.Errorf("postgres: load %s/%s: %w", typ, id, err)
	}
	in.State = state
	in.UpdatedAt = in.UpdatedAt.UTC()
	if err := decodeOptional(lineage, &in.Lineage); err != nil {
		return in, fmt.Errorf("postgres: decode lineage of %s/%s: %w", typ, id, err)
	}
	return in, nil
}

// LastSeq returns the seq of the last event of an instance in the log, 0
// if it has none; see engine.SeqLog.
func (s *Store) LastSeq(ctx context.Context, typ, id string) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM `+s.table("events")+` WHERE type = $1 AND aggregate_id = $2`, typ, id).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("postgres: last seq of %s/%s: %w", typ, id, err)
	}
	return seq, nil
}

// Outcome returns the recorded outcome of a command; see engine.Log.
func (s *Store) Outcome(ctx context.Context, id string) (plait.Outcome, bool, error) {
	out := plait.Outcome{Command: plait.Command{ID: id}}
	var status string
	var data, errs []byte
	var first int64
	var count int32
	c := &out.Command
	err := s.pool.QueryRow(ctx, s.sql.outcome, id).Scan(&out.Position, &c.Type, &c.AggregateID, &c.Name, &data,
		&c.ExpectedSeq, &c.CorrelationID, &c.CausationID, &c.User, &c.At, &status, &errs, &out.Owner, &first, &count)
	if errors.Is(err, pgx.ErrNoRows) {
		return plait.Outcome{}, false, nil
	}
	if err != nil {
		return plait.Outcome{}, false, fmt.Errorf("postgres: outcome %s: %w", id, err)
	}
	c.Data, c.At, out.Status = data, c.At.UTC(), plait.Status(status)
	if err := decodeOptional(errs, &out.Errors); err != nil {
		return plait.Outcome{}, false, fmt.Errorf("postgres: decode errors of %s: %w", id, err)
	}
	if count > 0 {
		rows, err := s.pool.Query(ctx, s.sql.outcomeEvents, first, first+int64(count))
		if err != nil {
			return plait.Outcome{}, false, fmt.Errorf("postgres: events of %s: %w", id, err)
		}
		if out.Events, err = collectEvents(rows); err != nil {
			return plait.Outcome{}, false, fmt.Errorf("postgres: events of %s: %w", id, err)
		}
	}
	return out, true, nil
}

// KnownCommands returns the ids among ids that have a recorded outcome, in
// one query: the engine's dedup lookup for a whole batch.
func (s *Store) KnownCommands(ctx context.Context, ids []string) (map[string]bool, error) {
	for _, id := range ids {
		if !textOK(id) {
			return nil, fmt.Errorf("postgres: known commands: %w: id %q", ErrUnstorable, id)
		}
	}
	rows, err := s.pool.Query(ctx, s.sql.known, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: known commands: %w", err)
	}
	known := map[string]bool{}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { known[id] = true; return nil }); err != nil {
		return nil, fmt.Errorf("postgres: known commands: %w", err)
	}
	return known, nil
}

// Events returns an instance's history; see engine.Queries.
func (s *Store) Events(ctx context.Context, typ, id string, after int64, limit int) ([]plait.Event, error) {
	rows, err := s.pool.Query(ctx, s.sql.events, typ, id, after, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s/%s: %w", typ, id, err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s/%s: %w", typ, id, err)
	}
	return evs, nil
}

// ReadEvents returns events in position order; see engine.Feed.
func (s *Store) ReadEvents(ctx context.Context, after int64, limit int) ([]plait.Event, error) {
	rows, err := s.pool.Query(ctx, s.sql.readEvents, after, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: read events: %w", err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: read events: %w", err)
	}
	return evs, nil
}

// ReadFeed returns events and outcomes in position order; see engine.Feed.
// An outcome's Events are not filled.
func (s *Store) ReadFeed(ctx context.Context, after int64, limit int) ([]engine.Item, error) {
	rows, err := s.pool.Query(ctx, s.sql.readFeed, after, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: read feed: %w", err)
	}
	defer rows.Close()
	var items []engine.Item
	for rows.Next() {
		var r eventRow
		var expected *int64
		var status *string
		var errs []byte
		var former *string
		if err := rows.Scan(append(r.targets(), &expected, &status, &errs, &former)...); err != nil {
			return nil, fmt.Errorf("postgres: read feed: %w", err)
		}
		ev, err := r.event()
		if err != nil {
			return nil, fmt.Errorf("postgres: read feed: %w", err)
		}
		it := engine.Item{Position: ev.Position, Owner: r.owner}
		if former != nil {
			it.FormerOwner = *former
		}
		if status == nil {
			it.Event = &ev
		} else {
			out := &plait.Outcome{
				Command: plait.Command{
					ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, Name: ev.Name, Data: ev.Data,
					ExpectedSeq: expected, CorrelationID: ev.CorrelationID, CausationID: ev.CausationID,
					User: ev.User, At: ev.At,
				},
				Status: plait.Status(*status), Position: ev.Position, Owner: r.owner,
			}
			if err := decodeOptional(errs, &out.Errors); err != nil {
				return nil, fmt.Errorf("postgres: read feed: decode errors of %s: %w", ev.ID, err)
			}
			it.Outcome = out
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read feed: %w", err)
	}
	return items, nil
}

// Head returns the highest position committed; see engine.Feed.
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, s.sql.head).Scan(&head); err != nil {
		return 0, fmt.Errorf("postgres: head: %w", err)
	}
	return head, nil
}

// Checkpoint returns a subscription's position; see engine.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, s.sql.checkpoint, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint records a subscription's position; see engine.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, pos int64) error {
	if _, err := s.pool.Exec(ctx, s.sql.saveCheckpoint, name, pos); err != nil {
		return fmt.Errorf("postgres: save checkpoint %s: %w", name, err)
	}
	return nil
}

// Checkpoints returns every subscription's position, by name.
func (s *Store) Checkpoints(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, s.sql.checkpoints)
	if err != nil {
		return nil, fmt.Errorf("postgres: checkpoints: %w", err)
	}
	cps := map[string]int64{}
	var name string
	var pos int64
	_, err = pgx.ForEachRow(rows, []any{&name, &pos}, func() error { cps[name] = pos; return nil })
	if err != nil {
		return nil, fmt.Errorf("postgres: checkpoints: %w", err)
	}
	return cps, nil
}

// LastEventOf returns the correlation's last event among keys; see
// engine.Correlations.
func (s *Store) LastEventOf(ctx context.Context, correlationID string, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	var pos int64
	if err := s.pool.QueryRow(ctx, s.sql.lastEventOf, correlationID, keys).Scan(&pos); err != nil {
		return 0, fmt.Errorf("postgres: last event of %s: %w", correlationID, err)
	}
	return pos, nil
}

// Offsets returns the consumed offsets of topic recorded by
// CommitWithOffsets, by partition: the offset of the next record to consume.
// A partition never committed is absent.
func (s *Store) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, s.sql.offsets, topic)
	if err != nil {
		return nil, fmt.Errorf("postgres: offsets of %s: %w", topic, err)
	}
	offs := map[int32]int64{}
	var part int32
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&part, &next}, func() error { offs[part] = next; return nil })
	if err != nil {
		return nil, fmt.Errorf("postgres: offsets of %s: %w", topic, err)
	}
	return offs, nil
}

// Offset returns the consumed offset of one partition of topic recorded by
// CommitWithOffsets: the offset of the next record to consume, 0 if the
// partition was never committed. A consumer assigned the partition resumes
// from there.
func (s *Store) Offset(ctx context.Context, topic string, partition int32) (int64, error) {
	var next int64
	err := s.pool.QueryRow(ctx, s.sql.offset, topic, partition).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: offset of %s/%d: %w", topic, partition, err)
	}
	return next, nil
}

// Counts returns the instances and events of every aggregate type, by type.
func (s *Store) Counts(ctx context.Context) (map[string]engine.TypeCount, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT type, sum(i), sum(e) FROM (
			SELECT type, count(*) AS i, 0 AS e FROM `+s.table("instances")+` GROUP BY type
			UNION ALL
			SELECT type, 0, count(*) FROM `+s.table("events")+` GROUP BY type
		) c GROUP BY type`)
	if err != nil {
		return nil, fmt.Errorf("postgres: counts: %w", err)
	}
	counts := map[string]engine.TypeCount{}
	var typ string
	var c engine.TypeCount
	_, err = pgx.ForEachRow(rows, []any{&typ, &c.Instances, &c.Events}, func() error { counts[typ] = c; return nil })
	if err != nil {
		return nil, fmt.Errorf("postgres: counts: %w", err)
	}
	return counts, nil
}

// eventRow is one row of eventColumns.
type eventRow struct {
	ev            plait.Event
	owner         string
	data, lineage []byte
	version       *int32 // NULL for version 1
}

func (r *eventRow) targets() []any {
	e := &r.ev
	return []any{&e.Position, &e.ID, &e.Type, &e.AggregateID, &e.Seq, &e.Name, &e.CorrelationID,
		&e.CausationID, &e.User, &e.At, &r.owner, &r.data, &r.lineage, &r.version}
}

func (r *eventRow) event() (plait.Event, error) {
	ev := r.ev
	ev.At = ev.At.UTC()
	ev.Data = r.data
	if r.version != nil {
		ev.Version = int(*r.version)
	}
	if err := decodeOptional(r.lineage, &ev.Lineage); err != nil {
		return ev, fmt.Errorf("decode lineage of %s: %w", ev.ID, err)
	}
	return ev, nil
}

func collectEvents(rows pgx.Rows) ([]plait.Event, error) {
	defer rows.Close()
	var evs []plait.Event
	for rows.Next() {
		var r eventRow
		if err := rows.Scan(r.targets()...); err != nil {
			return nil, err
		}
		ev, err := r.event()
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// noLimit turns a negative limit, which SQLite reads as none, into SQL's
// LIMIT NULL, which is none too.
func noLimit(limit int) *int {
	if limit < 0 {
		return nil
	}
	return &limit
}

// decodeOptional decodes JSON that may be NULL.
func decodeOptional(b []byte, v any) error {
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}
