package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/plaithq/plait"
)

// DataLimits bound the data of a command. They are checked when the
// envelope of POST /commands is decoded, before anything is stored; a
// command over one is answered 413 with a field error naming the value at
// fault (such as data.lines[3].sku) and the limit. A zero field takes its
// default; a negative one lifts the limit.
type DataLimits struct {
	// MaxString is the longest string, or object key, in bytes once
	// unescaped (default 1 MiB, the default body limit: a string alone
	// may take the whole body).
	MaxString int
	// MaxArray is the most elements of one array (default 10,000).
	MaxArray int
	// MaxFields is the most members of one object (default 1,000).
	MaxFields int
	// MaxDepth is the deepest nesting of arrays and objects; the data
	// itself, if an object or array, is at depth 1 (default 32).
	MaxDepth int
	// MaxNumber is the longest number, in characters as sent (default 40).
	// A number beyond the range of a 64-bit float is refused whatever its
	// length, as data that does not decode (400), not as a size (413).
	MaxNumber int
}

// The defaults of DataLimits.
const (
	DefaultMaxString = 1 << 20
	DefaultMaxArray  = 10_000
	DefaultMaxFields = 1_000
	DefaultMaxDepth  = 32
	DefaultMaxNumber = 40
)

// maxEnvelopeString bounds the envelope's own strings (id, type,
// aggregateId, name): an id has at most 128 characters and a name is one
// the application declared, so anything longer is refused before it is
// echoed back in a problem.
const maxEnvelopeString = 256

func (l *DataLimits) defaults() {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = int(^uint(0) >> 1)
		}
	}
	def(&l.MaxString, DefaultMaxString)
	def(&l.MaxArray, DefaultMaxArray)
	def(&l.MaxFields, DefaultMaxFields)
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxNumber, DefaultMaxNumber)
}

// The codes of the field errors of data limits, beside CodeTooLarge.
const (
	CodeTooDeep = "too_deep"
)

// dataFrame is one array or object being scanned.
type dataFrame struct {
	array   bool
	count   int    // elements or members so far
	key     []byte // object: the raw key of the current member, quotes included
	wantKey bool   // object: the next string is a key
	// names are the object's keys so far, unescaped, and named the same
	// once the object has more than a few: to find a key given twice.
	names [][]byte
	named map[string]bool
}

// seen reports whether the object already has the key raw (quotes
// included), and notes it.
func (f *dataFrame) seen(raw []byte) bool {
	name := raw[1 : len(raw)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var k string
		if json.Unmarshal(raw, &k) == nil {
			name = []byte(k)
		}
	}
	if f.named != nil {
		if f.named[string(name)] {
			return true
		}
		f.named[string(name)] = true
		return false
	}
	for _, n := range f.names {
		if bytes.Equal(n, name) {
			return true
		}
	}
	f.names = append(f.names, name)
	if len(f.names) > 16 {
		f.named = make(map[string]bool, 2*len(f.names))
		for _, n := range f.names {
			f.named[string(n)] = true
		}
		f.names = nil
	}
	return false
}

