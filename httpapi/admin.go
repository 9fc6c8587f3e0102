package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// AdminRole is the role a user needs, when the server authenticates, to run
// administrative operations such as rebuilding a view.
const AdminRole = "admin"

// rebuildProgress is one line of POST /views/{name}/rebuild's answer.
type rebuildProgress struct {
	View      string `json:"view"`
	Phase     string `json:"phase"`
	Position  int64  `json:"position"`
	Head      int64  `json:"head"`
	Events    int64  `json:"events"`
	Instances int    `json:"instances"`
	ElapsedMS int64  `json:"elapsedMs"`
	PausedMS  int64  `json:"pausedMs,omitempty"`
	Error     string `json:"error,omitempty"`
}

func progressLine(p engine.Progress) rebuildProgress {
	return rebuildProgress{
		View: p.Type, Phase: p.Phase, Position: p.Position, Head: p.Head, Events: p.Events,
		Instances: p.Instances, ElapsedMS: p.Elapsed.Milliseconds(), PausedMS: p.Paused.Milliseconds(),
	}
}

// rebuildView rebuilds a view while the old copy keeps serving, and streams
// its progress as newline-delimited JSON, one object per report; the last
// has phase "done", or "failed" with an error.
func (s *Server) rebuildView(w http.ResponseWriter, r *http.Request) {
	u, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return
	}
	if s.opts.Auth != nil && !u.HasRole(AdminRole) {
		writeProblem(w, newProblem(http.StatusForbidden, slugForbidden, "rebuilding a view needs the "+AdminRole+" role"))
		return
	}
	name := r.PathValue("name")
	if d, ok := s.defs[name]; !ok || !d.Settings().View {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, "no view "+name))
		return
	}
	// The answer starts with the first report, so that a rebuild refused
	// at once is a problem, not a stream.
	started := false
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	write := func(line rebuildProgress) {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		enc.Encode(line)
		rc.Flush()
	}
	final, err := s.e.Rebuild(r.Context(), name, func(p engine.Progress) {
		if p.Phase != "done" {
			write(progressLine(p))
		}
	})
	if !started && err != nil {
		switch {
		case errors.Is(err, engine.ErrRebuilding):
			writeProblem(w, newProblem(http.StatusConflict, slugRebuilding, "view "+name+" is being rebuilt already; wait for that rebuild to end"))
		case errors.Is(err, plait.ErrStopped):
			writeProblem(w, newProblem(http.StatusServiceUnavailable, slugUnavailable, "the engine is not running"))
		default: // the deployment cannot rebuild this view
			// The asker is an administrator, who runs the deployment: the
			// answer says why, as the log does.
			writeProblem(w, s.failure(r, http.StatusInternalServerError, "the view "+name+" cannot be rebuilt: "+err.Error(),
				"rebuild refused", err, "view", name))
		}
		return
	}
	line := progressLine(final)
	if err != nil {
		// Told to an administrator, as refusals are.
		line.Phase, line.Error = "failed", "the rebuild failed: "+err.Error()
		if errors.Is(err, plait.ErrStopped) {
			line.Error = "the engine is not running"
		} else {
			s.log.ErrorContext(r.Context(), "rebuild failed", "route", r.Pattern, "view", name, "error", err)
		}
	}
	write(line)
}

// forgotten is the answer of POST /subjects/{subject}/forget.
type forgotten struct {
	Subject string `json:"subject"`
	// Items are the view instances that showed the subject's personal
	// data, by lineage: a client showing one should read it again.
	Items []engine.ItemRef `json:"items"`
}

// forgetSubject forgets a data subject: its key is destroyed, so that
// every personal field of the subject reads as erased from then on, through
// every read of the API and the relay. Forgetting a subject again, or one
// that never had personal data, answers the same way: the operation is
// idempotent.
func (s *Server) forgetSubject(w http.ResponseWriter, r *http.Request) {
	u, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return
	}
	if s.opts.Auth != nil && !u.HasRole(AdminRole) {
		writeProblem(w, newProblem(http.StatusForbidden, slugForbidden, "forgetting a data subject needs the "+AdminRole+" role"))
		return
	}
	subject := r.PathValue("subject")
	if !plait.ValidID(subject) {
		writeProblem(w, newProblem(http.StatusBadRequest, slugInvalidRequest, "subject: "+plait.IDRule,
			plait.FieldError{Path: "subject", Code: CodeInvalidID, Message: plait.IDRule}))
		return
	}
	if !s.running() {
		writeProblem(w, newProblem(http.StatusServiceUnavailable, slugUnavailable, "the engine is not running"))
		return
	}
	// A client that goes away does not stop a forget half-way.
	f, err := s.e.Forget(context.WithoutCancel(r.Context()), subject)
	switch {
	case errors.Is(err, engine.ErrNoPersonalData):
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, "the application declares no personal data: there is no subject to forget"))
		return
	case err != nil:
		// The key may be destroyed already, the search for the items that
		// showed it not done: asking again is safe and completes it.
		writeProblem(w, s.failure(r, http.StatusServiceUnavailable, "forgetting the subject did not complete; ask again",
			"forget a data subject", err, "subject", subject))
		return
	}
	if f.Items == nil {
		f.Items = []engine.ItemRef{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, forgotten{Subject: f.Subject, Items: f.Items})
}
