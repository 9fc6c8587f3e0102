package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"go.opentelemetry.io/otel/trace"
)

// The codes of the field errors in problems: those of the command envelope
// of POST /commands, and CodeInvalidParam for a query parameter or header
// whose value is out of bounds.
const (
	CodeMalformedJSON  = "malformed_json"
	CodeUnknownField   = "unknown_field"
	CodeDuplicateField = "duplicate_field"
	CodeInvalidType    = "invalid_type"
	CodeUnknownType    = "unknown_type"
	CodeUnknownCommand = "unknown_command"
	CodeInvalidData    = "invalid_data"
	CodeInvalidID      = "invalid_id"
	CodeForbidden      = "forbidden"
	CodeTooLarge       = "too_large"
	CodeInvalidParam   = "invalid"
)

// The wait modes of POST /commands.
const (
	waitNone         = ""
	waitOutcome      = "outcome"
	waitMaterialized = "materialized"
	waitSettled      = "settled"
)

// pendingView is the answer about a command without its outcome yet: its
// id and status pending.
type pendingView struct {
	ID     string       `json:"id"`
	Status plait.Status `json:"status"`
}

type acceptedView struct {
	ID     string        `json:"id"`
	Status plait.Status  `json:"status"`
	Events []plait.Event `json:"events"`
}

type rejectedView struct {
	ID     string             `json:"id"`
	Status plait.Status       `json:"status"`
	Errors []plait.FieldError `json:"errors"`
}

func outcomeView(out *plait.Outcome) any {
	if out.Status == plait.StatusRejected {
		errs := out.Errors
		if errs == nil {
			errs = []plait.FieldError{}
		}
		return rejectedView{ID: out.Command.ID, Status: out.Status, Errors: errs}
	}
	evs := out.Events
	if evs == nil {
		evs = []plait.Event{}
	}
	return acceptedView{ID: out.Command.ID, Status: out.Status, Events: evs}
}

