package cli_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// crashCommand is the orderdesk command of id "h<cycle>-<worker>-<n>": what
// it does derives from the id alone, so a command sent again after a crash
// is the same command. Each worker creates and renames customers, places
// orders and ships the order it placed just before.
func crashCommand(cycle, worker, n int) map[string]any {
	id := fmt.Sprintf("h%d-%d-%d", cycle, worker, n)
	order := func(k int) string { return fmt.Sprintf("ord-%d-%d-%d", cycle, worker, k) }
	cust := fmt.Sprintf("cust%d", (worker*7+n)%20)
	switch n % 4 {
	case 0:
		return map[string]any{"id": id, "type": "customer", "aggregateId": cust, "name": "create",
			"data": map[string]any{"name": "Customer " + cust, "email": cust + "@example.com"}}
	case 1:
		return map[string]any{"id": id, "type": "order", "aggregateId": order(n), "name": "place",
			"data": map[string]any{"customerId": cust, "lines": []map[string]any{{"sku": "A", "qty": 1 + n%3, "price": 2.5}}}}
	case 2:
		return map[string]any{"id": id, "type": "order", "aggregateId": order(n - 1), "name": "ship", "data": map[string]any{}}
	default:
		return map[string]any{"id": id, "type": "customer", "aggregateId": cust, "name": "rename",
			"data": map[string]any{"name": fmt.Sprintf("Customer %s v%d", cust, n)}}
	}
}

// crashClient is the HTTP client of the crash test: a short timeout, so a
// request to a killed process fails at once.
var crashClient = &http.Client{Timeout: 5 * time.Second}

// postCommand posts cmd, waiting for its outcome when wait is set, and
// returns the outcome the answer gave: "" for a 202 (pending), "accepted"
// or "rejected"; an error when the command was not acknowledged.
func postCommand(base string, cmd map[string]any, wait bool) (string, error) {
	body, _ := json.Marshal(cmd)
	url := base + "/commands"
	if wait {
		url += "?wait=outcome&timeout=3s"
	}
	resp, err := crashClient.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read the answer: %w", err) // cut off: in doubt
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		var v struct{ Status string }
		json.Unmarshal(b, &v)
		if v.Status == "pending" {
			return "", nil
		}
		return v.Status, nil // an earlier submission's outcome
	case http.StatusOK:
		return "accepted", nil
	case http.StatusUnprocessableEntity, http.StatusConflict:
		return "rejected", nil
	}
	return "", fmt.Errorf("POST %s %s: %s %s", url, cmd["id"], resp.Status, b)
}

// commandStatus asks for a command's status: pending, accepted, rejected,
// or "unknown" for a 404.
func commandStatus(base, id string) (string, error) {
	resp, err := crashClient.Get(base + "/commands/" + id)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "unknown", nil
	}
	var v struct {
		ID     string
		Status string
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK || v.ID != id {
		return "", fmt.Errorf("GET /commands/%s: %s %v", id, resp.Status, err)
	}
	return v.Status, nil
}

