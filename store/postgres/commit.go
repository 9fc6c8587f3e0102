package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// Offset is a consumed position of one partition of a Kafka topic: Next is
// the offset of the next record to consume, the last record processed plus
// one, as Kafka commits it.
type Offset = engine.Offset

var _ engine.OffsetCommitter = (*Store)(nil)

// Commit writes the batch in one transaction; see engine.Log. It assigns the
// batch's positions, writes them into it and rounds its times down to the
// microsecond, as they are stored. It returns an error wrapping ErrConflict
// when another writer committed first any command, event seq or newer
// instance record of the batch, and one wrapping ErrUnstorable, before
// writing anything, when the batch holds a value PostgreSQL cannot store.
func (s *Store) Commit(ctx context.Context, batch []*engine.Processed) error {
	return s.CommitWithOffsets(ctx, batch, nil)
}

// CommitWithOffsets is Commit that also records, in the same transaction,
// the Kafka offsets the batch was consumed up to, so that the effects of the
// consumed records and the consumer's progress are durable together or not
// at all: exactly-once consumption. A consumer reads them back with Offsets
// when it is assigned a partition and resumes from there.
//
// An offset only moves forward: one lower than the stored offset of its
// partition means another consumer has taken the partition over and gone
// further, and the whole commit fails with an error wrapping ErrConflict.
// Committing the stored offset again is allowed. The batch may be empty, to
// move offsets past records that caused no new command (duplicates).
//
// The whole commit is one pipelined round trip: its statements run in one
// implicit transaction, and every check that can fail it (unique ids and
// seqs, instance records and offsets only moving forward) fails it on the
// server. When the connection fails before the answer arrives, Commit finds
// out from the database whether the transaction committed.
func (s *Store) CommitWithOffsets(ctx context.Context, batch []*engine.Processed, offsets []Offset) error {
	return s.commit(ctx, batch, offsets, nil)
}

// CommitFenced is CommitWithOffsets for a batch decided on records of
// views read when the views' generations were fence (ViewGenerations): it
// fails with an error wrapping ErrConflict, writing nothing, when one of
// them has been swapped for a rebuilt copy since. It waits for a swap under
// way. See engine.ViewFence.
func (s *Store) CommitFenced(ctx context.Context, batch []*engine.Processed, offsets []Offset, fence map[string]int64) error {
	return s.commit(ctx, batch, offsets, fence)
}

func (s *Store) commit(ctx context.Context, batch []*engine.Processed, offsets []Offset, fence map[string]int64) error {
	if len(batch) == 0 && len(offsets) == 0 {
		return nil
	}
	if err := checkBatch(batch, offsets); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	n := 0
	for _, p := range batch {
		n += len(p.Outcome.Events) + 1
		roundTimes(p)
	}
	b := &pgx.Batch{}
	if len(fence) > 0 {
		// First, before the counter's lock: a commit waiting for a swap
		// holds up no other.
		types := make([]string, 0, len(fence))
		gens := make([]int64, 0, len(fence))
		for t, g := range fence {
			types, gens = append(types, t), append(gens, g)
		}
		b.Queue(s.sql.fence, types, gens)
	}
	var last int64
	if n > 0 {
		// The counter's row lock, taken here, is held until the transaction
		// ends: it orders committers, and so positions, by commit.
		b.Queue(s.sql.advance, n).QueryRow(func(row pgx.Row) error { return row.Scan(&last) })
		queueBatch(b, &s.sql, &s.search, batch, n)
	}
	if len(offsets) > 0 {
		topics := make([]string, len(offsets))
		parts := make([]int32, len(offsets))
		nexts := make([]int64, len(offsets))
		for i, o := range offsets {
			topics[i], parts[i], nexts[i] = o.Topic, o.Partition, o.Next
		}
		b.Queue(s.sql.putOffsets, topics, parts, nexts)
	}
	err := s.pool.SendBatch(ctx, b).Close()
	if err == nil {
		assignPositions(batch, last-int64(n)+1)
		return nil
	}
	var pgErr *pgconn.PgError
	if n > 0 && !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
		// The connection failed after the batch was sent: the transaction
		// may have committed or not. Find out, so the caller is told the
		// truth and the batch carries its positions.
		ok, verr := s.committed(ctx, batch)
		if verr == nil && ok {
			return nil
		}
		if verr == nil {
			return fmt.Errorf("postgres: commit: %w (not committed when checked)", err)
		}
		return fmt.Errorf("postgres: commit: %w (whether it committed is unknown: %v)", err, verr)
	}
	if err := classify(err); errors.Is(err, ErrConflict) {
		return err // ErrConflict's text says where it comes from
	}
	return fmt.Errorf("postgres: commit: %w", err)
}

