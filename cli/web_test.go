package cli

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/plaithq/plait/examples/orderdesk"
)

// An application serves the browser files it is given, and plait.js
// alone without: never another application's user interface.
func TestServeGivesBrowsersTheApplicationsFiles(t *testing.T) {
	ui := fstest.MapFS{
		"index.html": {Data: []byte("<!doctype html><title>helpdesk</title>")},
		"plait.js":   {Data: []byte("export class Client {}")},
	}
	for _, tc := range []struct {
		name    string
		prog    program
		index   int
		plaitJS string
	}{
		{"WithWeb", program{app: orderdesk.App(), web: ui}, http.StatusOK, "export class Client {}"},
		{"without", program{app: orderdesk.App()}, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prog.web == nil {
				tc.prog = defaults(tc.prog.app) // as run makes it when no WithWeb is given
			}
			addr := freeAddr(t)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- runServe(ctx, tc.prog, []string{"--addr", addr, "--data", filepath.Join(t.TempDir(), "data"), "--log-level", "warn"}, io.Discard, io.Discard)
			}()
			defer func() { stop(); <-done }()
			get := func(path string) (int, string) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					resp, err := http.Get("http://" + addr + path)
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						return resp.StatusCode, string(b)
					}
					if time.Now().After(deadline) {
						t.Fatalf("GET %s: %v", path, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			if code, body := get("/"); code != tc.index || (code == http.StatusOK && !strings.Contains(body, "helpdesk")) {
				t.Fatalf("GET /: %d %.80s", code, body)
			}
			code, body := get("/plait.js")
			if code != http.StatusOK || (tc.plaitJS != "" && body != tc.plaitJS) || !strings.Contains(body, "class Client") {
				t.Fatalf("GET /plait.js: %d %.80s", code, body)
			}
			if code, _ := get("/app.js"); tc.name == "without" && code != http.StatusNotFound {
				t.Fatalf("GET /app.js without a user interface: %d, want 404", code)
			}
		})
	}
}