// postCommand is POST /commands: check the envelope, make the command
// durable, and answer 202 at once or, with ?wait=, once it got that far.
func (s *Server) postCommand(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, qp := query(r)
	wait := q.Get("wait")
	waitLabel := "invalid" // until wait is checked: labels take no input as is
	var cmd plait.Command
	status := "invalid"
	defer func() {
		s.metrics.commands.WithLabelValues(s.typeLabel(cmd.Type), s.nameLabel(cmd.Type, cmd.Name), status).Inc()
		s.metrics.commandDuration.WithLabelValues(s.typeLabel(cmd.Type), waitLabel).Observe(time.Since(start).Seconds())
		if s.tracer != nil {
			annotateCommand(trace.SpanFromContext(r.Context()), cmd, status)
		}
	}()
	user, p := s.user(r, headerOnly)
	if p != nil {
		status = "unauthorized"
		if p.Status == http.StatusTooManyRequests {
			status = "limited"
		}
		writeProblem(w, p)
		return
	}
	if qp != nil {
		writeProblem(w, qp)
		return
	}
	switch wait {
	case waitNone:
		waitLabel = "none"
	case waitOutcome, waitMaterialized, waitSettled:
		waitLabel = wait
	default:
		writeProblem(w, badParam("wait", "want outcome, materialized or settled"))
		return
	}
	timeout, p := parseTimeout(q)
	if p != nil {
		writeProblem(w, p)
		return
	}
	if ct := r.Header.Get("Content-Type"); !jsonContentType(ct) {
		writeProblem(w, unsupportedMediaType(ct))
		return
	}
	body, p := readBody(w, r, s.opts.MaxBody, s.opts.BodyTimeout)
	if p != nil {
		if p.Status == http.StatusRequestEntityTooLarge {
			answerTooLarge(w, r, p, s.opts.BodyTimeout)
			return
		}
		writeProblem(w, p)
		return
	}
	cmd, p = decodeEnvelope(body, s.opts.Data)
	if p != nil {
		writeProblem(w, p)
		return
	}

	rec, err := s.e.Submit(r.Context(), cmd, user)
	cmd = rec.Command
	if err != nil {
		p, status = s.submitProblem(r, err, cmd)
		writeProblem(w, p)
		return
	}
	log := s.log.With("command", cmd.ID, "correlation", cmd.CorrelationID)
	out := rec.Outcome
	if rec.Duplicate && out != nil && !s.maySeeOutcome(user, out) {
		// The id is another user's command: its outcome is not ours to see.
		status = "forbidden"
		writeProblem(w, idTaken())
		return
	}
	status = string(plait.StatusPending)
	if out != nil {
		status = string(out.Status)
	}
	log.LogAttrs(r.Context(), slog.LevelDebug, "command acknowledged",
		slog.String("type", cmd.Type), slog.String("name", cmd.Name), slog.String("status", status),
		slog.Bool("duplicate", rec.Duplicate), slog.String("wait", waitLabel))
	if wait == waitNone {
		s.writePending(w, cmd.ID)
		return
	}

	// The wait counts from the request's arrival: a command whose storing
	// took the whole timeout is answered pending, as is one whose outcome
	// comes too late, though in the embedded store its outcome is known
	// once it is stored.
	ctx, cancel := context.WithDeadline(r.Context(), start.Add(timeout))
	defer cancel()
	defer context.AfterFunc(s.waitsCut, cancel)() // a shutdown ends the wait as its timeout would
	if ctx.Err() != nil {
		s.writePending(w, cmd.ID)
		return
	}
	if out == nil {
		o, err := s.e.Await(ctx, cmd.ID)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("await outcome", "error", err)
			}
			s.writePending(w, cmd.ID)
			return
		}
		out = &o
		status = string(out.Status)
		if !s.maySeeOutcome(user, out) {
			// Scaled out, an id pending on another instance is known
			// only now, by its outcome: another user's is not ours.
			status = "forbidden"
			writeProblem(w, idTaken())
			return
		}
	}
	// wait=materialized is wait=outcome: in the embedded store a command's
	// events, the instance's new state and its outcome commit in one
	// transaction (engine.Log.Commit promises it of every store), and an
	// outcome is only known once committed, so by then GET /aggregates
	// shows the events.
	if out.Status == plait.StatusRejected {
		writeProblem(w, rejectionProblem(out))
		return
	}
	if wait == waitSettled {
		// Settled follows the correlation through every reactor that
		// consumes its events and every command they send, to its end. A
		// rejected command caused no event, so it is settled at once.
		if err := s.e.WaitSettled(ctx, out.Command.CorrelationID); err != nil {
			if ctx.Err() == nil {
				log.Error("await settlement", "error", err)
			}
			s.writePending(w, cmd.ID)
			return
		}
	}
	writeJSON(w, http.StatusOK, outcomeView(out))
}

// idTaken is the problem of a command sent under the id of another user's.
func idTaken() *Problem {
	return newProblem(http.StatusForbidden, slugForbidden, "the command id is in use by a command you may not see",
		plait.FieldError{Path: "id", Code: CodeForbidden, Message: "this id belongs to another user's command"})
}

func (s *Server) writePending(w http.ResponseWriter, id string) {
	w.Header().Set("Location", "/commands/"+url.PathEscape(id))
	writeJSON(w, http.StatusAccepted, pendingView{ID: id, Status: plait.StatusPending})
}

// parseTimeout reads timeout=, a Go duration such as 5s or 500ms, or a
// plain number of seconds, capped at MaxWait.
func parseTimeout(q url.Values) (time.Duration, *Problem) {
	v := q.Get("timeout")
	if v == "" {
		return DefaultWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// A plain number is seconds; ParseFloat's words (inf, nan) and
		// hexadecimal forms are not numbers anyone writes here.
		if secs, ferr := strconv.ParseFloat(v, 64); ferr == nil && numeric(v) {
			d, err = time.Duration(min(secs, MaxWait.Seconds())*float64(time.Second)), nil
		}
	}
	if err != nil {
		return 0, badParam("timeout", "want a duration such as 5s or 500ms, or a number of seconds")
	}
	if d < 0 {
		return 0, badParam("timeout", "want a duration from 0 (0: answer at once), not a negative one")
	}
	return min(d, MaxWait), nil
}