// assignPositions numbers the batch from first on: each command's events,
// then its outcome.
func assignPositions(batch []*engine.Processed, first int64) {
	pos := first
	for _, p := range batch {
		for i := range p.Outcome.Events {
			p.Outcome.Events[i].Position = pos
			pos++
		}
		p.Outcome.Position = pos
		pos++
	}
}

// queueBatch queues the inserts of the batch's events, commands and instance
// records, with positions relative to the n the batch advanced the counter
// by.
func queueBatch(b *pgx.Batch, sql *statements, search *searchFields, batch []*engine.Processed, n int) {
	var ev eventRows
	var cmd commandRows
	var inst instanceRows
	rel := int64(1)
	latest := map[[2]string]int{} // the last record of each instance in the batch
	var records []*engine.Instance
	for _, p := range batch {
		out := &p.Outcome
		firstEvent := rel
		for i := range out.Events {
			ev.add(&out.Events[i], rel, out.Owner, p.FormerOwner)
			rel++
		}
		cmd.add(out, rel, firstEvent)
		rel++
		if in := p.Instance; in != nil {
			key := [2]string{in.Type, in.ID}
			if i, ok := latest[key]; ok {
				records[i] = in
			} else {
				latest[key] = len(records)
				records = append(records, in)
			}
		}
	}
	for _, in := range records {
		inst.add(in, search.doc(in.Type, in.State, in.Seq))
	}
	if len(ev.rel) > 0 {
		b.Queue(sql.insertEvents, n, ev.rel, ev.id, ev.typ, ev.aggID, ev.seq, ev.name, ev.corr, ev.cause,
			ev.user, ev.at, ev.owner, ev.data, ev.lineage, ev.version, ev.formerOwner)
	}
	b.Queue(sql.insertCommands, n, cmd.id, cmd.rel, cmd.typ, cmd.aggID, cmd.name, cmd.data, cmd.expected,
		cmd.corr, cmd.cause, cmd.user, cmd.at, cmd.status, cmd.errors, cmd.owner, cmd.first, cmd.count)
	if len(records) > 0 {
		b.Queue(sql.putInstances, inst.typ, inst.id, inst.seq, inst.state, inst.lineage, inst.owner, inst.at, inst.search)
	}
}

// eventRows, commandRows and instanceRows hold a batch column by column, for
// the unnest inserts: one statement per table, whatever the batch's size.
type eventRows struct {
	rel, seq                                             []int64
	id, typ, aggID, name, corr, cause, user, owner, data []string
	lineage, formerOwner                                 []string
	at                                                   []time.Time
	version                                              []int32 // 0 for version 1, stored as NULL
}

func (r *eventRows) add(e *plait.Event, rel int64, owner, formerOwner string) {
	r.rel = append(r.rel, rel)
	r.id = append(r.id, e.ID)
	r.typ = append(r.typ, e.Type)
	r.aggID = append(r.aggID, e.AggregateID)
	r.seq = append(r.seq, e.Seq)
	r.name = append(r.name, e.Name)
	r.corr = append(r.corr, e.CorrelationID)
	r.cause = append(r.cause, e.CausationID)
	r.user = append(r.user, e.User)
	r.at = append(r.at, e.At)
	r.owner = append(r.owner, owner)
	r.formerOwner = append(r.formerOwner, formerOwner)
	r.data = append(r.data, string(e.Data))
	r.lineage = append(r.lineage, encodeOrEmpty(len(e.Lineage), e.Lineage))
	r.version = append(r.version, int32(e.Version))
}

