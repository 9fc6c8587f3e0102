package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
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
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "plait.db"), sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(enginetest.App(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { stop(); <-done }()
	<-e.Ready()
	srv := New(e, Options{Logger: slog.New(slog.DiscardHandler)})
	srv.streamWriteTimeout = 300 * time.Millisecond
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.CloseStreams()

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
