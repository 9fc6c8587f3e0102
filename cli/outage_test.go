package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plaithq/plait/store/postgres/pgtest"
)

// TestScaledOutPostgresOutage runs orderdesk as two `plait serve --kafka
// --postgres` processes whose PostgreSQL goes away for 3 s mid-load, as in
// a server restart: they reach the shared test server through a proxy,
// which closes every connection and refuses new ones, then lets them
// through again. Clients post commands to both over HTTP and post again,
// under the same id, every command not acknowledged. During the outage a
// command that cannot be stored is answered with a problem (503), never
// acknowledged. Afterwards, with no restart, every acknowledged command has
// exactly one outcome, seen from either instance; no event is stored twice;
// seqs are gap-free; the orderList view converges.
func TestScaledOutPostgresOutage(t *testing.T) {
	conn, url := pgConn(t)
	bin := buildPlait(t)
	kc := oneBrokerKafka(t)
	schema := pgtest.FreshSchema(t, url)
	proxy, proxied := pgtest.NewProxy(t, url)
	args := []string{"--kafka", strings.Join(kc.ListenAddrs(), ","), "--postgres", proxied, "--pg-schema", schema,
		"--topic-prefix", schema, "--group", schema, "--partitions", "4", "--session-timeout", "1500ms"}
	ins := []*instance{startInstance(t, bin, "a", args...), startInstance(t, bin, "b", args...)}

	var mu sync.Mutex
	acked := map[string]bool{}
	answers := map[string]int{} // what unacknowledged posts got: status or error
	var problem string
	const workers, commands = 6, 360
	giveUp := time.Now().Add(90 * time.Second)
	work := make(chan map[string]any)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			k := w
			for cmd := range work {
				for {
					in := ins[k%len(ins)]
					k++
					code, body, err := postRaw(in.base, cmd)
					if err == nil && code == http.StatusAccepted {
						mu.Lock()
						acked[cmd["id"].(string)] = true
						mu.Unlock()
						break
					}
					mu.Lock()
					if err != nil {
						answers["error"]++
					} else {
						answers[fmt.Sprint(code)]++
						if code == http.StatusServiceUnavailable && problem == "" {
							problem = body
						}
					}
					mu.Unlock()
					if time.Now().After(giveUp) {
						t.Errorf("command %s never acknowledged: %d %s %v", cmd["id"], code, body, err)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	outage := make(chan struct{})
	for i := 0; i < commands; i++ {
		if i == commands/3 {
			go func() {
				defer close(outage)
				proxy.Cut()
				time.Sleep(3 * time.Second)
				proxy.Restore()
			}()
		}
		work <- crashCommand(0, i%workers, i/workers)
	}
	<-outage
	close(work)
	wg.Wait()
	t.Logf("%d commands acknowledged; answers to the posts not acknowledged: %v", len(acked), answers)
	if answers["503"] == 0 {
		t.Error("no post was answered 503 during the outage")
	}
	for code, n := range answers {
		if code != "503" && code != "error" {
			t.Errorf("%d posts answered %s during the outage, want 503", n, code)
		}
	}
	if problem != "" {
		var p struct {
			Type, Title, Detail string
			Status              int
		}
		if err := json.Unmarshal([]byte(problem), &p); err != nil || p.Status != 503 || p.Title == "" || p.Detail == "" {
			t.Errorf("a 503 that is not a problem: %s", problem)
		}
		t.Logf("a 503: %s", problem)
	}

	// Every acknowledged command has its outcome, seen from either
	// instance, which kept running.
	deadline := time.Now().Add(40 * time.Second)
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
		for {
			status, err := commandStatus(ins[len(id)%2].base, id)
			if status == "accepted" || status == "rejected" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("command %s has status %q after the outage (%v)", id, status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, in := range ins {
		select {
		case <-in.done:
			t.Errorf("%s exited: %v", in.name, in.cmd.ProcessState)
		default:
		}
	}
	pgtest.CheckInvariants(t, url, schema, ids)

	// The orderList view converges: an item per order, with its status.
	ctx := context.Background()
	tbl := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	for {
		var orders, bad int
		err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE v.id IS NULL OR v.state->>'status' IS DISTINCT FROM o.state->>'status')
			FROM `+tbl("instances")+` o LEFT JOIN `+tbl("instances")+` v ON v.type = 'orderList' AND v.id = o.id
			WHERE o.type = 'order'`).Scan(&orders, &bad)
		if err != nil {
			t.Fatal(err)
		}
		if orders > 0 && bad == 0 {
			t.Logf("%d orders, their list items converged", orders)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d list items did not converge", bad, orders)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postRaw posts cmd and returns the answer's status and body.
func postRaw(base string, cmd map[string]any) (int, string, error) {
	body, _ := json.Marshal(cmd)
	resp, err := crashClient.Post(base+"/commands", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestScaledOutNotReadyWithoutKafka: an instance that cannot reach Kafka
// cannot take a command, so GET /readyz says it is not ready, and a load
// balancer sends the commands elsewhere.
func TestScaledOutNotReadyWithoutKafka(t *testing.T) {
	_, url := pgConn(t)
	bin := buildPlait(t)
	kc := oneBrokerKafka(t)
	in := soloInstance(t, bin, kc, url)
	readyz := func() (int, string) {
		resp, err := crashClient.Get(in.base + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body := readyz()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /readyz: %d %s, want %d", code, body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(http.StatusOK)
	broker := kc.ListenAddrs()[0]
	kc.Close()
	// The answer says what failed plainly, not where the broker is: that
	// is for the server's log.
	if body := waitFor(http.StatusServiceUnavailable); !strings.Contains(body, "a service the server depends on does not answer") || strings.Contains(body, broker) {
		t.Errorf("not ready, but the problem does not say why, or shows the broker: %s", body)
	}
	// A command sent all the same is refused within the produce timeout
	// (10 s), not held for as long as Kafka is away.
	start := time.Now()
	body, _ := json.Marshal(crashCommand(0, 0, 0))
	resp, err := (&http.Client{Timeout: time.Minute}).Post(in.base+"/commands", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusServiceUnavailable || took > 20*time.Second {
		t.Errorf("POST /commands without Kafka: %d after %s, want 503 within the produce timeout", resp.StatusCode, took)
	}
}
