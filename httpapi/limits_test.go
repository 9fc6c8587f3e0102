package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheckDataNamesTheValueOverTheLimit(t *testing.T) {
	lim := DataLimits{MaxString: 8, MaxArray: 3, MaxFields: 3, MaxDepth: 3, MaxNumber: 6}
	lim.defaults()
	for _, c := range []struct {
		data, path, code string
		status           int
	}{
		{`{"a":"12345678"}`, "", "", 0},
		{`{"a":"123456789"}`, "a", CodeTooLarge, 413},
		{`{"a":"\u00e9\u00e9\u00e9\u00e9\u00e9"}`, "a", CodeTooLarge, 413}, // 10 bytes unescaped
		{`{"a":"\u00e9\u00e9\u00e9\u00e9"}`, "", "", 0},                    // 8 bytes
		{`{"a":"\ud83d\ude00\ud83d\ude00"}`, "", "", 0},                    // two emoji, 8 bytes
		{`{"a":"\ud83d\ude00\ud83d\ude00x"}`, "a", CodeTooLarge, 413},
		{`{"123456789":1}`, "123456789", CodeTooLarge, 413},
		{`{"` + strings.Repeat("k", 100) + `":1}`, strings.Repeat("k", 63) + "…", CodeTooLarge, 413},
		{`{"lines":[{"sku":"ok"},{"sku":"much too long"}]}`, "lines[1].sku", CodeTooLarge, 413},
		{`[1,2,3]`, "", "", 0},
		{`[1,2,3,4]`, "", CodeTooLarge, 413},
		{`{"x":[[1,2,3,4]]}`, "x[0]", CodeTooLarge, 413},
		{`{"":[1,2,3,4]}`, `[""]`, CodeTooLarge, 413},
		{`{"a":{"":[1,2,3,4]}}`, `a[""]`, CodeTooLarge, 413},
		{`{"a":1,"b":2,"c":3}`, "", "", 0},
		{`{"a":1,"b":2,"c":3,"d":4}`, "", CodeTooLarge, 413},
		{`{"o":{"a":1,"b":2,"c":3,"d":4}}`, "o", CodeTooLarge, 413},
		{`[[[1]]]`, "", "", 0},
		{`[[[[1]]]]`, "[0][0][0]", CodeTooDeep, 413},
		{`{"a":{"b":{"c":{}}}}`, "a.b.c", CodeTooDeep, 413},
		{`{"n":123456}`, "", "", 0},
		{`{"n":1234567}`, "n", CodeTooLarge, 413},
		{`{"n":-1e308}`, "", "", 0},
		{`{"n":1e309}`, "n", CodeInvalidData, 400}, // a value out of range, not a size
		{`{"n":[1,2e999]}`, "n[1]", CodeInvalidData, 400},
		{`{"s":"\ud800"}`, "s", CodeInvalidData, 400},
		{`{"s":"\udc00\ud800"}`, "s", CodeInvalidData, 400},
		{`{"s":"\ud800x"}`, "s", CodeInvalidData, 400},
		{`{"s":"\\ud800"}`, "", "", 0}, // an escaped backslash, then text
		{`"\ud83d"`, "", CodeInvalidData, 400},
		{`  true `, "", "", 0},
		{`null`, "", "", 0},
		{`{"a":1,"a":2}`, "a", CodeDuplicateField, 400},
		{`{"a":1,"\u0061":2}`, "a", CodeDuplicateField, 400}, // the same key, escaped
		{`{"o":{"a":1,"b":{"a":1},"a":3}}`, "o.a", CodeDuplicateField, 400},
		{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, "", "", 0}, // the same key in other objects
		{`{"a":1,"A":2,"a ":3}`, "", "", 0},
	} {
		p := checkData([]byte(c.data), lim)
		switch {
		case c.code == "" && p != nil:
			t.Errorf("%s: %+v, want nil", c.data, p)
		case c.code != "" && p == nil:
			t.Errorf("%s: nil, want %s at %s", c.data, c.code, c.path)
		case p != nil && (p.Status != c.status || len(p.Errors) != 1 || p.Errors[0].Path != c.path || p.Errors[0].Code != c.code || p.Errors[0].Message == ""):
			t.Errorf("%s: %+v, want %d %s at %s", c.data, p, c.status, c.code, c.path)
		}
	}
}