// numeric reports whether v is written with digits and at most one point.
func numeric(v string) bool {
	digits, points := 0, 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

func badParam(param, message string) *Problem {
	return newProblem(http.StatusBadRequest, slugInvalidRequest, param+": "+message,
		plait.FieldError{Path: param, Code: CodeInvalidParam, Message: message})
}

// readBody reads the request body, at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64, timeout time.Duration) ([]byte, *Problem) {
	tooLarge := newProblem(http.StatusRequestEntityTooLarge, slugTooLarge,
		fmt.Sprintf("the body is larger than %d bytes", max),
		plait.FieldError{Path: "", Code: CodeTooLarge, Message: fmt.Sprintf("at most %d bytes", max)})
	if r.ContentLength > max {
		return nil, tooLarge
	}
	// Bounded while the body is read, then lifted: a wait that follows
	// may hold the request far longer, and the server watches the idle
	// connection meanwhile to learn whether the client went away.
	rc := http.NewResponseController(w)
	bounded := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if bounded && err == nil {
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection closes after the answer: the rest of the
			// body is not waited for.
			w.Header().Set("Connection", "close")
			return nil, newProblem(http.StatusRequestTimeout, slugInvalidCommand, fmt.Sprintf("the body did not arrive within %s", timeout))
		}
		return nil, newProblem(http.StatusBadRequest, slugInvalidCommand, "read the body: "+err.Error())
	}
	return body, nil
}

// Of a body over the limit, what is read and thrown away after its 413:
// at most drainMax bytes, for as long as the rest keeps coming (no pause
// over drainIdle) within the body's timeout.
const (
	drainMax  = 64 << 20
	drainIdle = 2 * time.Second
)

// answerTooLarge answers a body over the limit with its 413 at once, then
// reads and discards the rest of the body before the connection closes.
// Most clients (Python's http.client and requests among them) write the
// whole body before they read the answer: were the connection closed with
// their body still arriving, the kernel would reset it, and they would see
// that reset, never the 413 (net/http itself discards only 256 KiB of a
// body its handler did not read). A body that says it is larger than
// drainMax, or waits for a 100 Continue (not sent, so not coming), is not
// waited for.
func answerTooLarge(w http.ResponseWriter, r *http.Request, p *Problem, timeout time.Duration) {
	if r.ProtoMajor != 1 {
		// HTTP/2 ends the stream alone (its client stops at once, no
		// reset of the connection); Connection: close there would send
		// the whole connection, with every other request of the page on
		// it, away.
		writeProblem(w, p)
		return
	}
	w.Header().Set("Connection", "close")
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // read the body after the answer is written
	writeProblem(w, p)
	rc.Flush()
	if r.ContentLength > drainMax || r.Header.Get("Expect") != "" {
		return
	}
	end := time.Now().Add(timeout)
	for drained := int64(0); drained < drainMax; {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(end) {
			deadline = end
		}
		if rc.SetReadDeadline(deadline) != nil {
			return
		}
		n, err := io.CopyN(io.Discard, r.Body, min(64<<10, drainMax-drained))
		drained += n
		if err != nil {
			return
		}
	}
}

// envelopeFields are the fields of a command envelope.
var envelopeFields = map[string]bool{"id": true, "type": true, "aggregateId": true, "name": true, "data": true, "expectedSeq": true}

