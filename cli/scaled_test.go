package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plaithq/plait/store/postgres/pgtest"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
)

// pgConn connects to the test server, failing t (never skipping) when it
// cannot be reached.
func pgConn(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	url := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\nRun scripts/ensure-postgres (as root), or set PLAIT_POSTGRES_URL.", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, url
}

// buildPlait builds the plait binary (orderdesk) into a temporary directory.
// oneBrokerKafka starts franz-go's in-process Kafka, one broker, for the
// test; it stops when the test ends, or when the test closes it.
func oneBrokerKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// soloInstance serves orderdesk alone, scaled out on kc and a fresh
// schema of the PostgreSQL at url, with two partitions.
func soloInstance(t *testing.T, bin string, kc *kfake.Cluster, url string) *instance {
	t.Helper()
	schema := pgtest.FreshSchema(t, url)
	return startInstance(t, bin, "a", "--kafka", strings.Join(kc.ListenAddrs(), ","), "--postgres", url, "--pg-schema", schema,
		"--topic-prefix", schema, "--group", schema, "--partitions", "2", "--session-timeout", "1500ms")
}

func buildPlait(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "plait")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/plaithq/plait/cmd/plait")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// instance is one `plait serve --kafka … --postgres …` process.
type instance struct {
	name string
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var servingLine = regexp.MustCompile(`serving \S+ on (http://\S+) `)

func startInstance(t *testing.T, bin, name string, args ...string) *instance {
	t.Helper()
	in := &instance{name: name, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	in.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	in.cmd.Stderr = lockedWriter{in.mu, in.logs}
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { in.cmd.Wait(); close(in.done) }()
	t.Cleanup(func() {
		in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-in.done:
		case <-time.After(15 * time.Second):
			in.cmd.Process.Kill()
			<-in.done
		}
		if t.Failed() || os.Getenv("PLAIT_TEST_LOGS") != "" {
			t.Logf("%s's logs:\n%s", in.name, in.log())
		}
	})
	select {
	case in.base = <-addr:
	case <-in.done:
		t.Fatalf("%s exited: %v\n%s", name, in.cmd.ProcessState, in.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start serving\n%s", name, in.log())
	}
	return in
}

func (in *instance) log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.logs.String()
}

// kill stops the instance with SIGKILL: no shutdown, no leaving the group.
func (in *instance) kill() {
	in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.done
}

var client = &http.Client{Timeout: 10 * time.Second}

// post sends a command and reports whether it was acknowledged (202).
func post(base string, cmd map[string]any) (bool, error) {
	body, _ := json.Marshal(cmd)
	resp, err := client.Post(base+"/commands", "application/json", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return false, fmt.Errorf("POST /commands %s: %s %s", cmd["id"], resp.Status, b)
	}
	return true, nil
}

// sseClient reads the outcome frames of one instance's /stream, resuming
// with Last-Event-ID if the connection drops.
type sseClient struct {
	mu       sync.Mutex
	outcomes map[string]int // command id → frames seen
	last     string
	resumed  int
}

func (c *sseClient) run(ctx context.Context, base string) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stream", nil)
		c.mu.Lock()
		if c.last != "" {
			req.Header.Set("Last-Event-ID", c.last)
		}
		c.mu.Unlock()
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			c.read(resp.Body)
			resp.Body.Close()
		}
		if ctx.Err() == nil {
			c.mu.Lock()
			c.resumed++
			c.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (c *sseClient) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id, kind string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: ") && kind == "outcome":
			var f struct {
				ID string `json:"id"`
			}
			json.Unmarshal([]byte(line[6:]), &f)
			c.mu.Lock()
			c.outcomes[f.ID]++
			c.mu.Unlock()
		case line == "":
			if id != "" {
				c.mu.Lock()
				c.last = id
				c.mu.Unlock()
			}
			id, kind = "", ""
		}
	}
}

