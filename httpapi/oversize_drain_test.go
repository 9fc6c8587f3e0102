package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

// TestOversizedBodyIs413ToAClientThatWritesItAll: most HTTP clients
// (Python's http.client and requests, many scripts) write the whole body
// before they read the answer. A body over the limit must still get its
// 413, not a connection reset while the client is still writing it.
func TestOversizedBodyIs413ToAClientThatWritesItAll(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{MaxBody: 1 << 10}, false)
	tok := token(t, "ann")
	const size = 24 << 20 // more than loopback's socket buffers hold
	host := strings.TrimPrefix(h.ts.URL, "http://")
	for _, c := range []struct{ name, framing string }{
		{"content-length", fmt.Sprintf("Content-Length: %d\r\n", size)},
		{"content-length, connection close", fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n", size)},
		{"chunked", "Transfer-Encoding: chunked\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			head := "POST /commands HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok +
				"\r\nContent-Type: application/json\r\n" + c.framing + "\r\n"
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for sent := 0; sent < size; sent += len(chunk) {
				if c.framing == "Transfer-Encoding: chunked\r\n" {
					_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
				} else {
					_, err = conn.Write(chunk)
				}
				if err != nil {
					t.Fatalf("writing the body, after %d bytes: %v", sent, err)
				}
			}
			if c.framing == "Transfer-Encoding: chunked\r\n" {
				io.WriteString(conn, "0\r\n\r\n")
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
		})
	}
	if h.e.Head() != 0 {
		t.Fatal("an oversized command was stored")
	}
}

// TestOversizedBodyOverHTTP2KeepsTheConnection: over HTTP/2 a 413 ends
// its stream, not the connection the page's other requests share (a
// Connection: close there is a GOAWAY), and the body is not drained.
func TestOversizedBodyOverHTTP2KeepsTheConnection(t *testing.T) {
	h := start(t, plait.App{}, httpapi.Options{MaxBody: 1 << 10}, false)
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(h.srv)
	ts.EnableHTTP2 = true
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	defer ts.Close()
	client := ts.Client()
	tok := token(t, "ann")
	for i := range 3 {
		req, _ := http.NewRequest("POST", ts.URL+"/commands", strings.NewReader(strings.Repeat(" ", 4<<10)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("request %d: %s %d", i, resp.Proto, resp.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("three 413s over HTTP/2 took %d connections", n)
	}
}
