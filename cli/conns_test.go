package cli_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeCapsTheConnectionsOfAClient: plait serve closes, unanswered, a
// connection past --max-conns-per-ip from one address, and answers those
// within it.
func TestServeCapsTheConnectionsOfAClient(t *testing.T) {
	in := startInstance(t, buildPlait(t), "serve", "--data", t.TempDir(), "--max-conns-per-ip", "2", "--log-level", "warn")
	addr := strings.TrimPrefix(in.base, "http://")
	answered := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return false
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200")
	}
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, want := answered(c), i < 2; got != want {
			t.Errorf("connection %d answered: %v, want %v", i+1, got, want)
		}
	}
}