type commandRows struct {
	id, typ, aggID, name, data, corr, cause, user, status, errors, owner []string
	rel, first                                                           []int64
	expected                                                             []*int64
	count                                                                []int32
	at                                                                   []time.Time
}

func (r *commandRows) add(out *plait.Outcome, rel, first int64) {
	c := &out.Command
	r.id = append(r.id, c.ID)
	r.rel = append(r.rel, rel)
	r.typ = append(r.typ, c.Type)
	r.aggID = append(r.aggID, c.AggregateID)
	r.name = append(r.name, c.Name)
	r.data = append(r.data, string(c.Data))
	r.expected = append(r.expected, c.ExpectedSeq)
	r.corr = append(r.corr, c.CorrelationID)
	r.cause = append(r.cause, c.CausationID)
	r.user = append(r.user, c.User)
	r.at = append(r.at, c.At)
	r.status = append(r.status, string(out.Status))
	r.errors = append(r.errors, encodeOrEmpty(len(out.Errors), out.Errors))
	r.owner = append(r.owner, out.Owner)
	r.first = append(r.first, first)
	r.count = append(r.count, int32(len(out.Events)))
}

type instanceRows struct {
	typ, id, state, lineage, owner []string
	search                         []string // see searchDoc
	seq                            []int64
	at                             []time.Time
}

func (r *instanceRows) add(in *engine.Instance, search string) {
	r.search = append(r.search, search)
	r.typ = append(r.typ, in.Type)
	r.id = append(r.id, in.ID)
	r.seq = append(r.seq, in.Seq)
	r.state = append(r.state, string(in.State))
	r.lineage = append(r.lineage, encodeOrEmpty(len(in.Lineage), in.Lineage))
	r.owner = append(r.owner, in.Owner)
	r.at = append(r.at, in.UpdatedAt)
}