// TestCheckDataFindsAKeyGivenTwiceInABigObject: past a few keys an object's
// keys are kept in a set; a key given twice is still found.
func TestCheckDataFindsAKeyGivenTwiceInABigObject(t *testing.T) {
	var lim DataLimits
	lim.defaults()
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	ok := b.String() + `"last":0}`
	if p := checkData([]byte(ok), lim); p != nil {
		t.Fatalf("40 keys, none twice: %+v", p)
	}
	for _, dup := range []string{"k0", "k16", "k17", "k39"} {
		p := checkData([]byte(b.String()+`"`+dup+`":0}`), lim)
		if p == nil || p.Status != 400 || p.Errors[0].Code != CodeDuplicateField || p.Errors[0].Path != dup {
			t.Errorf("%s given twice among 41 keys: %+v", dup, p)
		}
	}
}

func TestDecodeEnvelopeRefusesBadUTF8AndLongEnvelopeStrings(t *testing.T) {
	_, p := decodeEnvelope([]byte("{\"type\":\"counter\",\"aggregateId\":\"a\",\"name\":\"add\",\"data\":{\"label\":\"\xff\"}}"), DataLimits{})
	if p == nil || p.Status != 400 || p.Errors[0].Code != CodeMalformedJSON || !strings.Contains(p.Detail, "UTF-8") {
		t.Fatalf("bad UTF-8: %+v", p)
	}
	// Envelope strings longer than any valid one are 400s of their kind,
	// however long: the body is within its limit.
	for field, code := range map[string]string{"type": CodeUnknownType, "name": CodeUnknownCommand, "id": CodeInvalidID, "aggregateId": CodeInvalidID} {
		_, p = decodeEnvelope([]byte(`{"`+field+`":"`+strings.Repeat("t", 300)+`"}`), DataLimits{})
		if p == nil || p.Status != 400 || p.Errors[0].Path != field || p.Errors[0].Code != code {
			t.Fatalf("long %s: %+v", field, p)
		}
	}
	// The defaults apply to the zero value.
	big := `{"type":"counter","data":{"s":"` + strings.Repeat("x", DefaultMaxString+1) + `"}}`
	if _, p = decodeEnvelope([]byte(big), DataLimits{}); p == nil || p.Status != 413 || p.Errors[0].Path != "s" {
		t.Fatalf("default string limit: %+v", p)
	}
	deep := `{"type":"counter","data":` + strings.Repeat("[", DefaultMaxDepth+1) + strings.Repeat("]", DefaultMaxDepth+1) + `}`
	if _, p = decodeEnvelope([]byte(deep), DataLimits{}); p == nil || p.Errors[0].Code != CodeTooDeep {
		t.Fatalf("default depth limit: %+v", p)
	}
	// A negative limit lifts it.
	if _, p = decodeEnvelope([]byte(big), DataLimits{MaxString: -1}); p != nil {
		t.Fatalf("lifted string limit: %+v", p)
	}
}

// measure walks JSON with encoding/json, the reference for checkData: the
// largest string and key in bytes, array, object, depth and number.
type measured struct {
	str, arr, fields, depth, num int
	outOfRange, dupKey           bool
}

func measure(data []byte) (measured, error) {
	var m measured
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		array   bool
		n       int
		wantKey bool
		keys    map[string]bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return m, err
		}
		isKey := false
		if k := len(stack); k > 0 {
			f := &stack[k-1]
			switch {
			case tok == json.Delim('}') || tok == json.Delim(']'):
			case f.array:
				f.n++
				m.arr = max(m.arr, f.n)
			case f.wantKey:
				isKey, f.wantKey = true, false
				f.n++
				m.fields = max(m.fields, f.n)
			default:
				f.wantKey = true
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				stack = append(stack, frame{array: v == '[', wantKey: v == '{'})
				m.depth = max(m.depth, len(stack))
			} else {
				stack = stack[:len(stack)-1]
			}
		case string:
			m.str = max(m.str, len(v))
			if isKey {
				f := &stack[len(stack)-1]
				if f.keys == nil {
					f.keys = map[string]bool{}
				}
				m.dupKey = m.dupKey || f.keys[v]
				f.keys[v] = true
			}
		case json.Number:
			m.num = max(m.num, len(v))
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				m.outOfRange = true
			}
		}
	}
}

// loneSurrogate finds a \u escape of a surrogate: a coarse check that
// checkData's invalid_data is warranted.
var loneSurrogate = regexp.MustCompile(`(?i)\\ud[89a-f][0-9a-f]{2}`)

