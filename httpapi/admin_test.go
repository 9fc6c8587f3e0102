package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/httpapi"
)

// TestRebuildStreamsItsProgressAndRefusesASecondAtOnce: POST
// /views/{name}/rebuild streams its progress as NDJSON ending in "done";
// while a rebuild of the view runs, another is a 409 problem before any
// stream starts.
func TestRebuildStreamsItsProgressAndRefusesASecondAtOnce(t *testing.T) {
	h := start(t, testApp(), httpapi.Options{}, false)
	admin := token(t, "root", httpapi.AdminRole)
	for i := 0; i < 20; i++ {
		h.post(admin, "?wait=settled", add("", "c1", 1), http.StatusOK)
	}

	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := make(chan error, 1)
	go func() {
		_, err := h.e.Rebuild(context.Background(), "tally", func(engine.Progress) {
			once.Do(func() { close(inside); <-release })
		})
		first <- err
	}()
	<-inside
	r := h.do("POST", "/views/tally/rebuild", admin, nil)
	p := problem(t, r, http.StatusConflict, "")
	if typ, _ := p["type"].(string); !strings.HasSuffix(typ, "/rebuilding") {
		t.Errorf("problem type %q, want one ending in /rebuilding", typ)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}

	r = h.do("POST", "/views/tally/rebuild", admin, nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("rebuild after the first: %s", r)
	}
	var last map[string]any
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("progress line %q: %v", sc.Text(), err)
		}
	}
	if last["phase"] != "done" {
		t.Fatalf("last progress line %v, want phase done", last)
	}
}

// unstageable is a store whose view copies cannot be made.
type unstageable struct{ engine.Store }

func (unstageable) StageView(context.Context, string, plait.Settings) (engine.ViewCopy, error) {
	return nil, errors.New("disk quota exceeded")
}

// TestAFailedRebuildTellsTheAdministratorWhy: the one who asked for a
// rebuild runs the deployment; a rebuild that fails says why, as the
// server's log does.
func TestAFailedRebuildTellsTheAdministratorWhy(t *testing.T) {
	h := startOn(t, testApp(), httpapi.Options{}, false, func(s engine.Store) engine.Store { return unstageable{s} })
	admin := token(t, "root", httpapi.AdminRole)
	h.post(admin, "?wait=settled", add("", "c1", 1), http.StatusOK)
	r := h.do("POST", "/views/tally/rebuild", admin, nil)
	if !strings.Contains(string(r.body), "disk quota exceeded") {
		t.Fatalf("a failed rebuild: %s, want the cause", r)
	}
}
