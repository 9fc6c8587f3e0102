package httpapi

import (
	"net/http"
	"testing"

	"github.com/plaithq/plait"
)

// A rejection is answered by what refused it: a conflict on expectedSeq
// 409, the access rules (scaled out, when the command was decided) 403,
// the application's rules 422.
func TestRejectionStatusSaysWhatRefused(t *testing.T) {
	for code, want := range map[string]int{
		plait.CodeConflict:  http.StatusConflict,
		plait.CodeForbidden: http.StatusForbidden,
		plait.CodeRequired:  http.StatusUnprocessableEntity,
		"invalid_state":     http.StatusUnprocessableEntity,
	} {
		out := &plait.Outcome{Status: plait.StatusRejected, Errors: []plait.FieldError{{Path: "x", Code: code, Message: "no"}}}
		if p := rejectionProblem(out); p.Status != want || len(p.Errors) != 1 {
			t.Errorf("code %s: %d %+v, want %d", code, p.Status, p.Errors, want)
		}
	}
}
