package postgres

import (
	"context"
	"fmt"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

var _ engine.CorrelationEvents = (*Store)(nil)

// EventsOf returns the correlation's events whose "type.name" key is in
// keys, in position order; see engine.CorrelationEvents.
func (s *Store) EventsOf(ctx context.Context, correlationID string, keys []string) ([]plait.Event, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM `+s.table("events")+`
		WHERE correlation_id = $1 AND (type || '.' || name) = ANY($2::text[]) ORDER BY pos`, correlationID, keys)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of correlation %s: %w", correlationID, err)
	}
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of correlation %s: %w", correlationID, err)
	}
	return evs, nil
}