// TestScaledOutInstances runs orderdesk as three `plait serve --kafka
// --postgres` processes sharing one kfake broker (in this process, over
// TCP) and one PostgreSQL schema. Load goes through every instance; one is
// killed with SIGKILL mid-load and another started. Afterwards every
// acknowledged command has exactly one outcome, seen from any instance,
// events have no duplicates and gap-free seqs, the orderList view agrees
// with its orders and customers, and an SSE client of a surviving instance
// got the outcome of every acknowledged command.
func TestScaledOutInstances(t *testing.T) {
	start := time.Now()
	conn, url := pgConn(t)
	bin := buildPlait(t)
	t.Logf("built plait in %s", time.Since(start).Round(time.Millisecond))
	kc := oneBrokerKafka(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "plait_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	args := []string{"--kafka", strings.Join(kc.ListenAddrs(), ","), "--postgres", url, "--pg-schema", schema,
		"--topic-prefix", schema, "--group", schema, "--partitions", "4", "--session-timeout", "1500ms"}

	a := startInstance(t, bin, "a", args...)
	bInst := startInstance(t, bin, "b", args...)
	t.Logf("two instances serving after %s", time.Since(start).Round(time.Millisecond))

	sseCtx, stopSSE := context.WithCancel(context.Background())
	defer stopSSE()
	// From the feed's start, so that an outcome committed before the
	// stream is open is still seen.
	sse := &sseClient{outcomes: map[string]int{}, last: "0"}
	sseDone := make(chan struct{})
	go func() { defer close(sseDone); sse.run(sseCtx, a.base) }()

	// The load: customers, orders of those customers, then ships, cancels
	// and renames, through whichever instances are up.
	var mu sync.Mutex
	targets := []*instance{a, bInst}
	acked := map[string]bool{}
	var cmds []map[string]any
	const customers, orders = 12, 300
	rng := mrand.New(mrand.NewPCG(7, 7))
	for i := range customers {
		cmds = append(cmds, map[string]any{"id": fmt.Sprintf("cc%d", i), "type": "customer", "aggregateId": fmt.Sprintf("cust%d", i),
			"name": "create", "data": map[string]any{"name": fmt.Sprintf("Customer %d", i), "email": fmt.Sprintf("c%d@example.com", i)}})
	}
	for i := range orders {
		var lines []map[string]any
		for l := range 1 + rng.IntN(3) {
			lines = append(lines, map[string]any{"sku": fmt.Sprintf("sku%d", l), "qty": 1 + rng.IntN(4), "price": float64(rng.IntN(2000)) / 100})
		}
		cmds = append(cmds, map[string]any{"id": fmt.Sprintf("po%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i),
			"name": "place", "data": map[string]any{"customerId": fmt.Sprintf("cust%d", rng.IntN(customers)), "lines": lines}})
		switch {
		case i%5 == 0:
			cmds = append(cmds, map[string]any{"id": fmt.Sprintf("so%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "ship", "data": map[string]any{}})
		case i%7 == 0:
			cmds = append(cmds, map[string]any{"id": fmt.Sprintf("xo%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "cancel", "data": map[string]any{"reason": "test"}})
		}
		if i%10 == 0 {
			c := rng.IntN(customers)
			cmds = append(cmds, map[string]any{"id": fmt.Sprintf("rn%d", i), "type": "customer", "aggregateId": fmt.Sprintf("cust%d", c),
				"name": "rename", "data": map[string]any{"name": fmt.Sprintf("Customer %d v%d", c, i)}})
		}
	}

	work := make(chan map[string]any)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			n := w
			for cmd := range work {
				for try := 0; ; try++ {
					mu.Lock()
					in := targets[n%len(targets)]
					mu.Unlock()
					n++
					ok, err := post(in.base, cmd)
					time.Sleep(40 * time.Millisecond) // spread the load over the kill, the rebalances and the new instance
					if ok {
						mu.Lock()
						acked[cmd["id"].(string)] = true
						mu.Unlock()
						break
					}
					if try > 50 {
						t.Errorf("command %s never acknowledged: %v", cmd["id"], err)
						break
					}
					// Not acknowledged (the instance died): send the same id
					// elsewhere, as a client would.
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	var c *instance
	for i, cmd := range cmds {
		if i == len(cmds)/3 {
			bInst.kill()
			t.Logf("killed b after %d commands, %s", i, time.Since(start).Round(time.Millisecond))
			mu.Lock()
			targets = []*instance{a}
			mu.Unlock()
		}
		if i == len(cmds)/2 {
			c = startInstance(t, bin, "c", args...)
			mu.Lock()
			targets = []*instance{a, c}
			mu.Unlock()
			t.Logf("started c after %d commands, %s", i, time.Since(start).Round(time.Millisecond))
		}
		work <- cmd
	}
	close(work)
	wg.Wait()
	t.Logf("%d commands acknowledged after %s", len(acked), time.Since(start).Round(time.Millisecond))

	// Each instance decided commands: b before it died, c once it joined.
	for _, in := range []*instance{a, bInst, c} {
		if got := assigned(in.log()); len(got) == 0 {
			t.Errorf("%s was never assigned a partition", in.name)
		}
	}

	// Every acknowledged command gets exactly one outcome (the commands
	// table's key makes it at most one), seen from either survivor.
	ctx := context.Background()
	tbl := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	deadline := time.Now().Add(40 * time.Second)
	for id := range acked {
		for {
			in := []*instance{a, c}[len(id)%2]
			resp, err := client.Get(in.base + "/commands/" + id)
			var v struct{ Status string }
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
			}
			if v.Status == "accepted" || v.Status == "rejected" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("command %s has no outcome from %s (status %q, err %v)", id, in.name, v.Status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("every acknowledged command has its outcome after %s", time.Since(start).Round(time.Millisecond))
	var outcomes int
	conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("commands")+` WHERE id = ANY($1)`, keys(acked)).Scan(&outcomes)
	if outcomes != len(acked) {
		t.Errorf("%d outcomes recorded for %d acknowledged commands", outcomes, len(acked))
	}

	// No duplicate events: each command has exactly the events its outcome
	// names, and no event lacks its command.
	var bad int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("commands")+` c WHERE c.event_count <>
		(SELECT count(*) FROM `+tbl("events")+` e WHERE e.causation_id = c.id)`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d commands whose events are not exactly their outcome's (err %v)", bad, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl("events")+` e WHERE NOT EXISTS
		(SELECT 1 FROM `+tbl("commands")+` c WHERE c.id = e.causation_id)`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d events without their command (err %v)", bad, err)
	}
	// Gap-free seq per instance, and the instance records at the last seq.
	rows, err := conn.Query(ctx, `SELECT e.type, e.aggregate_id, count(*), min(e.seq), max(e.seq), i.seq FROM `+tbl("events")+` e
		JOIN `+tbl("instances")+` i ON i.type = e.type AND i.id = e.aggregate_id GROUP BY e.type, e.aggregate_id, i.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var instances int
	for rows.Next() {
		var typ, id string
		var n, lo, hi, seq int64
		rows.Scan(&typ, &id, &n, &lo, &hi, &seq)
		instances++
		if lo != 1 || hi != n || seq != hi {
			t.Errorf("%s/%s: %d events with seq %d..%d, record at %d: want 1..%d without gaps", typ, id, n, lo, hi, seq, n)
		}
	}
	rows.Close()
	if instances < customers+orders {
		t.Errorf("only %d instances have events", instances)
	}

	// The orderList view converges: each item says what its order and its
	// customer say.
	type orderDoc struct {
		CustomerID string `json:"customerId"`
		Lines      []struct {
			Qty   int     `json:"qty"`
			Price float64 `json:"price"`
		} `json:"lines"`
		Status string `json:"status"`
	}
	type item struct {
		CustomerName string  `json:"customerName"`
		Total        float64 `json:"total"`
		Status       string  `json:"status"`
		Lines        int     `json:"lines"`
	}
	var diffs []string
	for {
		diffs = diffs[:0]
		names := map[string]string{}
		rows, _ := conn.Query(ctx, `SELECT id, state->>'name' FROM `+tbl("instances")+` WHERE type = 'customer'`)
		for rows.Next() {
			var id, name string
			rows.Scan(&id, &name)
			names[id] = name
		}
		rows.Close()
		items := map[string]item{}
		rows, _ = conn.Query(ctx, `SELECT id, state FROM `+tbl("instances")+` WHERE type = 'orderList'`)
		for rows.Next() {
			var id string
			var it item
			rows.Scan(&id, &it)
			items[id] = it
		}
		rows.Close()
		rows, _ = conn.Query(ctx, `SELECT id, state FROM `+tbl("instances")+` WHERE type = 'order'`)
		n := 0
		for rows.Next() {
			var id string
			var o orderDoc
			rows.Scan(&id, &o)
			n++
			want := item{CustomerName: names[o.CustomerID], Status: o.Status, Lines: len(o.Lines)}
			for _, l := range o.Lines {
				want.Total += float64(l.Qty) * l.Price
			}
			got := items[id]
			if got.CustomerName != want.CustomerName || got.Status != want.Status || got.Lines != want.Lines || math.Abs(got.Total-want.Total) > 1e-6 {
				diffs = append(diffs, fmt.Sprintf("%s: item %+v, want %+v", id, got, want))
			}
		}
		rows.Close()
		if n != orders {
			diffs = append(diffs, fmt.Sprintf("%d orders, want %d", n, orders))
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(diffs) > 0 {
		t.Errorf("orderList did not converge: %d items differ, e.g. %s", len(diffs), diffs[0])
	}
	t.Logf("views converged after %s", time.Since(start).Round(time.Millisecond))

	// The SSE client of a surviving instance got every acknowledged
	// command's outcome (it reads the feed from its start, so those
	// committed before it connected come by its catch-up).
	deadline = time.Now().Add(10 * time.Second)
	for {
		sse.mu.Lock()
		var missing []string
		for id := range acked {
			if sse.outcomes[id] == 0 {
				missing = append(missing, id)
			}
		}
		resumed := sse.resumed
		sse.mu.Unlock()
		if len(missing) == 0 {
			t.Logf("the SSE client of a got all %d outcomes (reconnected %d times)", len(acked), resumed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SSE client of a missed %d outcomes, e.g. %v", len(missing), missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopSSE()
	<-sseDone
}

// assigned lists the partitions ("topic/N") an instance's JSON logs say it
// was assigned, from their lines "kafka: partitions assigned", which list
// them as "topic/0,1 other/2".
func assigned(logs string) []string {
	var ps []string
	for line := range strings.SplitSeq(logs, "\n") {
		var l struct {
			Msg        string `json:"msg"`
			Member     string `json:"member"`
			Partitions string `json:"partitions"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "kafka: partitions assigned" || l.Member == "" {
			continue
		}
		for tp := range strings.FieldsSeq(l.Partitions) {
			topic, parts, _ := strings.Cut(tp, "/")
			for p := range strings.SplitSeq(parts, ",") {
				ps = append(ps, topic+"/"+p)
			}
		}
	}
	return ps
}

func keys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