// encodeOrEmpty encodes a map or slice of n elements as JSON, and an empty
// one as "", which the inserts store as NULL. The values encoded here are
// plain structs of strings and numbers: encoding cannot fail.
func encodeOrEmpty(n int, v any) string {
	if n == 0 {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// roundTimes rounds the processed command's times down to the microsecond
// and to UTC, as PostgreSQL stores them.
func roundTimes(p *engine.Processed) {
	round := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	out := &p.Outcome
	out.Command.At = round(out.Command.At)
	for i := range out.Events {
		out.Events[i].At = round(out.Events[i].At)
	}
	if p.Instance != nil {
		p.Instance.UpdatedAt = round(p.Instance.UpdatedAt)
	}
}

// committed reports whether the batch was committed, and if so writes its
// positions into it. It first waits for the position counter's row lock: a
// transaction that assigned positions holds it until it has committed or
// rolled back, even when its client is gone, so a yes is final. A no is
// not quite: a transaction whose statements had not yet reached the
// counter on the server (waiting on a view swap) may still commit after.
// That is safe: the caller answers the batch's commands with an error
// that asks for them to be sent again, and a command sent again finds its
// outcome by its id. The batch counts as committed when all its commands
// are stored in one run of positions, in batch order, as its own
// transaction would have stored them.
func (s *Store) committed(ctx context.Context, batch []*engine.Processed) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pos FROM `+s.table("log_head")+` FOR UPDATE`); err != nil {
		return false, err
	}
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.Outcome.Command.ID
	}
	rows, err := tx.Query(ctx, s.sql.committed, ids)
	if err != nil {
		return false, err
	}
	type stored struct{ pos, first int64 }
	found := map[string]stored{}
	var id string
	var st stored
	if _, err := pgx.ForEachRow(rows, []any{&id, &st.pos, &st.first}, func() error { found[id] = st; return nil }); err != nil {
		return false, err
	}
	first, ok := found[ids[0]]
	if !ok {
		return false, nil
	}
	next := first.first
	for _, p := range batch {
		st, ok := found[p.Outcome.Command.ID]
		if !ok || st.first != next || st.pos != next+int64(len(p.Outcome.Events)) {
			return false, nil
		}
		next = st.pos + 1
	}
	assignPositions(batch, first.first)
	return true, nil
}

// classify wraps the errors of a lost race with ErrConflict.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%w: %s (%s)", ErrConflict, pgErr.Detail, pgErr.ConstraintName)
	case pgErr.Code == "23502" && pgErr.ColumnName == "seq": // not_null_violation, see putInstances
		return fmt.Errorf("%w: an instance record is not newer than the stored one", ErrConflict)
	case pgErr.Code == "22012": // division_by_zero, see fence
		return fmt.Errorf("%w: a view was swapped for a rebuilt copy since the batch was decided", ErrConflict)
	case pgErr.Code == "23502" && pgErr.ColumnName == "next_offset": // see putOffsets
		return fmt.Errorf("%w: a consumed offset is behind the stored one: another consumer took the partition over", ErrConflict)
	}
	return err
}

// checkBatch finds a value PostgreSQL would refuse before anything is sent,
// so that the error names the command rather than failing the transaction
// with the server's message.
func checkBatch(batch []*engine.Processed, offsets []Offset) error {
	for _, p := range batch {
		out := &p.Outcome
		c := &out.Command
		bad := func(what string) error {
			return fmt.Errorf("%w: command %q (%s/%s): %s", ErrUnstorable, c.ID, c.Type, c.AggregateID, what)
		}
		for _, t := range []string{c.ID, c.Type, c.AggregateID, c.Name, c.CorrelationID, c.CausationID, c.User, out.Owner} {
			if !textOK(t) {
				return bad(fmt.Sprintf("text %q holds NUL or invalid UTF-8", t))
			}
		}
		if !textOK(string(c.Data)) { // stored as json, which keeps any escape
			return bad("its data holds invalid UTF-8")
		}
		for _, fe := range out.Errors {
			if !textOK(fe.Path) || !textOK(fe.Code) || !textOK(fe.Message) {
				return bad("an error annotation holds NUL or invalid UTF-8")
			}
		}
		for i := range out.Events {
			e := &out.Events[i]
			if !textOK(e.ID) || !textOK(e.Name) || !textOK(e.CausationID) {
				return bad(fmt.Sprintf("event %q: text holds NUL or invalid UTF-8", e.ID))
			}
			if len(e.Data) > 0 && !jsonOK(e.Data) {
				return bad(fmt.Sprintf("event %q (%s): its data holds \\u0000, an unpaired surrogate or invalid UTF-8", e.ID, e.Name))
			}
			for f, l := range e.Lineage {
				if !textOK(f) || !textOK(l.Type) || !textOK(l.AggregateID) {
					return bad(fmt.Sprintf("event %q: lineage holds NUL or invalid UTF-8", e.ID))
				}
			}
		}
		if in := p.Instance; in != nil && !jsonOK(in.State) {
			return bad("the new state holds \\u0000, an unpaired surrogate or invalid UTF-8")
		}
	}
	for _, o := range offsets {
		if !textOK(o.Topic) || o.Partition < 0 || o.Next < 0 {
			return fmt.Errorf("%w: offset %+v", ErrUnstorable, o)
		}
	}
	return nil
}

// textOK reports whether PostgreSQL text can hold s.
func textOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return utf8.ValidString(s)
}

// jsonOK reports whether JSONB can hold the JSON text b: valid UTF-8, no
// \u0000 escape and no unpaired surrogate escape. b is valid JSON otherwise
// (the engine decoded or encoded it), so a backslash only occurs in strings.
func jsonOK(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++
		if i >= len(b) || b[i] != 'u' {
			continue // a two-character escape; the loop skips its second one
		}
		r, ok := hex4(b, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r == 0:
			return false
		case r >= 0xD800 && r < 0xDC00: // a high surrogate needs a low one next
			if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(b, i+3)
			if !ok || lo < 0xDC00 || lo >= 0xE000 {
				return false
			}
			i += 6
		case r >= 0xDC00 && r < 0xE000:
			return false
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
