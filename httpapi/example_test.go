package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/engine/enginetest"
	"github.com/plaithq/plait/httpapi"
	"github.com/plaithq/plait/store/sqlite"
)

// Serve an application over HTTP for the single local user, post a command
// and wait for its outcome.
func Example() {
	dir, _ := os.MkdirTemp("", "plait-example")
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "plait.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	e, err := engine.New(enginetest.App(), st, engine.Options{})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()

	srv := httpapi.New(e, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	ts := httptest.NewServer(srv)

	resp, err := http.Post(ts.URL+"/commands?wait=outcome", "application/json",
		strings.NewReader(`{"id":"c1","type":"counter","aggregateId":"a","name":"add","data":{"by":2}}`))
	if err != nil {
		panic(err)
	}
	var out struct {
		ID     string
		Status string
		Events []struct{ Name, Data json.RawMessage }
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, out.ID, out.Status, string(out.Events[0].Name), string(out.Events[0].Data))

	resp, _ = http.Post(ts.URL+"/commands?wait=outcome", "application/json",
		strings.NewReader(`{"type":"counter","aggregateId":"a","name":"add","data":{"by":0}}`))
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	resp.Body.Close()

	srv.CloseStreams()
	ts.Close()
	stop()
	<-done
	// Output:
	// 200 c1 accepted "added" {"by":2}
	// 422 application/problem+json
}
