//go:build unix

package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// The crash test really kills: a child process (this test binary run again
// with envCrashChild set) runs the engine on a SQLite file under concurrent
// load and prints every command it is about to submit ("try") and every
// command Submit acknowledged ("ack", with the outcome) to stdout, one line
// per write. The parent kills it with SIGKILL at a random moment, restarts
// it on the same file, and after the last cycle checks invariants 1 to 5
// (RELIABILITY.md) on the file.
//
// Three cycles run by default; the long variant runs more:
//
//	PLAIT_CRASH_CYCLES=20 go test ./store/sqlite -run TestCrash
//	go test ./store/sqlite -run TestCrash -crash.cycles=20
const (
	envCrashChild    = "PLAIT_CRASH_CHILD"    // the database file; selects the child mode
	envCrashCycle    = "PLAIT_CRASH_CYCLE"    // the cycle number, part of every command id
	envCrashResubmit = "PLAIT_CRASH_RESUBMIT" // ids tried but not acknowledged before the last kill
	envCrashCycles   = "PLAIT_CRASH_CYCLES"   // how many kill cycles the parent runs
)

var crashCycles = flag.Int("crash.cycles", 0, "kill cycles of TestCrash (default 3, or $"+envCrashCycles+")")

const (
	crashWorkers   = 24 // concurrent submitters in the child
	crashInstances = 30 // counters they share, so batches hold several commands per instance
)

var crashUser = plait.User{ID: "crasher"}

// crashCommand is the command with id: its instance and kind derive from the
// id alone, so a command resubmitted after a crash is the same command.
func crashCommand(id string) plait.Command {
	h := fnv.New64a()
	h.Write([]byte(id))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	cmd := plait.Command{ID: id, Type: "counter", AggregateID: fmt.Sprintf("n%d", r.IntN(crashInstances))}
	switch k := r.IntN(100); {
	case k < 65:
		cmd.Name, cmd.Data = "add", json.RawMessage(fmt.Sprintf(`{"by":%d}`, 1+r.IntN(3)))
	case k < 78: // rejected: by must be at least 1
		cmd.Name, cmd.Data = "add", json.RawMessage(`{"by":0}`)
	case k < 88: // two events
		cmd.Name, cmd.Data = "label", json.RawMessage(fmt.Sprintf(`{"label":"l%d"}`, r.IntN(1000)))
	case k < 96: // mostly a conflict, sometimes accepted
		seq := int64(r.IntN(40))
		cmd.Name, cmd.Data, cmd.ExpectedSeq = "add", json.RawMessage(`{"by":1}`), &seq
	default: // the handler panics: an internal rejection
		cmd.Name = "boom"
	}
	return cmd
}

// TestCrashChild is the child process of TestCrash; run on its own it skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(envCrashChild)
	if path == "" {
		t.Skip("the child process of TestCrash")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(3)
	}
	cycle, err := strconv.Atoi(os.Getenv(envCrashCycle))
	if err != nil {
		fail("bad %s: %v", envCrashCycle, err)
	}
	var resubmit []string
	if s := os.Getenv(envCrashResubmit); s != "" {
		resubmit = strings.Split(s, ",")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		fail("open: %v", err)
	}
	e, err := engine.New(enginetest.App(), st, engine.Options{
		Partitions: 4,
		Logger:     slog.New(slog.DiscardHandler), // "boom" is logged as an error on purpose
	})
	if err != nil {
		fail("engine: %v", err)
	}
	go func() {
		if err := e.Run(ctx); err != nil {
			fail("run: %v", err)
		}
	}()
	<-e.Ready()

	var mu sync.Mutex
	say := func(line string) {
		// One write per line, well under PIPE_BUF: a kill never leaves half
		// a line, and os.Stdout is unbuffered, so a line printed is sent.
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			os.Exit(4)
		}
	}
	say("ready")
	for w := 0; w < crashWorkers; w++ {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
			var todo, mine []string
			for i := w; i < len(resubmit); i += crashWorkers {
				todo = append(todo, resubmit[i])
			}
			for i := 0; ; i++ {
				var id string
				switch {
				case len(todo) > 0: // in doubt since the last kill
					id, todo = todo[0], todo[1:]
				case len(mine) > 0 && rng.IntN(10) == 0: // the same id again
					id = mine[rng.IntN(len(mine))]
				default:
					id = fmt.Sprintf("k%d-%d-%d", cycle, w, i)
					mine = append(mine, id)
				}
				say("try " + id)
				r, err := e.Submit(ctx, crashCommand(id), crashUser)
				if err != nil {
					fail("submit %s: %v", id, err)
				}
				say("ack " + id + " " + outcomeSummary(*r.Outcome))
			}
		}()
	}
	time.Sleep(time.Minute) // the parent kills long before; this bounds an orphan
	fail("not killed within a minute")
}

