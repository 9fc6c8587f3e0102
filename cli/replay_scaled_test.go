package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// plait replay --view --server rebuilds a view inside a scaled-out server,
// which streams the progress back.
func TestReplayAViewOfAScaledOutServer(t *testing.T) {
	_, url := pgConn(t)
	bin := buildPlait(t)
	in := soloInstance(t, bin, oneBrokerKafka(t), url)
	cmds := []map[string]any{{"id": "c1", "type": "customer", "aggregateId": "cust1", "name": "create",
		"data": map[string]any{"name": "Ann", "email": "ann@example.com"}}}
	for i := range 5 {
		cmds = append(cmds, map[string]any{"id": fmt.Sprintf("o%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "place",
			"data": map[string]any{"customerId": "cust1", "currency": "EUR", "lines": []map[string]any{{"sku": "a", "qty": 1, "price": 2}}}})
	}
	for _, c := range cmds {
		body, _ := json.Marshal(c)
		resp, err := client.Post(in.base+"/commands?wait=settled", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /commands %s: %s", c["id"], resp.Status)
		}
	}
	out, err := exec.Command(bin, "replay", "--view", "orderList", "--server", in.base).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rebuilt orderList: ") || strings.Contains(string(out), "data directory") {
		t.Fatalf("replay --view --server: %v\n%s", err, out)
	}
	err = exec.Command(bin, "replay", "--aggregate", "order", "--server", in.base).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("replay --aggregate --server: %v, want exit 2", err)
	}
}
