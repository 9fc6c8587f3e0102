package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/plaithq/plait"
)

// The JSON Schemas of the commands, so that clients can validate a
// command's data before they submit it (see plait.Schema):
//
//	GET /schemas/{type}         {type, commands: {name: schema, …}}, the commands that declare one
//	GET /schemas/{type}/{name}  the schema itself, as application/schema+json
//
// Data that violates its schema is refused by POST /commands with a 400
// problem carrying one annotation per violation, such as
// {path: "lines[0].qty", code: "schema:minimum", message: "…"}.

// registerSchemas adds the schema routes to the server's mux.
func (s *Server) registerSchemas() {
	s.mux.HandleFunc("GET /schemas/{type}", s.getSchemas)
	s.mux.HandleFunc("GET /schemas/{type}/{name}", s.getSchema)
}

// schemasView is the answer of GET /schemas/{type}.
type schemasView struct {
	Type     string                     `json:"type"`
	Commands map[string]json.RawMessage `json:"commands"`
}

func (s *Server) getSchemas(w http.ResponseWriter, r *http.Request) {
	if _, p := s.user(r, headerOnly); p != nil {
		writeProblem(w, p)
		return
	}
	typ := r.PathValue("type")
	def, ok := s.defs[typ]
	if !ok {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, "no aggregate type "+quote(typ)))
		return
	}
	v := schemasView{Type: typ, Commands: map[string]json.RawMessage{}}
	if cs, ok := def.(plait.CommandSchemas); ok {
		for _, name := range def.Commands() {
			if schema, ok := cs.CommandSchema(name); ok {
				v.Commands[name] = schema
			}
		}
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request) {
	if _, p := s.user(r, headerOnly); p != nil {
		writeProblem(w, p)
		return
	}
	typ, name := r.PathValue("type"), r.PathValue("name")
	def, ok := s.defs[typ]
	if !ok {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, "no aggregate type "+quote(typ)))
		return
	}
	if !s.commands[typ][name] {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, typ+" has no command "+quote(name)))
		return
	}
	var schema json.RawMessage
	if cs, ok := def.(plait.CommandSchemas); ok {
		schema, _ = cs.CommandSchema(name)
	}
	if schema == nil {
		writeProblem(w, newProblem(http.StatusNotFound, slugNotFound, typ+"."+name+" declares no schema"))
		return
	}
	w.Header().Set("Content-Type", "application/schema+json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(append(schema, '\n'))
}

// schemaProblem is the answer to command data that violates its schema: a
// 400, since such data is not a command of the application and nothing was
// stored, with one annotation per violation. Their paths are within the
// data ("lines[0].qty"), as in the annotations of a rejection, so a client
// shows both on the same fields. It returns nil for any other error.
func schemaProblem(err error) *Problem {
	var se *plait.SchemaError
	if !errors.As(err, &se) {
		return nil
	}
	return newProblem(http.StatusBadRequest, slugInvalidCommand, "data: "+se.Detail(), se.Errors...)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
