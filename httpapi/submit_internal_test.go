package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// TestAnUnconfirmedAppendIsNotAnEndedRequest: an append the command log
// gave up waiting on (its own timeout, not the client's) is answered 503,
// may be stored, send it again with the same id; not as a request that
// ended, nor as a refusal.
func TestAnUnconfirmedAppendIsNotAnEndedRequest(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	r := httptest.NewRequest("POST", "/commands", nil)
	err := fmt.Errorf("append to the command log: kafka: produce command c1: %w: %w", engine.ErrUnconfirmed, context.DeadlineExceeded)
	p, status := s.submitProblem(r, err, plait.Command{ID: "c1"})
	want := "the command is not acknowledged: it may be stored; send it again with the same id, c1, for its one outcome"
	if p.Status != http.StatusServiceUnavailable || p.Detail != want || p.ID != "c1" || status != "unavailable" {
		t.Fatalf("an unconfirmed append is answered %d %q (id %q, counted %s), want 503 %q", p.Status, p.Detail, p.ID, status, want)
	}
}
