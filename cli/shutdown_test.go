package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait/examples/orderdesk"
)

// TestShutdownDelayServesNotReady: on SIGTERM (the context's end), a
// server with --shutdown-delay answers /readyz with 503 and goes on taking
// commands for that long, then stops cleanly.
func TestShutdownDelayServesNotReady(t *testing.T) {
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var serveErr bytes.Buffer
	go func() {
		done <- runServe(ctx, program{app: orderdesk.App()}, []string{"--addr", addr, "--data", filepath.Join(t.TempDir(), "data"),
			"--log-level", "info", "--shutdown-delay", "1500ms"}, io.Discard, &serveErr)
	}()
	base := "http://" + addr
	ready := func() (int, string) {
		t.Helper()
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v\n%s", err, serveErr.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v\n%s", err, serveErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	stopped := time.Now()
	stop()
	for {
		code, body := ready()
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "shutting down") {
				t.Errorf("/readyz while shutting down: %s", body)
			}
			break
		}
		if time.Since(stopped) > time.Second {
			t.Fatalf("/readyz still %d a second after SIGTERM", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	body := `{"type":"customer","aggregateId":"late","name":"create","data":{"name":"Late","email":"late@example.com"}}`
	resp, err := http.Post(base+"/commands?wait=outcome", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("a command while shutting down: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a command while shutting down: %s, want 200", resp.Status)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, serveErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop after its shutdown delay")
	}
	if waited := time.Since(stopped); waited < 1500*time.Millisecond {
		t.Errorf("the server stopped %s after SIGTERM, before its shutdown delay", waited)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after it stopped")
	}
	// A duration is logged as one ("1.5s"), not as a count of nanoseconds.
	if want := `"msg":"shutting down: not ready, still serving","for":"1.5s"`; !strings.Contains(serveErr.String(), want) {
		t.Errorf("the log has no %s:\n%s", want, serveErr.String())
	}
}

// TestServeOnATakenAddressCreatesNothing: a server that cannot listen
// stops before it creates its data directory or store.
func TestServeOnATakenAddressCreatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := runCLI(t, "serve", "--addr", ln.Addr().String(), "--data", data)
	if code != 1 || !strings.Contains(stderr, "listen") {
		t.Fatalf("serve on a taken address: exit %d, %q; want 1 and why", code, stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve on a taken address left %s behind (%v)", data, err)
	}
}