// outcomeSummary is a one-word digest of an outcome: its status and each
// event's id and seq, or its first error code.
func outcomeSummary(out plait.Outcome) string {
	parts := []string{string(out.Status)}
	for _, ev := range out.Events {
		parts = append(parts, ev.ID+"@"+strconv.FormatInt(ev.Seq, 10))
	}
	if len(out.Errors) > 0 {
		parts = append(parts, out.Errors[0].Code)
	}
	return strings.Join(parts, ",")
}

// childRun is what one child printed before it was killed.
type childRun struct {
	acks  map[string]string // id → outcome summary, for every acknowledged command
	tried []string          // every id submitted, in order
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	cycles := 3
	if s := os.Getenv(envCrashCycles); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envCrashCycles, s)
		}
		cycles = n
	}
	if *crashCycles > 0 {
		cycles = *crashCycles
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d cycles, seed %d", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	acked := map[string]string{} // every id ever acknowledged → its outcome summary
	var inDoubt []string         // tried and never acknowledged so far
	for c := 0; c < cycles; c++ {
		// Kill at a random moment of the load, now and then while the
		// child is still opening the file.
		delay := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
		afterReady := rng.IntN(5) != 0
		run := runChild(t, path, c, inDoubt, delay, afterReady)
		for id, sum := range run.acks {
			if prev, ok := acked[id]; ok && prev != sum {
				t.Fatalf("cycle %d: %s acknowledged as %s, earlier as %s", c, id, sum, prev)
			}
			acked[id] = sum
		}
		inDoubt = inDoubt[:0:0]
		seen := map[string]bool{}
		for _, id := range run.tried {
			if _, ok := acked[id]; !ok && !seen[id] {
				inDoubt = append(inDoubt, id)
				seen[id] = true
			}
		}
		t.Logf("cycle %d: killed %v after %s; %d tried, %d acknowledged, %d in doubt",
			c, delay.Round(time.Millisecond), map[bool]string{true: "ready", false: "start"}[afterReady],
			len(run.tried), len(run.acks), len(inDoubt))
	}
	if len(acked) == 0 {
		t.Fatal("no command was acknowledged in any cycle: the load never ran")
	}

	// Right after the last kill, before anything recovers: invariants 1–4.
	checkCrashInvariants(t, path, acked)

	// A clean run: the reactor catches up from its checkpoint, and the
	// commands in doubt are resubmitted and get exactly one outcome.
	runFinal(t, path, acked, inDoubt)
	checkCrashInvariants(t, path, acked)
	checkTalliesConverged(t, path)
}

// runChild starts a child on path, kills it delay after it is ready (or after
// it started) and returns what it printed.
func runChild(t *testing.T, path string, cycle int, resubmit []string, delay time.Duration, afterReady bool) childRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envCrashChild+"="+path,
		envCrashCycle+"="+strconv.Itoa(cycle),
		envCrashResubmit+"="+strings.Join(resubmit, ","))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	run := childRun{acks: map[string]string{}}
	ready := make(chan struct{})
	readDone := make(chan error, 1) // the child's stdout was read to its end
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			word, rest, _ := strings.Cut(sc.Text(), " ")
			switch word {
			case "ready":
				close(ready)
			case "try":
				run.tried = append(run.tried, rest)
			case "ack":
				id, sum, ok := strings.Cut(rest, " ")
				if !ok {
					readDone <- fmt.Errorf("malformed line %q", sc.Text())
					return
				}
				if prev, ok := run.acks[id]; ok && prev != sum {
					readDone <- fmt.Errorf("%s acknowledged as %s and as %s", id, prev, sum)
					return
				}
				run.acks[id] = sum
			}
		}
		readDone <- sc.Err()
	}()
	if afterReady {
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: the child never got ready; stderr:\n%s", cycle, stderr.String())
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on unix
		t.Fatalf("kill: %v", err)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("cycle %d: the child ended by itself (%v), not by the kill; stderr:\n%s", cycle, cmd.ProcessState, stderr.String())
	}
	return run
}

