package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/internal/outage"
)

// ProblemBase is the prefix of every problem type URI the server answers
// with; the slug after it names the kind of problem.
const ProblemBase = "https://plait.dev/problems/"

// Problem is an RFC 9457 problem detail, with Plait's extension members:
// the field errors, and for a rejected command the command itself.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Errors says which fields are at fault and why.
	Errors []plait.FieldError `json:"errors,omitempty"`
	// ID is the command's id, for a rejected or pending command.
	ID string `json:"id,omitempty"`
	// Command is the rejected command, so that a client can show it again
	// with its annotations.
	Command *plait.Command `json:"command,omitempty"`

	// retryAfter, when positive, is sent as the Retry-After header, in
	// seconds.
	retryAfter int64
}

// The problem slugs, after ProblemBase.
const (
	slugInvalidCommand       = "invalid-command"
	slugInvalidRequest       = "invalid-request"
	slugTooLarge             = "payload-too-large"
	slugTooManyRequests      = "too-many-requests"
	slugUnsupportedMediaType = "unsupported-media-type"
	slugUnauthorized         = "unauthorized"
	slugForbidden            = "forbidden"
	slugNotFound             = "not-found"
	slugMethodNotAllowed     = "method-not-allowed"
	slugRejected             = "rejected"
	slugConflict             = "conflict"
	slugRebuilding           = "rebuilding"
	slugUnavailable          = "unavailable"
	slugInternal             = "internal"
)

// retryAfterUnavailable is the Retry-After, in seconds, of a 503 that sets
// none of its own: soon enough for a blip to pass unnoticed, late enough
// that clients do not pile onto an outage.
const retryAfterUnavailable = 3

// The details of failures on the server's side, in the client's terms. The
// errors behind them, which may name hosts, databases, brokers and topics,
// go to the server's log only.
const (
	detailStoreDown = "the store cannot be reached; try again"
	detailNotReady  = "a service the server depends on does not answer"
	// detailKeySetDown answers a token that names a key the server does
	// not hold while it cannot fetch the key set to look for it.
	detailKeySetDown = "the token cannot be verified now: the keys that sign tokens cannot be fetched; try again"
)

// failure is the answer to a request that failed on the server's side, not
// through anything the client sent: it logs err at ERROR, with what was
// being done, the request's route and attrs (the command's id, ...), and
// returns a problem of status whose detail is detail, a plain sentence in
// the client's terms, never err.
//
// The lines are paced (outage.Pace): during an outage every request fails
// alike, and a line each would flood the log, and the disk it may be
// filling.
func (s *Server) failure(r *http.Request, status int, detail, doing string, err error, attrs ...any) *Problem {
	return s.failureOn(&s.failures, r, status, detail, doing, err, attrs...)
}

// failureOn is failure, its lines paced by pace: failures of one kind that
// clients can cause at will, such as tokens naming keys the server does not
// hold, are paced apart, so that they do not crowd out the others.
func (s *Server) failureOn(pace *outage.Pace, r *http.Request, status int, detail, doing string, err error, attrs ...any) *Problem {
	pace.Do(func(notLogged int64) {
		attrs = append(attrs, "route", r.Pattern, "error", err)
		if notLogged > 0 {
			attrs = append(attrs, "failures_not_logged", notLogged)
		}
		s.log.ErrorContext(r.Context(), doing, attrs...)
	})
	slug := slugUnavailable
	if status != http.StatusServiceUnavailable {
		slug = slugInternal
	}
	return newProblem(status, slug, detail)
}

func newProblem(status int, slug, detail string, errs ...plait.FieldError) *Problem {
	return &Problem{Type: ProblemBase + slug, Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs}
}

// writeProblem answers with the problem. A 503 carries Retry-After, of
// retryAfterUnavailable seconds unless the problem sets its own.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="plait"`)
	}
	switch {
	case p.retryAfter > 0:
		h.Set("Retry-After", strconv.FormatInt(p.retryAfter, 10))
	case p.Status == http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterUnavailable))
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// query parses the request's query strictly: a malformed escape or a
// semicolon is an error, not a parameter silently dropped.
func query(r *http.Request) (url.Values, *Problem) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, slugInvalidRequest, "the query string does not parse: "+err.Error(),
			plait.FieldError{Path: "", Code: CodeInvalidParam, Message: err.Error()})
	}
	return q, nil
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, newProblem(http.StatusInternalServerError, slugInternal, "encode the answer: "+err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
