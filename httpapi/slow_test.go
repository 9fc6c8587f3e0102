package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/store/sqlite"
)

// TestStuckClientIsCutLoose opens a stream whose client never reads, fills
// the connection with frames and checks that the server ends the stream by
// itself, once a write has been blocked for the write timeout, while a
// client that reads keeps going.
func TestStuckClientIsCutLoose(t *testing.T) {
	e, srv, ts := serveWithWriteTimeout(t, sqlite.Options{Synchronous: "OFF"}, 300*time.Millisecond)

	// The stuck client: it sends its request and reads nothing.
	stuck, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /stream?lastEventId=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
	// The reading client.
	reader, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	fmt.Fprintf(reader, "GET /stream?lastEventId=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
	frames := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(reader)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "id: ") {
				n++
				select {
				case frames <- n:
				default:
				}
			}
		}
	}()
	waitStreams := func(want float64) bool {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if gaugeValue(srv) == want {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	if !waitStreams(2) {
		t.Fatalf("streams = %v, want 2", gaugeValue(srv))
	}

	// Some 40 MB of frames: more than the socket buffers hold.
	label := strings.Repeat("x", 16<<10)
	for i := 0; i < 1200 && gaugeValue(srv) == 2; i++ {
		data, _ := json.Marshal(enginetest.Labelled{Label: label})
		if _, err := e.Submit(context.Background(), plait.Command{Type: "counter", AggregateID: fmt.Sprint("c", i%50), Name: "label", Data: data}, plait.User{ID: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	if !waitStreams(1) {
		t.Fatalf("streams = %v: the stuck client was not cut loose", gaugeValue(srv))
	}
	select {
	case <-frames:
	case <-time.After(10 * time.Second):
		t.Fatal("the reading client got nothing")
	}
}

func gaugeValue(s *Server) float64 {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "plait_sse_streams" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestStuckReaderOfAnAnswerIsCutLoose asks for a list page of megabytes and
// reads nothing: the server must give up on the answer once a write has
// been blocked for the write timeout, rather than hold it, and its
// handler, for as long as the client keeps the connection open (any user
// could pin the server's memory so, a few megabytes a request). A client
// that reads gets the whole page, and its next request on the same
// connection is answered, however much later.
func TestStuckReaderOfAnAnswerIsCutLoose(t *testing.T) {
	// A write blocked for a second is a stuck reader's: one that reads,
	// on a machine loaded by the race detector, may pause for less.
	e, srv, ts := serveWithWriteTimeout(t, sqlite.Options{Synchronous: "OFF", MaxPageBytes: 256 << 20}, time.Second)

	// Some 40 MB of list items: more than the socket buffers hold.
	label := strings.Repeat("x", 200<<10)
	for i := range 200 {
		data, _ := json.Marshal(enginetest.Labelled{Label: label})
		if _, err := e.Submit(context.Background(), plait.Command{Type: "counter", AggregateID: fmt.Sprint("c", i), Name: "label", Data: data}, plait.User{ID: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	const request = "GET /lists/counter?limit=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := httptestGet(t, ts.URL+"/lists/counter?limit=1000")
		if strings.Count(r, `"label"`) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the counters were not listed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	answered := listsAnswered(srv)
	stuck, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprint(stuck, request)
	// The handler, cut loose, ends: the request is counted. (A fixed
	// pause is not enough: under the race detector the page of 40 MB
	// takes longer than that to be made, and the client would start
	// reading before the server wrote it.) Held, it never ends.
	for deadline := time.Now().Add(60 * time.Second); listsAnswered(srv) == answered; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the handler of the stuck answer has not ended after 60 s: the answer is held")
		}
	}
	// What reaches the client now is what was in the buffers, then the
	// end of the connection: not the whole answer.
	stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := stuck.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the connection is still open after %d bytes: the stuck answer was held", got.Len())
			}
			break
		}
		if strings.HasSuffix(got.String(), "\r\n0\r\n\r\n") {
			t.Fatalf("the whole answer (%d bytes) was held for a client that read nothing", got.Len())
		}
	}

	// A client that reads gets it all, and is answered again on the same
	// connection after a pause longer than the write timeout.
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 {
		fmt.Fprint(c, request)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || strings.Count(string(body), `"label"`) != 200 {
			t.Fatalf("request %d: %d, %d bytes, %v", i, resp.StatusCode, len(body), err)
		}
		time.Sleep(1200 * time.Millisecond)
	}
	// A small answer after them, long after the last write of the large
	// one, is not cut by that write's deadline.
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a small answer after a large one, on the same connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a small answer after a large one: %d", resp.StatusCode)
	}
}

// listsAnswered is how many GET /lists/{type} the server has answered.
func listsAnswered(s *Server) float64 {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		return -1
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "plait_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "GET /lists/{type}" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func httptestGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// serveWithWriteTimeout serves the test application on a SQLite store
// opened with opts, its writes to a client bounded by timeout, until the
// test ends.
func serveWithWriteTimeout(t *testing.T, opts sqlite.Options, timeout time.Duration) (*engine.Engine, *Server, *httptest.Server) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := engine.New(enginetest.App(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Background(t, e)
	srv := New(e, Options{Logger: slog.New(slog.DiscardHandler)})
	srv.streamWriteTimeout = timeout
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.CloseStreams)
	return e, srv, ts
}
