package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each progress line the server streams is read on its own: a field a line
// leaves out is not the line before's.
func TestReplayRemoteReadsEachLineAlone(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/views/orderList/rebuild" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, `{"view":"orderList","phase":"replaying","position":5,"head":10,"events":5,"instances":3}`)
		fmt.Fprintln(w, `{"view":"orderList","phase":"done","elapsedMS":7}`)
	}))
	defer srv.Close()
	var out strings.Builder
	if err := replayRemote(context.Background(), srv.URL, "orderList", "", &out); err != nil {
		t.Fatal(err)
	}
	if want := "rebuilt orderList: 0 events replayed, 0 instances"; !strings.Contains(out.String(), want) {
		t.Fatalf("printed:\n%s\nwant %q", out.String(), want)
	}
}
