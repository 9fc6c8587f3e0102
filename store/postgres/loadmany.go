package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/plaithq/plait/engine"
)

// LoadMany returns the records of the instances ids of aggregate type typ
// in one query, by id; an instance that does not exist is absent. The
// scaled-out engine loads a consumed batch's instances with it.
func (s *Store) LoadMany(ctx context.Context, typ string, ids []string) (map[string]engine.Instance, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, seq, state, lineage, owner, updated_at FROM `+s.table("instances")+
		` WHERE type = $1 AND id = ANY($2)`, typ, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: load %d instances of %s: %w", len(ids), typ, err)
	}
	defer rows.Close()
	insts := make(map[string]engine.Instance, len(ids))
	for rows.Next() {
		in := engine.Instance{Type: typ}
		var state, lineage []byte
		var at time.Time
		if err := rows.Scan(&in.ID, &in.Seq, &state, &lineage, &in.Owner, &at); err != nil {
			return nil, fmt.Errorf("postgres: load instances of %s: %w", typ, err)
		}
		in.State, in.UpdatedAt = state, at.UTC()
		if err := decodeOptional(lineage, &in.Lineage); err != nil {
			return nil, fmt.Errorf("postgres: decode lineage of %s/%s: %w", typ, in.ID, err)
		}
		insts[in.ID] = in
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: load instances of %s: %w", typ, err)
	}
	return insts, nil
}