// TestSIGKILLUnderHTTPLoad runs `plait serve` (orderdesk, embedded, on a
// SQLite file) as a child process under concurrent HTTP clients that post
// commands with ids of their own, some waiting for the outcome, and kills
// it with SIGKILL at a random moment, then restarts it on the same file:
// three cycles, more with PLAIT_CRASH_CYCLES=N. After each restart the
// clients first post again every command whose answer they did not get.
// At the end: every command answered 202, 200 or 422 has exactly one
// outcome by GET /commands/{id}, the one it was answered with; posting
// acknowledged commands again changes nothing; no event is stored twice,
// each command has exactly the events its outcome counts, and every
// instance's seqs are gap-free.
func TestSIGKILLUnderHTTPLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	cycles := 3
	if s := os.Getenv("PLAIT_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PLAIT_CRASH_CYCLES=%q: want a positive number", s)
		}
		cycles = n
	}
	bin := buildPlait(t)
	data := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 1))
	t.Logf("%d cycles, seed %d", cycles, seed)

	const workers = 8
	acked := map[string]string{} // id → the outcome answered ("" for pending)
	inDoubt := map[string]map[string]any{}
	var mu sync.Mutex
	answered := func(cmd map[string]any, status string) {
		mu.Lock()
		defer mu.Unlock()
		id := cmd["id"].(string)
		if prev, ok := acked[id]; ok && prev != "" && status != "" && prev != status {
			t.Errorf("%s answered %s, then %s", id, prev, status)
		}
		if status != "" || acked[id] == "" {
			acked[id] = status
		}
		delete(inDoubt, id)
	}
	// resubmit posts every command in doubt again; it must be answered.
	var doubtsCommitted atomic.Int64
	resubmit := func(base string) {
		mu.Lock()
		var cmds []map[string]any
		for _, cmd := range inDoubt {
			cmds = append(cmds, cmd)
		}
		mu.Unlock()
		for _, cmd := range cmds {
			if st, err := commandStatus(base, cmd["id"].(string)); err == nil && st != "unknown" {
				doubtsCommitted.Add(1)
			}
			status, err := postCommand(base, cmd, false)
			if err != nil {
				t.Fatalf("posting %s again after a restart: %v", cmd["id"], err)
			}
			answered(cmd, status)
		}
	}

	var kills, posted atomic.Int64
	for cycle := range cycles {
		in := startInstance(t, bin, fmt.Sprintf("serve-%d", cycle), "--data", data, "--log-level", "warn")
		resubmit(in.base)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for n := 0; !stop.Load(); n++ {
					cmd := crashCommand(cycle, w, n)
					mu.Lock()
					inDoubt[cmd["id"].(string)] = cmd
					mu.Unlock()
					posted.Add(1)
					status, err := postCommand(in.base, cmd, n%3 == 0)
					if err != nil {
						return // the process is gone: cmd stays in doubt
					}
					answered(cmd, status)
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		in.cmd.Process.Signal(syscall.SIGKILL)
		<-in.done
		kills.Add(1)
		stop.Store(true)
		wg.Wait()
		mu.Lock()
		t.Logf("cycle %d: killed with %d commands acknowledged, %d in doubt", cycle, len(acked), len(inDoubt))
		mu.Unlock()
	}

	// The last restart: every command in doubt is posted again, and some
	// acknowledged ones, which must change nothing.
	in := startInstance(t, bin, "serve-final", "--data", data, "--log-level", "warn")
	mu.Lock()
	doubted := len(inDoubt)
	mu.Unlock()
	resubmit(in.base)
	// Posted again with wait=outcome, an acknowledged command answers its
	// outcome at once, the one it was answered with, and is not run again
	// (the file's check below finds no event twice).
	again := 0
	for id, want := range acked {
		if again == 50 {
			break
		}
		var c, w, n int
		fmt.Sscanf(id, "h%d-%d-%d", &c, &w, &n)
		status, err := postCommand(in.base, crashCommand(c, w, n), true)
		if err != nil {
			t.Fatalf("posting acknowledged %s again: %v", id, err)
		}
		if status == "" || (want != "" && status != want) {
			t.Errorf("acknowledged %s (answered %q) posted again answers %q", id, want, status)
		}
		again++
	}

	// Every acknowledged command has its one outcome, the one answered.
	for id, want := range acked {
		got, err := commandStatus(in.base, id)
		if err != nil {
			t.Fatal(err)
		}
		if got != "accepted" && got != "rejected" {
			t.Errorf("acknowledged command %s has status %q", id, got)
		} else if want != "" && got != want {
			t.Errorf("%s was answered %s, is now %s", id, want, got)
		}
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the last server did not stop on SIGTERM")
	}
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	checkEmbeddedFile(t, filepath.Join(data, "orderdesk.db"), ids)
	t.Logf("%d kills, %d posts, %d commands acknowledged; %d in doubt posted again at the end; of all those in doubt, %d had been committed before the kill; %d acknowledged posted again",
		kills.Load(), posted.Load(), len(acked), doubted, doubtsCommitted.Load(), again)
}

