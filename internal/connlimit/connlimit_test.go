package connlimit_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/plaithq/plait/internal/connlimit"
)

// TestAClientHoldsAtMostMaxConnections: past its limit, a client's new
// connection is closed unanswered, while one it closed frees a place, and
// a server behind the listener answers the connections it holds.
func TestAClientHoldsAtMostMaxConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := connlimit.New(inner, 3)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	addr := inner.Addr().String()

	// ask sends a request on c and reports whether it was answered.
	ask := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		return n > 0
	}
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !ask(c) {
			t.Fatalf("connection %d not answered", len(held)+1)
		}
		held = append(held, c)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if ask(over) {
		t.Fatal("a fourth connection was answered")
	}
	held[0].Close()
	// The server sees the close when it next reads; the place is free then.
	deadline := time.Now().Add(5 * time.Second)
	for ln.Open(held[1].LocalAddr()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted open after one closed, want 2", ln.Open(held[1].LocalAddr()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !ask(again) {
		t.Fatal("a connection after one was closed was not answered")
	}
}