// checkData checks JSON data, already known to be valid JSON, against the
// limits, for escapes no store can hold (a lone UTF-16 surrogate) and for
// a key given twice in one object. It returns nil or the problem: 413 for
// a limit, 400 for the others (a number beyond a 64-bit float's range
// among them).
func checkData(data []byte, lim DataLimits) *Problem {
	var stack []dataFrame
	// element counts a value starting in the innermost container.
	element := func() *Problem {
		if len(stack) == 0 {
			return nil
		}
		f := &stack[len(stack)-1]
		if f.array {
			f.count++
			if f.count > lim.MaxArray {
				return limitProblem(dataPath(stack[:len(stack)-1]), CodeTooLarge,
					fmt.Sprintf("an array has more than %d elements", lim.MaxArray))
			}
		}
		return nil
	}
	for i := 0; i < len(data); {
		c := data[i]
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			if n := len(stack); n > 0 && !stack[n-1].array {
				stack[n-1].wantKey = true
			}
			i++
		case '{', '[':
			if p := element(); p != nil {
				return p
			}
			stack = append(stack, dataFrame{array: c == '[', wantKey: c == '{'})
			if len(stack) > lim.MaxDepth {
				return limitProblem(dataPath(stack[:len(stack)-1]), CodeTooDeep,
					fmt.Sprintf("arrays and objects are nested more than %d deep", lim.MaxDepth))
			}
			i++
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			i++
		case '"':
			end, n, bad := scanString(data, i)
			raw := data[i:end]
			isKey := false
			if k := len(stack); k > 0 && !stack[k-1].array && stack[k-1].wantKey {
				f := &stack[k-1]
				isKey, f.wantKey, f.key = true, false, raw
				f.count++
				if f.count > lim.MaxFields {
					return limitProblem(dataPath(stack[:k-1]), CodeTooLarge,
						fmt.Sprintf("an object has more than %d members", lim.MaxFields))
				}
				if !bad && f.seen(raw) {
					// Parsers differ on which of the two counts: refused,
					// the data means one thing everywhere.
					path := dataPath(stack)
					return newProblem(http.StatusBadRequest, slugInvalidCommand, dataDetail(path, "a key given twice"),
						plait.FieldError{Path: path, Code: CodeDuplicateField, Message: "this key is given twice in its object"})
				}
			} else if p := element(); p != nil {
				return p
			}
			if bad {
				return newProblem(http.StatusBadRequest, slugInvalidCommand, dataDetail(dataPath(stack), "a lone UTF-16 surrogate escape is not a character"),
					plait.FieldError{Path: dataPath(stack), Code: CodeInvalidData, Message: "a \\u escape of a lone UTF-16 surrogate is not a character; encode the text as UTF-8"})
			}
			if n > lim.MaxString {
				what := "a string"
				if isKey {
					what = "an object key"
				}
				return limitProblem(dataPath(stack), CodeTooLarge,
					fmt.Sprintf("%s is longer than %d bytes", what, lim.MaxString))
			}
			i = end
		default: // a number, true, false or null
			if p := element(); p != nil {
				return p
			}
			j := i
			for j < len(data) && !delimiter(data[j]) {
				j++
			}
			tok := data[i:j]
			if c == '-' || (c >= '0' && c <= '9') {
				if len(tok) > lim.MaxNumber {
					return limitProblem(dataPath(stack), CodeTooLarge,
						fmt.Sprintf("a number is longer than %d characters", lim.MaxNumber))
				}
				if _, err := strconv.ParseFloat(string(tok), 64); err != nil {
					// Not a size: a value no reader of the data can hold.
					path := dataPath(stack)
					return newProblem(http.StatusBadRequest, slugInvalidCommand, dataDetail(path, "a number beyond the range of a 64-bit float"),
						plait.FieldError{Path: path, Code: CodeInvalidData, Message: "a number beyond the range of a 64-bit float does not decode"})
				}
			}
			i = j
		}
	}
	return nil
}

// scanString scans the JSON string starting at data[i] (its opening quote)
// and returns the index after its closing quote, its length in bytes once
// unescaped, and whether it holds a \u escape of a lone surrogate.
func scanString(data []byte, i int) (end, n int, lone bool) {
	j := i + 1
	for j < len(data) {
		switch c := data[j]; c {
		case '"':
			return j + 1, n, lone
		case '\\':
			if j+1 < len(data) && data[j+1] == 'u' {
				r := hex4(data, j+2)
				switch {
				case utf16.IsSurrogate(r) && r < 0xDC00:
					// A high surrogate needs a low one right after.
					if j+11 < len(data) && data[j+6] == '\\' && data[j+7] == 'u' {
						if lo := hex4(data, j+8); lo >= 0xDC00 && lo <= 0xDFFF {
							n += 4
							j += 12
							continue
						}
					}
					lone = true
					n += 3
				case utf16.IsSurrogate(r):
					lone = true
					n += 3
				default:
					n += utf8.RuneLen(r)
				}
				j += 6
				continue
			}
			n++
			j += 2
		default:
			n++
			j++
		}
	}
	return j, n, lone
}

// delimiter reports whether c ends a number or literal.
func delimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ']', '}', ':':
		return true
	}
	return false
}

// hex4 reads four hex digits at data[i:], -1 if they are not.
func hex4(data []byte, i int) rune {
	if i+4 > len(data) {
		return -1
	}
	v, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(v)
}

// dataPath names the value being scanned within the data, as rejections
// and schema errors do: "" for the data itself, then key for an object
// member (.key below the top, [""] for the empty key) and [i] for an
// array element, keys cut short if long.
func dataPath(stack []dataFrame) string {
	path := ""
	for _, f := range stack {
		switch {
		case f.array:
			if f.count > 0 {
				path += "[" + strconv.Itoa(f.count-1) + "]"
			}
		case f.key != nil:
			path = plait.JoinPath(path, keyName(f.key))
		}
	}
	return path
}