func FuzzCheckData(f *testing.F) {
	for _, s := range []string{
		`{"a":"12345678"}`, `{"lines":[{"sku":"ok"},{"sku":"much too long"}]}`, `[[[[1]]]]`,
		`{"n":1e309}`, `{"s":"\ud800"}`, `{"s":"\\ud800"}`, `"\ud83d\ude00"`, `[1,2,3,4,5]`,
		`{"a":1,"b":{"c":[true,false,null,-0.5e-3]}}`, `{"\u00e9\u00e9":"\t\n"}`,
	} {
		f.Add([]byte(s), uint8(8), uint8(3), uint8(3), uint8(3), uint8(6))
	}
	f.Fuzz(func(t *testing.T, data []byte, s, a, o, d, n uint8) {
		if !utf8.Valid(data) || !json.Valid(data) {
			return
		}
		lim := DataLimits{MaxString: int(s%32) + 1, MaxArray: int(a%8) + 1, MaxFields: int(o%8) + 1, MaxDepth: int(d%8) + 1, MaxNumber: int(n%16) + 1}
		m, err := measure(data)
		if err != nil {
			t.Fatalf("the reference failed on valid JSON %q: %v", data, err)
		}
		over := m.str > lim.MaxString || m.arr > lim.MaxArray || m.fields > lim.MaxFields ||
			m.depth > lim.MaxDepth || m.num > lim.MaxNumber
		p := checkData(data, lim)
		if p == nil {
			if m.dupKey {
				t.Fatalf("%q passed though an object has a key twice", data)
			}
			if over || m.outOfRange {
				t.Fatalf("%q passed limits %+v though it measures %+v", data, lim, m)
			}
			return
		}
		if len(p.Errors) != 1 || p.Errors[0].Message == "" || !strings.HasPrefix(p.Detail, "data: ") {
			t.Fatalf("%q: problem %+v", data, p)
		}
		switch p.Errors[0].Code {
		case CodeTooLarge, CodeTooDeep:
			if p.Status != 413 || !over {
				t.Fatalf("%q refused (%+v) though it measures %+v within %+v", data, p, m, lim)
			}
		case CodeInvalidData:
			if p.Status != 400 || !loneSurrogate.Match(data) && !m.outOfRange {
				t.Fatalf("%q refused as a lone surrogate or a number out of range: %+v", data, p)
			}
		case CodeDuplicateField:
			if p.Status != 400 || !m.dupKey {
				t.Fatalf("%q refused for a key given twice: %+v", data, p)
			}
		default:
			t.Fatalf("%q: code %q", data, p.Errors[0].Code)
		}
	})
}

func TestBucketsLimitAndForgetTheLeastRecent(t *testing.T) {
	b := newBuckets("address", 1, 2, 3)
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		if _, ok := b.take("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	wait, ok := b.take("a", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: ok %v, wait %v", ok, wait)
	}
	// A refused request took no token: one second later, one more passes.
	if _, ok := b.take("a", now.Add(time.Second)); !ok {
		t.Fatal("refilled token refused")
	}
	for _, k := range []string{"b", "c", "d", "e"} {
		b.take(k, now)
	}
	if n := b.lru.Len(); n != 3 {
		t.Fatalf("tracking %d keys, want at most 3", n)
	}
	// "a" was the least recently seen and was forgotten: it starts afresh.
	if _, ok := b.take("a", now.Add(time.Second)); !ok {
		t.Fatal("a forgotten key did not start with a full bucket")
	}
	if newBuckets("user", 0, 5, 5) != nil {
		t.Fatal("a zero rate made buckets")
	}
}

func TestClientAddr(t *testing.T) {
	req := func(remote string, xff ...string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		return r
	}
	for _, c := range []struct {
		r       *http.Request
		proxies int
		want    string
	}{
		{req("10.0.0.1:5000", "1.2.3.4"), 0, "10.0.0.1"}, // not trusted by default
		{req("10.0.0.1:5000", "1.2.3.4"), 1, "1.2.3.4"},
		{req("10.0.0.1:5000", "6.6.6.6, 1.2.3.4"), 1, "1.2.3.4"}, // the client's own claim is skipped
		{req("10.0.0.1:5000", "6.6.6.6", "1.2.3.4, 10.0.0.9"), 2, "1.2.3.4"},
		{req("10.0.0.1:5000", "1.2.3.4"), 2, "10.0.0.1"},   // fewer hops than proxies
		{req("10.0.0.1:5000", "not an ip"), 1, "10.0.0.1"}, // garbage
		{req("[2001:db8:1:2:3:4:5:6]:80"), 0, "2001:db8:1:2::/64"},
		{req("[::ffff:1.2.3.4]:80"), 0, "1.2.3.4"},
		{req("pipe"), 0, "pipe"},
	} {
		if got := clientAddr(c.r, c.proxies); got != c.want {
			t.Errorf("%s %v proxies %d: %q, want %q", c.r.RemoteAddr, c.r.Header.Values("X-Forwarded-For"), c.proxies, got, c.want)
		}
	}
}
