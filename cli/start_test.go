package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/internal/syncbuf"
)

// TestServeWaitsForPostgreSQLUntilTheStartTimeout: a PostgreSQL that
// refuses the connection (not started yet) is tried again until
// --start-timeout, not given up on at once; serve then fails saying what
// it waited for, and logged the wait once.
func TestServeWaitsForPostgreSQLUntilTheStartTimeout(t *testing.T) {
	start := time.Now()
	var out, errOut bytes.Buffer
	code := run(orderdesk.App(), []string{"serve", "--addr", "127.0.0.1:0", "--kafka", "127.0.0.1:1",
		"--postgres", "postgres://postgres@" + freeAddr(t) + "/test?sslmode=disable", "--start-timeout", "1s"}, &out, &errOut)
	took := time.Since(start)
	stderr := errOut.String()
	if code != 1 || took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("serve with PostgreSQL refusing: exit %d after %v, want 1 after about 1s:\n%s", code, took, stderr)
	}
	if !strings.Contains(stderr, "open the PostgreSQL store: no answer within --start-timeout 1s") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("the error does not say what serve waited for:\n%s", stderr)
	}
	if n := strings.Count(stderr, "start: waiting for PostgreSQL"); n != 1 {
		t.Errorf("the wait was logged %d times, want once:\n%s", n, stderr)
	}
}

// TestDialUntilConnectsWhenTheListenerAppears: a dependency that starts
// listening 300 ms after the first attempt is connected to; the wait is
// logged once, and its end.
func TestDialUntilConnectsWhenTheListenerAppears(t *testing.T) {
	addr := freeAddr(t)
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			panic(fmt.Sprintf("listen again on %s: %v", addr, err))
		}
		t.Cleanup(func() { ln.Close() })
	}()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := dialUntil(ctx, log, "the test's service", 5*time.Second, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("dialUntil after %v: %v", time.Since(start), err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("connected after %v, before the listener was there", took)
	}
	if n := strings.Count(logs.String(), "start: waiting for the test's service"); n != 1 {
		t.Errorf("the wait was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"start: the test's service answers"`) {
		t.Errorf("the end of the wait was not logged:\n%s", logs.String())
	}
}

// TestServeFailsAtOnceOnAMissingDatabase: a configuration error, here a
// database that does not exist, is not waited on.
func TestServeFailsAtOnceOnAMissingDatabase(t *testing.T) {
	start := time.Now()
	var out, errOut bytes.Buffer
	code := run(orderdesk.App(), []string{"serve", "--addr", "127.0.0.1:0", "--kafka", "127.0.0.1:1",
		"--postgres", "postgres://postgres@127.0.0.1:5432/no_such_database_here?sslmode=disable", "--start-timeout", "5s"}, &out, &errOut)
	if took := time.Since(start); code != 1 || took > 2*time.Second || !strings.Contains(errOut.String(), "no_such_database_here") {
		t.Fatalf("serve on a missing database: exit %d after %v, want 1 at once:\n%s", code, took, errOut.String())
	}
}