// decodeEnvelope decodes the body of POST /commands strictly: one JSON
// object in UTF-8 with only the envelope's fields, each once and of its
// type, and nothing after it; the data within the limits (a limits value
// with zero fields takes the defaults). It checks no name against the
// application; the engine does.
func decodeEnvelope(body []byte, lim DataLimits) (plait.Command, *Problem) {
	lim.defaults()
	var cmd plait.Command
	malformed := func(msg string) *Problem {
		return newProblem(http.StatusBadRequest, slugInvalidCommand, "the body is not a command envelope: "+msg,
			plait.FieldError{Path: "", Code: CodeMalformedJSON, Message: msg})
	}
	fieldProblem := func(field, code, msg string) *Problem {
		return newProblem(http.StatusBadRequest, slugInvalidCommand, field+": "+msg,
			plait.FieldError{Path: field, Code: code, Message: msg})
	}
	if !utf8.Valid(body) {
		return cmd, malformed("the body is not valid UTF-8")
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return cmd, malformed(err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return cmd, malformed("want a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return cmd, malformed(err.Error())
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return cmd, malformed(err.Error())
		}
		if !envelopeFields[key] {
			return cmd, fieldProblem(key, CodeUnknownField, fmt.Sprintf("%q is not a field of a command envelope (id, type, aggregateId, name, data, expectedSeq)", key))
		}
		if seen[key] {
			return cmd, fieldProblem(key, CodeDuplicateField, "given twice")
		}
		seen[key] = true
		isNull := string(raw) == "null"
		switch key {
		case "id", "type", "aggregateId", "name":
			var v string
			if isNull && key == "id" {
				continue // an absent id is assigned
			}
			if isNull || json.Unmarshal(raw, &v) != nil {
				return cmd, fieldProblem(key, CodeInvalidType, "want a string")
			}
			if len(v) > maxEnvelopeString {
				// Longer than any valid one: a bad id, or a type or name
				// the application has not.
				code := map[string]string{"id": CodeInvalidID, "aggregateId": CodeInvalidID, "type": CodeUnknownType, "name": CodeUnknownCommand}[key]
				msg := fmt.Sprintf("longer than %d bytes", maxEnvelopeString)
				if code == CodeInvalidID {
					msg = plait.IDRule
				}
				return cmd, fieldProblem(key, code, msg)
			}
			switch key {
			case "id":
				cmd.ID = v
			case "type":
				cmd.Type = v
			case "aggregateId":
				cmd.AggregateID = v
			case "name":
				cmd.Name = v
			}
		case "data":
			if isNull {
				continue // as if absent: the handler gets the zero value, the schema {}
			}
			if p := checkData(raw, lim); p != nil {
				return cmd, p
			}
			cmd.Data = raw
		case "expectedSeq":
			if isNull {
				continue
			}
			var n int64
			if err := json.Unmarshal(raw, &n); err != nil {
				return cmd, fieldProblem(key, CodeInvalidType, "want a whole number")
			}
			cmd.ExpectedSeq = &n
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return cmd, malformed(err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return cmd, malformed("trailing data after the envelope")
	}
	return cmd, nil
}

// submitProblem maps an error of engine.Submit to a problem and the status
// the metrics count it under.
func (s *Server) submitProblem(r *http.Request, err error, cmd plait.Command) (*Problem, string) {
	if p := schemaProblem(err); p != nil {
		return p, "invalid"
	}
	var env *plait.EnvelopeError
	if errors.As(err, &env) {
		fe := plait.FieldError{Path: env.Field, Message: env.Detail}
		status, slug, outcome := http.StatusBadRequest, slugInvalidCommand, "invalid"
		switch {
		case errors.Is(err, plait.ErrForbidden):
			status, slug, outcome = http.StatusForbidden, slugForbidden, "forbidden"
			fe.Code = CodeForbidden
		case errors.Is(err, plait.ErrUnknownType):
			fe.Code = CodeUnknownType
		case errors.Is(err, plait.ErrUnknownCommand):
			fe.Code = CodeUnknownCommand
		case errors.Is(err, plait.ErrBadID):
			fe.Code = CodeInvalidID
		default:
			fe.Code = CodeInvalidData
		}
		return newProblem(status, slug, env.Field+": "+env.Detail, fe), outcome
	}
	var p *Problem
	switch {
	case (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && !errors.Is(err, engine.ErrUnconfirmed):
		// The client went away before the command was durable; it may be
		// still.
		p = newProblem(http.StatusServiceUnavailable, slugUnavailable,
			"the request ended before the command was durable; it may be yet: send it again with id "+cmd.ID+" for its one outcome")
	case errors.Is(err, plait.ErrStopped):
		// Refused before anything was stored.
		return newProblem(http.StatusServiceUnavailable, slugUnavailable, "the server is stopping: the command was not taken"), "unavailable"
	default:
		// A failed commit, sync or append: the command may have been
		// stored all the same (a sync that failed after the write, an
		// append whose answer was lost), so the client must resubmit under
		// the same id, never as a new command.
		p = s.failure(r, http.StatusServiceUnavailable,
			"the command is not acknowledged: it may be stored; send it again with the same id, "+cmd.ID+", for its one outcome",
			"submit command", err, "command", cmd.ID, "correlation", cmd.CorrelationID)
	}
	p.ID = cmd.ID
	return p, "unavailable"
}

// rejectionProblem is the answer to a rejected command: 409 for a conflict
// on expectedSeq, 403 for a sender the access rules refused when it was
// decided, 422 otherwise, carrying the command and its annotations.
func rejectionProblem(out *plait.Outcome) *Problem {
	status, slug, title := http.StatusUnprocessableEntity, slugRejected, "Command rejected"
	for _, e := range out.Errors {
		if e.Code == plait.CodeConflict {
			status, slug, title = http.StatusConflict, slugConflict, "Conflict"
			break
		}
		if e.Code == plait.CodeForbidden {
			// Scaled out, the access rules refused it when it was decided.
			status, slug, title = http.StatusForbidden, slugForbidden, http.StatusText(http.StatusForbidden)
			break
		}
	}
	p := newProblem(status, slug, rejectionDetail(out.Errors), out.Errors...)
	p.Title = title
	p.ID = out.Command.ID
	cmd := out.Command
	p.Command = &cmd
	return p
}

func rejectionDetail(errs []plait.FieldError) string {
	if len(errs) == 0 {
		return "the command was rejected"
	}
	d := ""
	for i, e := range errs {
		if i > 0 {
			d += "; "
		}
		if e.Path != "" {
			d += e.Path + ": "
		}
		d += e.Message
	}
	return d
}

// getCommand is GET /commands/{id}: the command's status, with its events
// or its annotations.
func (s *Server) getCommand(w http.ResponseWriter, r *http.Request) {
	user, p := s.user(r, headerOnly)
	if p != nil {
		writeProblem(w, p)
		return
	}
	id := r.PathValue("id")
	notFound := newProblem(http.StatusNotFound, slugNotFound, "no command "+strconv.Quote(id))
	if !plait.ValidID(id) {
		writeProblem(w, notFound)
		return
	}
	out, ok, err := s.e.Outcome(r.Context(), id)
	if err == nil && !ok {
		// Scaled out, it may have been sent to another instance and be
		// in the command log, not decided yet.
		var pending bool
		var cmd plait.Command
		if cmd, pending, err = s.e.PendingAnywhere(r.Context(), id); err == nil && pending {
			if !s.maySeePending(user, cmd) {
				writeProblem(w, notFound)
				return
			}
			s.writePendingStatus(w, id)
			return
		}
		if err == nil {
			// It may have been committed between the two looks.
			out, ok, err = s.e.Outcome(r.Context(), id)
		}
	}
	if err != nil {
		writeProblem(w, s.failure(r, http.StatusServiceUnavailable, detailStoreDown, "read outcome", err, "command", id))
		return
	}
	if !ok || !s.maySeeOutcome(user, &out) {
		writeProblem(w, notFound)
		return
	}
	writeJSON(w, http.StatusOK, outcomeView(&out))
}

func (s *Server) writePendingStatus(w http.ResponseWriter, id string) {
	writeJSON(w, http.StatusOK, pendingView{ID: id, Status: plait.StatusPending})
}

// maySeeOutcome applies the type's visibility to an outcome. An outcome on
// an instance that does not exist (a rejected creation) belongs to the user
// who sent the command, and its sender sees an outcome always: an
// instance whose owner is a field of its state (plait.Access.OwnerField)
// can be another's after the command, a case its sender assigned.
func (s *Server) maySeeOutcome(user plait.User, out *plait.Outcome) bool {
	def, ok := s.defs[out.Command.Type]
	if !ok {
		return false
	}
	if sentBy(out.Command, user) {
		return true
	}
	owner := out.Owner
	if owner == "" {
		owner = out.Command.User
	}
	return def.Settings().Access.MaySee(user, owner)
}

// sentBy reports whether the user sent cmd: a command of theirs, not a
// reactor's, which carries the user of the event it reacts to and may be
// on an instance they cannot see.
func sentBy(cmd plait.Command, user plait.User) bool {
	return cmd.User == user.ID && cmd.CausationID == ""
}

// maySeePending applies the type's visibility to a command without an
// outcome yet: it belongs to the user who sent it (the instance's owner
// is not known before the outcome, which carries it), as the outcome of a
// rejected creation does.
func (s *Server) maySeePending(user plait.User, cmd plait.Command) bool {
	def, ok := s.defs[cmd.Type]
	return ok && def.Settings().Access.MaySee(user, cmd.User)
}

// typeLabel and nameLabel keep metric labels to the application's names.
func (s *Server) typeLabel(typ string) string {
	if _, ok := s.commands[typ]; ok {
		return typ
	}
	return ""
}

func (s *Server) nameLabel(typ, name string) string {
	if s.commands[typ][name] {
		return name
	}
	return ""
}