// runFinal runs the engine cleanly in this process: it resubmits every
// command still in doubt, then waits until a last command has settled, which
// means the reactor has consumed every event before it.
func runFinal(t *testing.T, path string, acked map[string]string, inDoubt []string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(enginetest.App(), st, engine.Options{Partitions: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("final run: %v", err)
		}
	}()
	<-e.Ready()
	for _, id := range inDoubt {
		r, err := e.Submit(ctx, crashCommand(id), crashUser)
		if err != nil {
			t.Fatalf("resubmit %s: %v", id, err)
		}
		acked[id] = outcomeSummary(*r.Outcome)
	}
	last := crashCommand("final")
	last.AggregateID, last.Name, last.Data, last.ExpectedSeq = "final", "add", json.RawMessage(`{"by":1}`), nil
	r, err := e.Submit(ctx, last, crashUser)
	if err != nil {
		t.Fatal(err)
	}
	acked[last.ID] = outcomeSummary(*r.Outcome)
	if err := e.WaitSettled(ctx, r.Command.CorrelationID); err != nil {
		t.Fatalf("the reactor did not catch up: %v", err)
	}
}

// openRaw opens the database file with database/sql directly, so the checks
// do not trust the store's own queries.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawEvent is one row of the events table with its decoded body.
type rawEvent struct {
	pos       int64
	id        string
	typ, agg  string
	seq       int64
	name      string
	body      plait.Event
	commandID string
}

// checkCrashInvariants checks the file against every acknowledged command:
// each has exactly one outcome, the one it was acknowledged with; no event
// is duplicated; positions are gap-free; every instance's seq is gap-free
// from 1 and its state is the fold of its events.
func checkCrashInvariants(t *testing.T, path string, acked map[string]string) {
	t.Helper()
	ctx := context.Background()
	db := openRaw(t, path)

	// Exactly one outcome per acknowledged command, equal to the ack.
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, sum := range acked {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM commands WHERE id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("acknowledged command %s has %d outcomes, want 1", id, n)
			continue
		}
		out, ok, err := st.Outcome(ctx, id)
		if err != nil || !ok {
			t.Errorf("outcome of %s: ok=%v err=%v", id, ok, err)
			continue
		}
		if got := outcomeSummary(out); got != sum {
			t.Errorf("%s was acknowledged as %s but is stored as %s", id, sum, got)
		}
	}
	st.Close()

	// No event twice: by id, and by (type, aggregate, seq).
	for _, q := range []string{
		`SELECT id, count(*) FROM events GROUP BY id HAVING count(*) > 1`,
		`SELECT type || '/' || aggregate_id || '@' || seq, count(*) FROM events GROUP BY type, aggregate_id, seq HAVING count(*) > 1`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var key string
			var n int
			rows.Scan(&key, &n)
			t.Errorf("event %s stored %d times", key, n)
		}
		rows.Close()
	}

	// Read the whole log.
	rows, err := db.Query(`SELECT pos, id, type, aggregate_id, seq, name, body FROM events ORDER BY pos`)
	if err != nil {
		t.Fatal(err)
	}
	var events []rawEvent
	byCommand := map[string][]rawEvent{}
	for rows.Next() {
		var ev rawEvent
		var body string
		if err := rows.Scan(&ev.pos, &ev.id, &ev.typ, &ev.agg, &ev.seq, &ev.name, &body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(body), &ev.body); err != nil {
			t.Fatalf("event at %d: %v", ev.pos, err)
		}
		ev.commandID = ev.body.CausationID
		if ev.body.ID != ev.id || ev.body.Seq != ev.seq || ev.body.Position != ev.pos || ev.body.Name != ev.name {
			t.Errorf("event row %d disagrees with its body %+v", ev.pos, ev.body)
		}
		events = append(events, ev)
		byCommand[ev.commandID] = append(byCommand[ev.commandID], ev)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()

	// Every command row owns exactly the events it points to, and every
	// event belongs to an accepted command.
	positions := map[int64]string{}
	for _, ev := range events {
		positions[ev.pos] = "event " + ev.id
	}
	rows, err = db.Query(`SELECT id, pos, status, first_event, event_count FROM commands`)
	if err != nil {
		t.Fatal(err)
	}
	commands := 0
	for rows.Next() {
		var id, status string
		var pos, first, count int64
		if err := rows.Scan(&id, &pos, &status, &first, &count); err != nil {
			t.Fatal(err)
		}
		commands++
		if other, dup := positions[pos]; dup {
			t.Errorf("command %s shares position %d with %s", id, pos, other)
		}
		positions[pos] = "command " + id
		evs := byCommand[id]
		if int64(len(evs)) != count || (status != string(plait.StatusAccepted) && count != 0) {
			t.Errorf("command %s (%s) records %d events, the log has %d", id, status, count, len(evs))
			continue
		}
		for i, ev := range evs {
			if ev.pos != first+int64(i) || ev.id != plait.EventID(id, i) || ev.pos >= pos {
				t.Errorf("command %s at %d: event %d is %s at %d, want %s at %d", id, pos, i, ev.id, ev.pos, plait.EventID(id, i), first+int64(i))
			}
		}
		delete(byCommand, id)
	}
	rows.Close()
	for id, evs := range byCommand {
		t.Errorf("%d events caused by %s, which has no outcome", len(evs), id)
	}
	// The feed is gap-free: the engine's in-memory tail indexes by position.
	for p := int64(1); p <= int64(len(positions)); p++ {
		if _, ok := positions[p]; !ok {
			t.Errorf("position %d is missing from the log (%d items)", p, len(positions))
			break
		}
	}

	// Every instance: seq gap-free from 1, the record at the last seq, the
	// state equal to the fold of its events.
	type key struct{ typ, id string }
	history := map[key][]rawEvent{}
	for _, ev := range events {
		k := key{ev.typ, ev.agg}
		history[k] = append(history[k], ev)
	}
	app := enginetest.App()
	rows, err = db.Query(`SELECT type, id, seq, state FROM instances`)
	if err != nil {
		t.Fatal(err)
	}
	instances := 0
	for rows.Next() {
		var k key
		var seq int64
		var state string
		if err := rows.Scan(&k.typ, &k.id, &seq, &state); err != nil {
			t.Fatal(err)
		}
		instances++
		evs := history[k]
		delete(history, k)
		slices.SortFunc(evs, func(a, b rawEvent) int { return int(a.seq - b.seq) })
		def, _ := app.Definition(k.typ)
		var fold json.RawMessage
		for i, ev := range evs {
			if ev.seq != int64(i+1) {
				t.Errorf("%s/%s: event %d has seq %d: a gap", k.typ, k.id, i+1, ev.seq)
				break
			}
			if fold, err = def.Evolve(fold, ev.name, ev.body.Data); err != nil {
				t.Fatal(err)
			}
		}
		if seq != int64(len(evs)) {
			t.Errorf("%s/%s is at seq %d with %d events", k.typ, k.id, seq, len(evs))
		}
		if state != string(fold) {
			t.Errorf("%s/%s state %s, the fold of its events is %s", k.typ, k.id, state, fold)
		}
	}
	rows.Close()
	for k, evs := range history {
		t.Errorf("%s/%s has %d events and no record", k.typ, k.id, len(evs))
	}
	t.Logf("%d acknowledged, %d outcomes, %d events, %d instances", len(acked), commands, len(events), instances)
}