// checkEmbeddedFile checks the SQLite file of a stopped server: each
// acknowledged command has one outcome, each command exactly the events it
// counts, no event is stored twice and every instance's seqs are gap-free.
func checkEmbeddedFile(t *testing.T, path string, acked []string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	for _, id := range acked {
		if n := count(`SELECT count(*) FROM commands WHERE id = ?`, id); n != 1 {
			t.Errorf("acknowledged command %s has %d outcomes", id, n)
		}
	}
	// Each command has exactly the events it counts, and each event its
	// command: one scan of each table, compared here.
	caused := map[string]int{}
	rows, err := db.Query(`SELECT json_extract(body, '$.causationId') FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var cause string
		if err := rows.Scan(&cause); err != nil {
			t.Fatal(err)
		}
		caused[cause]++
	}
	rows.Close()
	rows, err = db.Query(`SELECT id, event_count FROM commands`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		if caused[id] != n {
			t.Errorf("command %s counts %d events, %d are stored", id, n, caused[id])
		}
		delete(caused, id)
	}
	rows.Close()
	if len(caused) > 0 {
		t.Errorf("%d commands have events but no outcome", len(caused))
	}
	if n := count(`SELECT count(*) FROM (SELECT 1 FROM events WHERE name = 'placed' GROUP BY type, aggregate_id HAVING count(*) > 1)`); n != 0 {
		t.Errorf("%d orders placed more than once", n)
	}
	rows, err = db.Query(`SELECT e.type, e.aggregate_id, count(*), min(e.seq), max(e.seq), coalesce(i.seq, -1)
		FROM events e LEFT JOIN instances i ON i.type = e.type AND i.id = e.aggregate_id GROUP BY e.type, e.aggregate_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	instances := 0
	for rows.Next() {
		var typ, id string
		var n, lo, hi, seq int64
		if err := rows.Scan(&typ, &id, &n, &lo, &hi, &seq); err != nil {
			t.Fatal(err)
		}
		instances++
		if lo != 1 || hi != n || seq != hi {
			t.Errorf("%s/%s: %d events with seq %d..%d, record at %d: want 1..%d without gaps", typ, id, n, lo, hi, seq, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if instances == 0 {
		t.Error("no instance has events")
	}
	if len(acked) == 0 {
		t.Error(errors.New("no command was acknowledged"))
	}
}

// TestAHangupStopsTheServerAsSIGTERMDoes: a server started from a terminal
// that closes (SIGHUP) shuts down in order, as on SIGTERM: exit 0, the
// engine stopped, not killed on the spot.
func TestAHangupStopsTheServerAsSIGTERMDoes(t *testing.T) {
	bin := buildPlait(t)
	in := startInstance(t, bin, "hangup", "--data", t.TempDir())
	if ok, err := post(in.base, crashCommand(0, 0, 0)); err != nil || !ok {
		t.Fatalf("post: %v %v", ok, err)
	}
	in.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not stop on SIGHUP")
	}
	if code := in.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGHUP, want 0\n%s", code, in.log())
	}
	if !strings.Contains(in.log(), `"msg":"stopped"`) {
		t.Fatalf("no stopped line in the logs:\n%s", in.log())
	}
}

// TestAServerUnderNohupOutlivesAHangup: a server started ignoring SIGHUP,
// as nohup starts it, goes on serving when its terminal closes.
func TestAServerUnderNohupOutlivesAHangup(t *testing.T) {
	bin := buildPlait(t)
	nohup := filepath.Join(t.TempDir(), "plait-nohup")
	if err := os.WriteFile(nohup, []byte("#!/bin/sh\nexec nohup "+bin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, nohup, "nohup", "--data", t.TempDir())
	in.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if ok, err := post(in.base, crashCommand(0, 0, 0)); err != nil || !ok {
		t.Fatalf("after SIGHUP under nohup: %v %v\n%s", ok, err, in.log())
	}
}
