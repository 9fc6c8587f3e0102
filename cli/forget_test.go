package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/examples/orderdesk"
)

// TestForgetGoesThroughTheRunningServer: with a server on the data
// directory, plait forget asks it, with the token it is given; --server
// names a server directly.
func TestForgetGoesThroughTheRunningServer(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	secret := "a secret of at least thirty-two bytes, for the test"
	tok := func(roles ...string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "op", "roles": roles, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin, clerk := tok("admin"), tok("clerk")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var serveOut, serveErr bytes.Buffer
	go func() {
		done <- runServe(ctx, program{app: orderdesk.App()}, []string{"--addr", addr, "--data", data, "--log-level", "warn", "--jwt-secret", secret}, &serveOut, &serveErr)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, serveErr.String())
		}
	}()
	base := "http://" + addr
	do := func(method, path, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+clerk)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	waitHealthy(t, base)
	do("POST", "/commands?wait=settled", `{"type":"customer","aggregateId":"c1","name":"create","data":{"name":"Ann","email":"ann.forgetcli@example.com"}}`)
	do("POST", "/commands?wait=settled", `{"type":"order","aggregateId":"o1","name":"place","data":{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}}`)
	if s := do("GET", "/aggregates/customer/c1", ""); !strings.Contains(s, "ann.forgetcli@example.com") {
		t.Fatalf("c1 before forget: %s", s)
	}

	t.Setenv("PLAIT_TOKEN", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"forget", "--data", data, "c1"}, "401"},
		{[]string{"forget", "--data", data, "--token", clerk, "c1"}, "403"},
		{[]string{"forget", "--data", data, "--token", admin, "c 1"}, "400"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want 1 and %s", c.args, code, stderr, c.want)
		}
		if hinted := strings.Contains(stderr, "--token or $PLAIT_TOKEN"); hinted != (c.want == "401" || c.want == "403") {
			t.Errorf("%v: %q; want a pointer to --token on 401 and 403 only", c.args, stderr)
		}
	}
	if s := do("GET", "/aggregates/customer/c1", ""); !strings.Contains(s, "ann.forgetcli@example.com") {
		t.Fatalf("c1 after refused forgets: %s", s)
	}

	code, out, stderr := runCLI(t, "forget", "--data", data, "--token", admin, "c1")
	if code != 0 || !strings.Contains(out, "forgetting through "+base) || !strings.Contains(out, "forgot c1") ||
		!strings.Contains(out, "orderList/o1") {
		t.Fatalf("forget through the server: exit %d\n%s\n%s", code, out, stderr)
	}
	if s := do("GET", "/aggregates/customer/c1", ""); strings.Contains(s, "ann.forgetcli") || !strings.Contains(s, engine.Erased) {
		t.Errorf("c1 after forget: %s", s)
	}
	t.Setenv("PLAIT_TOKEN", admin)
	code, out, stderr = runCLI(t, "forget", "--server", base+"/", "c1")
	if code != 0 || strings.Contains(out, "through") || !strings.Contains(out, "forgot c1") {
		t.Fatalf("forget --server again: exit %d\n%s\n%s", code, out, stderr)
	}
}

// A short --jwt-secret is the operator's to choose: serve warns that it
// can be guessed, and serves, accepting the tokens it signs (with or
// without an expiry) and refusing others.
func TestServeWarnsOfAShortSecretAndServes(t *testing.T) {
	base, logs := serveInBackground(t, "--data", t.TempDir(), "--log-level", "warn", "--jwt-secret", "secret")
	logged := logs.String()
	if !strings.Contains(logged, "the --jwt-secret is short") || !strings.Contains(logged, `"bytes":6`) {
		t.Fatalf("no warning of the short secret in the log:\n%s", logged)
	}
	list := func(claims jwt.MapClaims, key string) int {
		t.Helper()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return listStatus(t, base, tok)
	}
	if code := list(jwt.MapClaims{"sub": "ann"}, "secret"); code != http.StatusOK {
		t.Fatalf("a token without exp signed with the secret: %d, want 200", code)
	}
	if code := list(jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}, "secret"); code != http.StatusOK {
		t.Fatalf("a token signed with the secret: %d, want 200", code)
	}
	if code := list(jwt.MapClaims{"sub": "ann"}, "secreT"); code != http.StatusUnauthorized {
		t.Fatalf("a token signed with another secret: %d, want 401", code)
	}
}