// keyName is a raw JSON key's text, cut to 64 bytes ("…" ends a cut one,
// and stands for one that does not decode).
func keyName(raw []byte) string {
	const maxKey = 64
	if len(raw) > maxKey+2 {
		raw = append(append([]byte{}, raw[:maxKey]...), '"')
		var k string
		if json.Unmarshal(raw, &k) != nil {
			return "…"
		}
		return strings.ToValidUTF8(k, "") + "…"
	}
	var k string
	if json.Unmarshal(raw, &k) != nil {
		return "…"
	}
	return k
}

// limitProblem is a 413 problem for one value of the data, at path, over
// a limit.
func limitProblem(path, code, message string) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, slugTooLarge, dataDetail(path, message),
		plait.FieldError{Path: path, Code: code, Message: message})
}

// dataDetail is a problem's detail for a value of the data, at path, as
// schema errors word it.
func dataDetail(path, message string) string {
	if path == "" {
		path = "(the data)"
	}
	return "data: " + path + ": " + message
}

// routeParams are the query parameters each route takes; a request with
// another is answered 400 rather than have it silently ignored. The lists'
// parameters are checked by parseListQuery; nil takes any (the health and
// metrics probes), and routes not named are not checked (the UI's files).
var routeParams = map[string][]string{
	"POST /commands":                     {"wait", "timeout"},
	"GET /aggregates/{type}/{id}/events": {"after", "limit"},
	"GET /stream":                        {"types", "lastEventId", "Last-Event-ID", "access_token", "access_cookie"},
	"GET /lists/{type}":                  nil, // see parseListQuery
	"GET /healthz":                       nil,
	"GET /readyz":                        nil,
	"GET /metrics":                       nil,
	"GET /commands/{id}":                 {},
	"GET /aggregates/{type}/{id}":        {},
	"POST /views/{name}/rebuild":         {},
	"POST /subjects/{subject}/forget":    {},
	"GET /schemas/{type}":                {},
	"GET /schemas/{type}/{name}":         {},
}

// checkParams refuses a query parameter the route does not take, or one
// given twice. A query that does not parse is left to the handler, which
// says so.
func checkParams(r *http.Request, route string) *Problem {
	allowed, ok := routeParams[route]
	if !ok || allowed == nil || r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		// A token in the query is a credential, taken on GET /stream only;
		// elsewhere it is not taken, and the answer says 401 if it was
		// the only one.
		if len(q[k]) > 1 {
			return newProblem(http.StatusBadRequest, slugInvalidRequest, k+": give it once",
				plait.FieldError{Path: k, Code: CodeInvalidParam, Message: "give it once"})
		}
		if !slices.Contains(allowed, k) && k != "access_token" {
			msg := "not a parameter of " + route
			if len(allowed) > 0 {
				msg += " (" + strings.Join(allowed, ", ") + ")"
			}
			if len(k) > 64 {
				k = strings.ToValidUTF8(k[:64], "") + "…"
			}
			return newProblem(http.StatusBadRequest, slugInvalidRequest, k+": "+msg,
				plait.FieldError{Path: k, Code: CodeUnknownParameter, Message: msg})
		}
	}
	return nil
}

// jsonContentType reports whether a POST body of this Content-Type is taken
// as JSON: none, application/json, any +json type, and the two types that
// common clients send for a body given as a string: text/plain (fetch, and
// so most JavaScript clients) and application/x-www-form-urlencoded (curl
// -d, as the README shows). Either is still parsed as JSON, and a page of
// another site cannot use them to forge a command: checkOrigin refuses it.
func jsonContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "text/plain", "application/x-www-form-urlencoded":
		return true
	}
	return strings.HasSuffix(mt, "+json")
}

// unsupportedMediaType is the answer to a body that is declared not JSON.
func unsupportedMediaType(ct string) *Problem {
	if len(ct) > 64 {
		ct = strings.ToValidUTF8(ct[:64], "") + "…"
	}
	return newProblem(http.StatusUnsupportedMediaType, slugUnsupportedMediaType,
		fmt.Sprintf("the body must be JSON (Content-Type: application/json), not %q", ct),
		plait.FieldError{Path: "Content-Type", Code: CodeInvalidParam, Message: "want application/json"})
}
