package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// rawSchema is the events table of package store/sqlite, with its
// constraints and index: the rows the baseline inserts are the rows the
// engine writes for each event.
const rawSchema = `
CREATE TABLE events (
	pos            INTEGER PRIMARY KEY,
	id             TEXT NOT NULL UNIQUE,
	type           TEXT NOT NULL,
	aggregate_id   TEXT NOT NULL,
	seq            INTEGER NOT NULL,
	name           TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	owner          TEXT NOT NULL,
	body           TEXT NOT NULL,
	former_owner   TEXT,
	UNIQUE (type, aggregate_id, seq)
);
CREATE INDEX events_by_correlation ON events(correlation_id, pos);
`

// rawInstances is how many aggregate instances the baseline's rows spread
// over, as the engine's load does.
const rawInstances = 10000

// measureRaw inserts event-shaped rows into a fresh file through
// modernc.org/sqlite directly (WAL, synchronous=FULL), perRow rows per
// transaction, and returns rows/s with the latency of one transaction.
func measureRaw(ctx context.Context, dir string, perTx int, opts Options) (Row, error) {
	path := filepath.Join(dir, fmt.Sprintf("raw-%d.db", perTx))
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return Row{}, fmt.Errorf("bench: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, rawSchema); err != nil {
		return Row{}, fmt.Errorf("bench: create the raw table: %w", err)
	}
	ins, err := db.PrepareContext(ctx, `INSERT INTO events(pos, id, type, aggregate_id, seq, name, correlation_id, owner, body) VALUES(?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return Row{}, fmt.Errorf("bench: prepare the raw insert: %w", err)
	}
	defer ins.Close()

	at := time.Now().UTC().Format(time.RFC3339Nano)
	var pos int64
	buf := make([]byte, 0, 512)
	l := load{workers: 1, warmup: opts.warmup(), d: opts.Duration}
	res, err := l.run(ctx, func(_, _ int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("bench: raw begin: %w", err)
		}
		defer tx.Rollback()
		st := tx.StmtContext(ctx, ins)
		for i := 0; i < perTx; i++ {
			pos++
			id := "01JBENCH0000" + strconv.FormatInt(1e13+pos, 10) // as long as a ULID
			agg := "a" + strconv.FormatInt(pos%rawInstances, 10)
			seq := pos/rawInstances + 1
			buf = eventBody(buf[:0], id, agg, seq, pos, at)
			if _, err := st.ExecContext(ctx, pos, id+".1", "counter", agg, seq, "added", id, "bench", string(buf)); err != nil {
				return fmt.Errorf("bench: raw insert: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("bench: raw commit: %w", err)
		}
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	if res.count == 0 {
		return Row{}, fmt.Errorf("raw %d rows per transaction: %w", perTx, errNoOps)
	}
	name := "raw SQLite insert, 1 event row per transaction"
	if perTx > 1 {
		name = fmt.Sprintf("raw SQLite insert, %d event rows per transaction", perTx)
	}
	return Row{
		Key: fmt.Sprintf("raw-%d", perTx), Name: name,
		Rate: res.rate(float64(perTx)), Unit: "rows/s", Count: res.count * perTx,
		P50: res.p50, P99: res.p99,
	}, nil
}

// eventBody appends the JSON body store/sqlite writes for an "added" event
// of a counter, with the same fields and about the same size.
func eventBody(b []byte, commandID, agg string, seq, pos int64, at string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, commandID...)
	b = append(b, `.1","type":"counter","aggregateId":"`...)
	b = append(b, agg...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"name":"added","data":{"by":1},"correlationId":"`...)
	b = append(b, commandID...)
	b = append(b, `","causationId":"`...)
	b = append(b, commandID...)
	b = append(b, `","user":"bench","at":"`...)
	b = append(b, at...)
	b = append(b, `","position":`...)
	b = strconv.AppendInt(b, pos, 10)
	b = append(b, '}')
	return b
}
