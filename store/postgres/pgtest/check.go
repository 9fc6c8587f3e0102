package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// CheckInvariants checks, in the tables of the store in schema, what a
// fault must never break: every command in acked has exactly one outcome;
// each command has exactly the events its outcome counts and no event lacks
// its command, so no event is stored twice; every instance's seqs run from 1
// without a gap, and its record stands at the last. It reports every
// breach on t and returns how many instances have events.
func CheckInvariants(t testing.TB, connString, schema string, acked []string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("pgtest: check: %v", err)
	}
	defer conn.Close(ctx)
	tbl := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	count := func(what, query string, args ...any) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			t.Fatalf("pgtest: check %s: %v", what, err)
		}
		return n
	}
	if n := count("outcomes", `SELECT count(*) FROM `+tbl("commands")+` WHERE id = ANY($1)`, acked); n != len(acked) {
		t.Errorf("%d outcomes recorded for %d acknowledged commands", n, len(acked))
	}
	if n := count("events per command", `SELECT count(*) FROM `+tbl("commands")+` c LEFT JOIN
		(SELECT causation_id, count(*) AS n FROM `+tbl("events")+` GROUP BY causation_id) e ON e.causation_id = c.id
		WHERE c.event_count <> coalesce(e.n, 0)`); n != 0 {
		t.Errorf("%d commands whose events are not exactly their outcome's", n)
	}
	if n := count("orphan events", `SELECT count(*) FROM `+tbl("events")+` e LEFT JOIN `+tbl("commands")+` c ON c.id = e.causation_id
		WHERE c.id IS NULL`); n != 0 {
		t.Errorf("%d events without their command", n)
	}
	rows, err := conn.Query(ctx, `SELECT e.type, e.aggregate_id, count(*), min(e.seq), max(e.seq), coalesce(i.seq, -1)
		FROM `+tbl("events")+` e LEFT JOIN `+tbl("instances")+` i ON i.type = e.type AND i.id = e.aggregate_id
		GROUP BY e.type, e.aggregate_id, i.seq`)
	if err != nil {
		t.Fatalf("pgtest: check seqs: %v", err)
	}
	defer rows.Close()
	instances := 0
	for rows.Next() {
		var typ, id string
		var n, lo, hi, seq int64
		if err := rows.Scan(&typ, &id, &n, &lo, &hi, &seq); err != nil {
			t.Fatalf("pgtest: check seqs: %v", err)
		}
		instances++
		if lo != 1 || hi != n || seq != hi {
			t.Errorf("%s/%s: %d events with seq %d..%d, record at %d: want 1..%d without gaps", typ, id, n, lo, hi, seq, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pgtest: check seqs: %v", err)
	}
	return instances
}