// checkTalliesConverged checks the reactor's view after the final run: each
// counter's tally noted every "added" event of it exactly once.
func checkTalliesConverged(t *testing.T, path string) {
	t.Helper()
	db := openRaw(t, path)
	added := map[string]map[int64]bool{} // counter → seqs of its "added" events
	rows, err := db.Query(`SELECT aggregate_id, seq FROM events WHERE type = 'counter' AND name = 'added'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			t.Fatal(err)
		}
		if added[id] == nil {
			added[id] = map[int64]bool{}
		}
		added[id][seq] = true
	}
	rows.Close()
	noted := map[string]map[int64]bool{} // tally → counter seqs it noted
	rows, err = db.Query(`SELECT aggregate_id, body FROM events WHERE type = 'tally' ORDER BY pos`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			t.Fatal(err)
		}
		var ev plait.Event
		var note enginetest.Note
		if err := errors.Join(json.Unmarshal([]byte(body), &ev), json.Unmarshal(ev.Data, &note)); err != nil {
			t.Fatal(err)
		}
		if note.From.Type != "counter" || note.From.AggregateID != id {
			t.Errorf("tally %s noted %+v", id, note.From)
		}
		if noted[id] == nil {
			noted[id] = map[int64]bool{}
		}
		if noted[id][note.From.Seq] {
			t.Errorf("tally %s noted counter seq %d twice", id, note.From.Seq)
		}
		noted[id][note.From.Seq] = true
	}
	rows.Close()
	for id, seqs := range added {
		for seq := range seqs {
			if !noted[id][seq] {
				t.Errorf("tally %s never noted counter %s@%d", id, id, seq)
			}
		}
		var tally enginetest.Tally
		var state string
		var seq int64
		if err := db.QueryRow(`SELECT seq, state FROM instances WHERE type = 'tally' AND id = ?`, id).Scan(&seq, &state); err != nil {
			t.Errorf("tally %s: %v", id, err)
			continue
		}
		json.Unmarshal([]byte(state), &tally)
		if tally.Adds != len(seqs) || seq != int64(len(seqs)) {
			t.Errorf("tally %s has %d adds at seq %d; counter %s has %d added events", id, tally.Adds, seq, id, len(seqs))
		}
	}
	for id, seqs := range noted {
		if len(added[id]) == 0 {
			t.Errorf("tally %s noted %d adds of a counter that has none", id, len(seqs))
		}
	}
}
