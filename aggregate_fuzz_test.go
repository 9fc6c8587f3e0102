package plait

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type fuzzState struct {
	N int `json:"n"`
}

type fuzzData struct {
	Title string   `json:"title"`
	Qty   int      `json:"qty"`
	Tags  []string `json:"tags,omitempty"`
	Sub   *struct {
		X float64 `json:"x"`
	} `json:"sub,omitempty"`
}

var fuzzType = NewAggregate[fuzzState]("fz",
	Handle("do", func(s fuzzState, c Cmd[fuzzData]) ([]Change, error) {
		return []Change{Emit("done", c.Data)}, nil
	}),
	Apply("done", func(s fuzzState, e fuzzData) fuzzState { s.N++; return s }),
)

// FuzzCheckCommand feeds arbitrary bytes as a command's data: CheckCommand
// accepts exactly what is one JSON value (or nothing) that decodes into the
// payload with no unknown field, and Decide agrees with it.
func FuzzCheckCommand(f *testing.F) {
	for _, s := range []string{
		`{"title":"a","qty":2}`, `{"title":"a","qty":2,"extra":1}`, `{"qty":"2"}`, `{"qty":1.5}`, `{} {}`, `{}]`, `{}}`,
		`{} x`, ``, ` `, `null`, `[]`, `"s"`, `{"sub":{"x":1e400}}`, `{"tags":["a",1]}`, `{"Title":"case"}`, `{"title":"\ud800"}`,
		`{"qty":2.0}`, `{"qty":20e-1,"sub":{"x":2.0}}`, `{"qty":1e30}`, `{"tags":[1.0],"qty":2.0}`,
	} {
		f.Add([]byte(s), "do")
	}
	f.Add([]byte(`{}`), "nope")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		err := fuzzType.CheckCommand(name, data)
		var env *EnvelopeError
		if name != "do" {
			if !errors.As(err, &env) || env.Field != "name" || !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("command %q: %v", name, err)
			}
			return
		}
		_, decideErr := fuzzType.Decide(Current{}, Command{Name: name, Data: data})
		if err != nil {
			if !errors.As(err, &env) || env.Field != "data" || !errors.Is(err, ErrBadPayload) || env.Detail == "" {
				t.Fatalf("data %q: %v", data, err)
			}
			if decideErr == nil {
				t.Fatalf("data %q refused by CheckCommand, taken by Decide", data)
			}
			return
		}
		if decideErr != nil {
			t.Fatalf("data %q taken by CheckCommand, refused by Decide: %v", data, decideErr)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("data %q is not JSON, yet taken", data)
		}
		// encoding/json matches field names without case.
		var v map[string]json.RawMessage
		if json.Unmarshal(data, &v) == nil {
			for k := range v {
				if k = strings.ToLower(k); k != "title" && k != "qty" && k != "tags" && k != "sub" {
					t.Fatalf("data %q has the unknown field %q, yet taken", data, k)
				}
			}
		}
	})
}
