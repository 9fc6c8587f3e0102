package postgres

// statements are the store's SQL with its table names filled in.
type statements struct {
	advance, insertEvents, insertCommands, putInstances, putOffsets string
	load, outcome, outcomeEvents, events, readFeed, readEvents      string
	head, checkpoint, saveCheckpoint, checkpoints, lastEventOf      string
	offsets, offset, committed, known                               string
	fence, viewGens                                                 string
}

// eventColumns are the columns an event is read from, in eventRow's order.
const eventColumns = `pos, id, type, aggregate_id, seq, name, correlation_id, causation_id, user_id, at, owner, data, lineage, version`

// feedEventColumns are eventColumns with the data as text, the type the
// feed's union gives the events' JSONB and the commands' JSON alike.
const feedEventColumns = `pos, id, type, aggregate_id, seq, name, correlation_id, causation_id, user_id, at, owner, data::text, lineage, version`

// newStatements are the statements of the tables table names. A store
// only read, of a schema before events named their former owners (version
// 6), reads them as none: formerOwners false.
func newStatements(table func(string) string, formerOwners bool) statements {
	formerOwner := "former_owner"
	if !formerOwners {
		formerOwner = "NULL::text"
	}
	events, commands, instances := table("events"), table("commands"), table("instances")
	return statements{
		// The row lock taken here is held until the transaction ends: it
		// orders committers, and so positions, by commit.
		advance: `UPDATE ` + table("log_head") + ` SET pos = pos + $1 RETURNING pos`,
		// Positions are computed on the server, relative to the counter
		// the batch's first statement advanced by $1 (the batch's size).
		insertEvents: `INSERT INTO ` + events + ` (` + eventColumns + `, former_owner)
			SELECT h.pos - $1 + rel, id, type, aggregate_id, seq, name, correlation_id, causation_id, user_id, at, owner,
				nullif(data, '')::jsonb, nullif(lineage, '')::jsonb, nullif(version, 0), nullif(former_owner, '')
			FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::text[], $14::text[], $15::integer[], $16::text[])
			AS u(rel, id, type, aggregate_id, seq, name, correlation_id, causation_id, user_id, at, owner, data, lineage, version, former_owner),
			` + table("log_head") + ` h`,
		insertCommands: `INSERT INTO ` + commands + ` (id, pos, type, aggregate_id, name, data, expected_seq,
				correlation_id, causation_id, user_id, at, status, errors, owner, first_event, event_count)
			SELECT id, h.pos - $1 + rel, type, aggregate_id, name, nullif(data, '')::json, expected_seq,
				correlation_id, causation_id, user_id, at, status, nullif(errors, '')::jsonb, owner, h.pos - $1 + first_rel, event_count
			FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
				$9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[], $14::text[], $15::text[],
				$16::bigint[], $17::integer[])
			AS u(id, rel, type, aggregate_id, name, data, expected_seq, correlation_id, causation_id, user_id,
				at, status, errors, owner, first_rel, event_count),
			` + table("log_head") + ` h`,
		// An instance record only moves forward. A stale one sets seq to
		// NULL, which NOT NULL refuses: the error fails the whole commit on
		// the server, where a skipped row would not.
		putInstances: `INSERT INTO ` + instances + ` AS t (type, id, seq, state, lineage, owner, updated_at, search)
			SELECT type, id, seq, state::jsonb, nullif(lineage, '')::jsonb, owner, updated_at, nullif(search, '')::jsonb
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
			AS u(type, id, seq, state, lineage, owner, updated_at, search)
			ON CONFLICT (type, id) DO UPDATE SET seq = CASE WHEN t.seq < excluded.seq THEN excluded.seq END,
				state = excluded.state, lineage = excluded.lineage, owner = excluded.owner, updated_at = excluded.updated_at,
				search = excluded.search`,
		// A consumed offset only moves forward too, by the same means: an
		// older one means another consumer has taken the partition over.
		putOffsets: `INSERT INTO ` + table("offsets") + ` AS t (topic, partition, next_offset)
			SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[])
			ON CONFLICT (topic, partition) DO UPDATE
			SET next_offset = CASE WHEN t.next_offset <= excluded.next_offset THEN excluded.next_offset END`,

		load: `SELECT seq, state, lineage, owner, updated_at FROM ` + instances + ` WHERE type = $1 AND id = $2`,
		outcome: `SELECT pos, type, aggregate_id, name, data, expected_seq, correlation_id, causation_id, user_id, at,
				status, errors, owner, first_event, event_count
			FROM ` + commands + ` WHERE id = $1`,
		outcomeEvents: `SELECT ` + eventColumns + ` FROM ` + events + ` WHERE pos >= $1 AND pos < $2 ORDER BY pos`,
		events: `SELECT ` + eventColumns + ` FROM ` + events + `
			WHERE type = $1 AND aggregate_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		readFeed: `
			(SELECT ` + feedEventColumns + `, NULL::bigint AS expected_seq, NULL::text AS status, NULL::jsonb AS errors,
				` + formerOwner + ` AS former_owner
			 FROM ` + events + ` WHERE pos > $1 ORDER BY pos LIMIT $2)
			UNION ALL
			(SELECT pos, id, type, aggregate_id, 0::bigint, name, correlation_id, causation_id, user_id, at, owner, data::text,
				NULL::jsonb, NULL::integer, expected_seq, status, errors, NULL::text
			 FROM ` + commands + ` WHERE pos > $1 ORDER BY pos LIMIT $2)
			ORDER BY pos LIMIT $2`,
		readEvents: `SELECT ` + eventColumns + ` FROM ` + events + ` WHERE pos > $1 ORDER BY pos LIMIT $2`,
		head:       `SELECT pos FROM ` + table("log_head"),

		checkpoint: `SELECT pos FROM ` + table("checkpoints") + ` WHERE name = $1`,
		// Forward only: a publisher that lost its lease while it saved
		// must not move the new holder's checkpoint back.
		saveCheckpoint: `INSERT INTO ` + table("checkpoints") + ` AS c (name, pos) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET pos = GREATEST(c.pos, excluded.pos)`,
		checkpoints: `SELECT name, pos FROM ` + table("checkpoints") + ` ORDER BY name`,
		lastEventOf: `SELECT coalesce(max(pos), 0) FROM ` + events + `
			WHERE correlation_id = $1 AND (type || '.' || name) = ANY($2::text[])`,

		offsets: `SELECT partition, next_offset FROM ` + table("offsets") + ` WHERE topic = $1`,
		offset:  `SELECT next_offset FROM ` + table("offsets") + ` WHERE topic = $1 AND partition = $2`,
		known:   `SELECT id FROM ` + commands + ` WHERE id = ANY($1::text[])`,
		// The views' rows are locked in share mode until the commit ends,
		// so that a swap, which updates them, waits for it, and a commit
		// that comes during a swap waits for the swap and reads the
		// generation it leaves. A generation other than the batch's, or a
		// missing row (ViewGenerations makes them), divides by zero, which
		// fails the commit on the server.
		fence: `SELECT 1 / (count(v.type) = cardinality($1::text[]) AND bool_and(v.gen = f.gen))::int
			FROM unnest($1::text[], $2::bigint[]) AS f(type, gen)
			LEFT JOIN (SELECT type, gen FROM ` + table("view_swaps") + ` WHERE type = ANY($1::text[]) FOR SHARE) v USING (type)`,
		viewGens:  `SELECT type, gen FROM ` + table("view_swaps") + ` WHERE type = ANY($1::text[])`,
		committed: `SELECT id, pos, first_event FROM ` + commands + ` WHERE id = ANY($1::text[])`,
	}
}
