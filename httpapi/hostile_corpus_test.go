package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// hostileCorpus is the corpus of malformed and malicious requests (see
// hostile_test.go). Tokens are made afresh, so that "expired" and "not yet
// valid" mean what they say whenever the test runs.
func hostileCorpus(t *testing.T, h *hostileServer) []hostile {
	now := time.Now()
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	exp := now.Add(time.Hour).Unix()
	ann, bob := token(t, "ann"), token(t, "bob")
	bobArchivist := token(t, "bob", "archivist")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	var c []hostile
	add := func(cs ...hostile) { c = append(c, cs...) }
	bearer := func(tok string) string { return "Authorization: Bearer " + tok }
	asAnn := []string{bearer(ann), "Content-Type: application/json"}

	// --- Broken, odd or oversized command envelopes, from a valid user.
	post := func(name, body string, status int) {
		add(hostile{name: "envelope/" + name, method: "POST", target: "/commands", headers: asAnn, body: body, status: status})
	}
	valid := func(data string) string {
		return `{"type":"counter","aggregateId":"c-new","name":"label","data":` + data + `}`
	}
	for i, body := range []string{
		``, ` `, `{`, `}`, `[`, `]`, `{"type":`, `{"type":"counter"`, `{"type":"counter",}`, `{,}`,
		`{"type" "counter"}`, `{type:"counter"}`, `{'type':'counter'}`, `{"type":'counter'}`,
		`{"type":"counter"}}`, `{"type":"counter"}{}`, `{"type":"counter"} x`, `{"type":"counter"}//`,
		`/* c */{"type":"counter"}`, `{"type":"counter" /* c */}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":-Infinity}`,
		`{"a":0x10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e}`, `{"a":--1}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":undefined}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\uZZZZ"}`,
		"{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":\"\x01\"}", "{\"type\":\"counter\"\x00}",
		"\xef\xbb\xbf{\"type\":\"counter\"}", "\xff\xfe{\x00\"\x00", `"just a string"`, `42`, `true`, `null`, `[]`,
		`[{"type":"counter"}]`, `{"a":[1,2,]}`, `{"a":[,1]}`, `{"a":{"b":1,}}`, `{"a" : }`, `{:1}`,
	} {
		post(fmt.Sprintf("broken-json-%02d", i), body, 400)
	}
	for name, body := range map[string]string{
		"empty-object":              `{}`,
		"unknown-field":             `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"user":"admin"}`,
		"set-correlation":           `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"correlationId":"x"}`,
		"set-at":                    `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"at":"2000-01-01T00:00:00Z"}`,
		"case-variant-field":        `{"Type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"duplicate-type":            `{"type":"counter","type":"note","aggregateId":"a","name":"add","data":{"by":1}}`,
		"duplicate-id":              `{"id":"x1","id":"x2","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"type-number":               `{"type":1,"aggregateId":"a","name":"add","data":{"by":1}}`,
		"type-null":                 `{"type":null,"aggregateId":"a","name":"add","data":{"by":1}}`,
		"type-array":                `{"type":["counter"],"aggregateId":"a","name":"add","data":{"by":1}}`,
		"type-object":               `{"type":{"$ne":""},"aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-number":                 `{"id":7,"type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"aggregate-id-missing":      `{"type":"counter","name":"add","data":{"by":1}}`,
		"aggregate-id-number":       `{"type":"counter","aggregateId":5,"name":"add","data":{"by":1}}`,
		"name-missing":              `{"type":"counter","aggregateId":"a","data":{"by":1}}`,
		"name-bool":                 `{"type":"counter","aggregateId":"a","name":true,"data":{"by":1}}`,
		"unknown-type":              `{"type":"nope","aggregateId":"a","name":"add","data":{"by":1}}`,
		"unknown-name":              `{"type":"counter","aggregateId":"a","name":"drop","data":{}}`,
		"name-of-other-type":        `{"type":"counter","aggregateId":"a","name":"write","data":{"title":"x"}}`,
		"type-traversal":            `{"type":"../note","aggregateId":"a","name":"write","data":{"title":"x"}}`,
		"type-sql":                  `{"type":"counter' OR '1'='1","aggregateId":"a","name":"add","data":{"by":1}}`,
		"data-unknown-field":        `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1,"admin":true}}`,
		"data-wrong-type":           `{"type":"counter","aggregateId":"a","name":"add","data":{"by":"1"}}`,
		"data-fraction":             `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1.5}}`,
		"data-int-overflow":         `{"type":"counter","aggregateId":"a","name":"add","data":{"by":99999999999999999999}}`,
		"data-array":                `{"type":"counter","aggregateId":"a","name":"add","data":[1]}`,
		"data-string":               `{"type":"counter","aggregateId":"a","name":"add","data":"by=1"}`,
		"data-nul-escape":           valid(`{"label":"a\u0000b"}`),
		"data-lone-high-surrogate":  valid(`{"label":"\ud800"}`),
		"data-lone-low-surrogate":   valid(`{"label":"\udfff"}`),
		"data-reversed-surrogates":  valid(`{"label":"\udc00\ud800"}`),
		"expected-seq-negative":     `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":-1}`,
		"expected-seq-fraction":     `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":1.5}`,
		"expected-seq-string":       `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":"1"}`,
		"expected-seq-huge":         `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":99999999999999999999}`,
		"expected-seq-exponent":     `{"type":"counter","aggregateId":"a","name":"add","data":{"by":1},"expectedSeq":1e3}`,
		"view-type":                 `{"type":"tally","aggregateId":"c-ann","name":"note","data":{"from":{"type":"counter","aggregateId":"c-ann","seq":1}}}`,
		"archive-without-role":      `{"type":"note","aggregateId":"n-new","name":"archive","data":{}}`,
		"id-too-long":               `{"id":"` + strings.Repeat("i", 129) + `","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"aggregate-id-too-long":     `{"type":"counter","aggregateId":"` + strings.Repeat("a", 129) + `","name":"add","data":{"by":1}}`,
		"envelope-string-huge":      `{"type":"` + strings.Repeat("t", 5000) + `","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-only-spaces":            `{"id":"   ","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-empty-aggregate":        `{"type":"counter","aggregateId":"","name":"add","data":{"by":1}}`,
		"id-leading-dot":            `{"id":".hidden","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-unicode":                `{"id":"ïd","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-rtl-override":           `{"id":"a\u202eb","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-newline":                `{"id":"a\nSet-Cookie: x=1","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-crlf-location":          `{"id":"a\r\nX-Injected: 1","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"id-nul":                    `{"id":"a\u0000b","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
		"aggregate-id-traversal":    `{"type":"counter","aggregateId":"../../etc/passwd","name":"add","data":{"by":1}}`,
		"aggregate-id-slash":        `{"type":"counter","aggregateId":"a/b","name":"add","data":{"by":1}}`,
		"aggregate-id-encoded-dots": `{"type":"counter","aggregateId":"%2e%2e%2f","name":"add","data":{"by":1}}`,
		"aggregate-id-backslash":    `{"type":"counter","aggregateId":"..\\..\\x","name":"add","data":{"by":1}}`,
		"aggregate-id-sql":          `{"type":"counter","aggregateId":"a'; DROP TABLE events;--","name":"add","data":{"by":1}}`,
		"id-traversal":              `{"id":"../../commands/ann-note-1","type":"counter","aggregateId":"a","name":"add","data":{"by":1}}`,
	} {
		status := 400
		switch name {
		case "view-type", "archive-without-role":
			status = 403
		}
		post(name, body, status)
	}
	// Sizes and shapes over the data limits.
	post("huge-number-exponent", valid(`{"label":"x","n":1e400}`), 400)
	post("huge-number-negative-exponent-digits", valid(`{"n":-`+strings.Repeat("9", 400)+`}`), 413)
	post("number-many-digits", valid(`{"n":0.`+strings.Repeat("1", 100)+`}`), 413)
	post("giant-string", valid(`{"label":"`+strings.Repeat("x", 70_000)+`"}`), 413)
	post("giant-escaped-string", valid(`{"label":"`+strings.Repeat(`\u00e9`, 33_000)+`"}`), 413)
	post("giant-key", valid(`{"`+strings.Repeat("k", 70_000)+`":1}`), 413)
	post("deep-array-33", valid(strings.Repeat("[", 33)+strings.Repeat("]", 33)), 413)
	post("deep-object-40", valid(strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)), 413)
	post("deep-10001", valid(strings.Repeat("[", 10_001)+strings.Repeat("]", 10_001)), 400) // past encoding/json's own bound
	post("deep-100000-unbalanced", valid(strings.Repeat("[", 100_000)), 400)
	post("long-array", valid(`[`+strings.TrimSuffix(strings.Repeat("0,", 10_001), ",")+`]`), 413)
	post("wide-object", valid(wideObject(1001)), 413)
	add(hostile{name: "envelope/body-over-1MiB", method: "POST", target: "/commands", headers: asAnn,
		body: valid(`{"label":"` + strings.Repeat("x", 1<<20) + `"}`), status: 413})
	// Bad UTF-8, raw in the body.
	for name, bad := range map[string]string{
		"invalid-byte": "\xff", "overlong-slash": "\xc0\xaf", "utf8-surrogate": "\xed\xa0\x80",
		"truncated-2": "\xc3", "truncated-3": "\xe2\x82", "truncated-4": "\xf0\x9f\x98", "beyond-unicode": "\xf4\x90\x80\x80",
		"continuation-only": "\x80\x80", "latin1-e-acute": "caf\xe9",
	} {
		post("bad-utf8-"+name, valid(`{"label":"`+bad+`"}`), 400)
		post("bad-utf8-key-"+name, valid(`{"`+bad+`":"x"}`), 400)
	}
	post("bad-utf8-in-type", "{\"type\":\"count\xffer\",\"aggregateId\":\"a\",\"name\":\"add\",\"data\":{\"by\":1}}", 400)

	// --- Query parameters of POST /commands.
	cmdBody := `{"type":"counter","aggregateId":"c-ann","name":"add","data":{"by":1}}`
	for name, target := range map[string]string{
		"wait-unknown":        "/commands?wait=forever",
		"wait-empty-twice":    "/commands?wait=outcome&wait=",
		"timeout-garbage":     "/commands?wait=outcome&timeout=soon",
		"timeout-negative":    "/commands?wait=outcome&timeout=-5s",
		"timeout-overflow":    "/commands?wait=outcome&timeout=99999999999h",
		"timeout-number-word": "/commands?wait=outcome&timeout=5x",
		"timeout-infinite":    "/commands?wait=outcome&timeout=inf",
		"unknown-param":       "/commands?dryRun=true",
		"semicolon":           "/commands?wait=outcome;timeout=1s",
		"bad-escape":          "/commands?wait=%zz",
		"crlf-in-param":       "/commands?wait=%0d%0aSet-Cookie:%20x=1",
		"param-name-crlf":     "/commands?%0d%0aX-Injected:%201=1",
		"access-token-query":  "/commands?access_token=" + ann,
		"param-very-long":     "/commands?" + strings.Repeat("p", 8000) + "=1",
		"many-unknown-params": "/commands?" + strings.TrimSuffix(strings.Repeat("x=1&", 500), "&"),
	} {
		status := 400
		hdrs := asAnn
		if name == "access-token-query" {
			hdrs = []string{"Content-Type: application/json"}
			status = 401
		}
		add(hostile{name: "post-query/" + name, method: "POST", target: target, headers: hdrs, body: cmdBody, status: status})
	}
	// Content types that are not JSON.
	for i, ct := range []string{"text/html", "application/xml", "multipart/form-data; boundary=x",
		"application/javascript", "image/png", "text/csv; charset=utf-8", "application/jsonx", "application/json-patch", "x;;;"} {
		add(hostile{name: fmt.Sprintf("content-type/%02d-%s", i, strings.Fields(ct)[0]), method: "POST", target: "/commands",
			headers: []string{bearer(ann), "Content-Type: " + ct}, body: cmdBody, status: 415})
	}
	add(hostile{name: "content-type/first-of-two", method: "POST", target: "/commands",
		headers: []string{bearer(ann), "Content-Type: text/html", "Content-Type: application/json"}, body: cmdBody, status: 415})

	// --- Tokens: missing, forged, expired, alg none, key confusion.
	badTokens := map[string]string{
		"forged-secret":      sign(jwt.SigningMethodHS256, []byte("guessed secret, long enough....."), jwt.MapClaims{"sub": "ann", "exp": exp}),
		"forged-admin-role":  sign(jwt.SigningMethodHS256, []byte("guessed secret, long enough....."), jwt.MapClaims{"sub": "ann", "exp": exp, "roles": []string{"admin"}}),
		"alg-none":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "ann", "exp": exp}),
		"alg-none-upper":     b64(`{"alg":"NONE","typ":"JWT"}`) + "." + b64(fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)) + ".",
		"alg-none-sig-kept":  b64(`{"alg":"none"}`) + "." + b64(fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)) + "." + strings.Split(ann, ".")[2],
		"alg-missing":        b64(`{"typ":"JWT"}`) + "." + b64(fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)) + "." + strings.Split(ann, ".")[2],
		"expired":            sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(-time.Hour).Unix()}),
		"expired-in-leeway+": sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": now.Add(-2 * time.Minute).Unix()}),
		"not-yet-valid":      sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": exp, "nbf": now.Add(30 * time.Minute).Unix()}),
		"exp-string":         sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": "tomorrow"}),
		"no-sub":             sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}),
		"empty-sub":          sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "", "exp": exp}),
		"sub-number":         sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": 7, "exp": exp}),
		"roles-string":       sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "ann", "exp": exp, "roles": "admin"}),
		"hs384":              sign(jwt.SigningMethodHS384, secret, jwt.MapClaims{"sub": "ann", "exp": exp}),
		"hs512":              sign(jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "ann", "exp": exp}),
		"rs256":              sign(jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "ann", "exp": exp}),
		"rs256-header-hmac":  hmacWithHeader(t, `{"alg":"RS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)),
		"tampered-sub":       swapClaims(ann, fmt.Sprintf(`{"sub":"bob","exp":%d}`, exp)),
		"tampered-roles":     swapClaims(bob, fmt.Sprintf(`{"sub":"bob","exp":%d,"roles":["admin"]}`, exp)),
		"truncated-sig":      ann[:len(ann)-4],
		"sig-stripped":       ann[:strings.LastIndex(ann, ".")+1],
		"two-parts":          ann[:strings.LastIndex(ann, ".")],
		"four-parts":         ann + ".extra",
		"garbage":            "not-a-token",
		"dots":               "...",
		"bad-base64":         "e30.e30.!!!",
		"header-not-json":    b64("not json") + "." + b64(`{"sub":"ann"}`) + ".sig",
		// Signed with another key, naming where to find it: kid and jku
		// are not followed.
		"kid-injection": hmacWithKey(t, []byte(""), `{"alg":"HS256","kid":"../../../../dev/null"}`, fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)),
		"jku-elsewhere": hmacWithKey(t, []byte("attacker key, long enough......."), `{"alg":"HS256","jku":"http://127.0.0.1:1/keys"}`, fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)),
		"jwk-embedded":  hmacWithKey(t, []byte("attacker key, long enough......."), `{"alg":"HS256","jwk":{"kty":"oct","k":"YXR0YWNrZXIga2V5LCBsb25nIGVub3VnaC4uLi4uLi4"}}`, fmt.Sprintf(`{"sub":"ann","exp":%d}`, exp)),
		// Rightly signed, but with a claim name in another case, which
		// encoding/json alone would take for sub (and the last one wins).
		"case-variant-sub":   hmacWithHeader(t, `{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"bob","Sub":"ann","exp":%d}`, exp)),
		"case-variant-roles": hmacWithHeader(t, `{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"bob","ROLES":["admin"],"exp":%d}`, exp)),
		"huge-token":         "a." + strings.Repeat("b", 100_000) + ".c",
	}
	for name, tok := range badTokens {
		add(hostile{name: "token/post-" + name, method: "POST", target: "/commands",
			headers: []string{bearer(tok), "Content-Type: application/json"}, body: cmdBody, status: 401})
	}
	for _, name := range []string{"forged-secret", "alg-none", "expired", "rs256-header-hmac", "tampered-sub"} {
		add(hostile{name: "token/get-" + name, method: "GET", target: "/aggregates/note/n-ann", headers: []string{bearer(badTokens[name])}, status: 401})
		add(hostile{name: "token/stream-query-" + name, method: "GET", target: "/stream?access_token=" + url.QueryEscape(badTokens[name]), status: 401})
		add(hostile{name: "token/cookie-" + name, method: "GET", target: "/lists/note", headers: []string{"Cookie: plait_token=" + badTokens[name]}, status: 401})
	}
	for name, auth := range map[string]string{
		"none":                "",
		"empty-bearer":        "Authorization: Bearer ",
		"bearer-only":         "Authorization: Bearer",
		"basic":               "Authorization: Basic YW5uOmFubg==",
		"digest":              `Authorization: Digest username="ann"`,
		"token-without-words": "Authorization: " + ann,
		"bad-then-good":       "Authorization: Bearer bad\r\nAuthorization: Bearer " + ann,
		"cookie-on-post":      "Cookie: plait_token=" + ann,
		"query-and-cookie":    "Cookie: plait_token=",
	} {
		hdrs := []string{"Content-Type: application/json"}
		if auth != "" {
			hdrs = append(hdrs, auth)
		}
		add(hostile{name: "auth/post-" + name, method: "POST", target: "/commands", headers: hdrs, body: cmdBody, status: 401})
	}
	for _, target := range []string{"/commands/ann-note-1", "/aggregates/note/n-ann", "/aggregates/note/n-ann/events", "/lists/note", "/stream", "/views/orderList/rebuild", "/subjects/ann/forget"} {
		method := "GET"
		if strings.HasPrefix(target, "/views") || strings.HasPrefix(target, "/subjects") {
			method = "POST"
		}
		add(hostile{name: "auth/anonymous-" + strings.ReplaceAll(strings.Trim(target, "/"), "/", "-"), method: method, target: target, status: 401})
	}

	// --- Another user's data: bob at ann's owner-only note.
	asBob := []string{bearer(bob), "Content-Type: application/json"}
	for name, c := range map[string]hostile{
		"read-note":              {method: "GET", target: "/aggregates/note/n-ann", status: 404},
		"read-note-head":         {method: "HEAD", target: "/aggregates/note/n-ann", status: 404},
		"read-note-etag":         {method: "GET", target: "/aggregates/note/n-ann", headers: []string{`If-None-Match: "1"`}, status: 404},
		"read-note-events":       {method: "GET", target: "/aggregates/note/n-ann/events", status: 404},
		"read-note-events-after": {method: "GET", target: "/aggregates/note/n-ann/events?after=0&limit=1", status: 404},
		"read-command":           {method: "GET", target: "/commands/ann-note-1", status: 404},
		"read-rejected-command":  {method: "GET", target: "/commands/ann-note-rejected", status: 404},
		"write-note":             {method: "POST", target: "/commands", body: `{"type":"note","aggregateId":"n-ann","name":"write","data":{"title":"mine now"}}`, status: 403},
		"write-note-wait":        {method: "POST", target: "/commands?wait=outcome", body: `{"type":"note","aggregateId":"n-ann","name":"write","data":{"title":"mine now"}}`, status: 403},
		"write-note-expected":    {method: "POST", target: "/commands", body: `{"type":"note","aggregateId":"n-ann","name":"write","data":{"title":"x"},"expectedSeq":1}`, status: 403},
		"archive-note":           {method: "POST", target: "/commands", body: `{"type":"note","aggregateId":"n-ann","name":"archive","data":{}}`, status: 403},
		"reuse-command-id":       {method: "POST", target: "/commands", body: `{"id":"ann-note-1","type":"note","aggregateId":"n-bob","name":"write","data":{"title":"x"}}`, status: 403},
		"reuse-command-id-wait":  {method: "POST", target: "/commands?wait=outcome", body: `{"id":"ann-note-1","type":"note","aggregateId":"n-ann","name":"write","data":{"title":"ann's secret"}}`, status: 403},
		"reuse-rejected-id":      {method: "POST", target: "/commands?wait=outcome", body: `{"id":"ann-note-rejected","type":"note","aggregateId":"n-ann-2","name":"write","data":{"title":""}}`, status: 403},
		"rebuild-view":           {method: "POST", target: "/views/tally/rebuild", status: 403},
		"forget-subject":         {method: "POST", target: "/subjects/ann/forget", status: 403},
	} {
		c.name = "tenant/bob-" + name
		c.headers = append(append([]string{}, asBob...), c.headers...)
		add(c)
	}
	add(hostile{name: "tenant/bob-archivist-archives-ann-note", method: "POST", target: "/commands",
		headers: []string{bearer(bobArchivist), "Content-Type: application/json"},
		body:    `{"type":"note","aggregateId":"n-ann","name":"archive","data":{}}`, status: 403})

	// --- GET /commands/{id}, /aggregates/{type}/{id}[/events]: odd ids.
	for i, id := range []string{
		"..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "a%00b", "%00", "a%20b", "a%0d%0aX-Injected:%201",
		"%252e%252e", "..%5c..%5cwindows", strings.Repeat("x", 129), strings.Repeat("y", 10_000), "%C0%AE%C0%AE", "%ff", "'%20OR%201=1",
		"nope", "%E2%80%AE", "ann-note-1%00", "-leading-dash",
	} {
		add(hostile{name: fmt.Sprintf("ids/command-%02d", i), method: "GET", target: "/commands/" + id, headers: asAnn, status: 404})
		add(hostile{name: fmt.Sprintf("ids/aggregate-%02d", i), method: "GET", target: "/aggregates/note/" + id, headers: asAnn, status: 404})
	}
	for i, typ := range []string{"nope", "..%2Fnote", "%2e%2e", "note%00", "NOTE", "tally%27--"} {
		add(hostile{name: fmt.Sprintf("ids/type-%02d", i), method: "GET", target: "/aggregates/" + typ + "/n-ann", headers: asAnn, status: 404})
		add(hostile{name: fmt.Sprintf("ids/list-type-%02d", i), method: "GET", target: "/lists/" + typ, headers: asAnn, status: 404})
	}

	// --- Events and list queries.
	for i, q := range []string{"after=-1", "after=abc", "after=1.5", "after=+7", "limit=0",
		"limit=-5", "limit=abc", "limit=1e3", "after=%zz", "before=3", "after=1;limit=2", "offset=10"} {
		add(hostile{name: fmt.Sprintf("events/%02d", i), method: "GET", target: "/aggregates/counter/c-ann/events?" + q, headers: asAnn, status: 400})
	}
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for i, q := range []string{
		"nope=1", "gt.count=1", "eq.nope=1", "eq.=1", "eq.count.x=1", "eq.state=1", "prefix.nope=a",
		"eq.title%27%20OR%201=1--=x", "sort=nope", "sort=-nope", "sort=count;DROP", "sort=title&sort=-title",
		"fields=nope", "fields=title,,", "fields=title,owner", "limit=0", "limit=-1", "limit=x", "limit=1&limit=2",
		"after=!!!", "after=" + cursor(`{"v":{"$gt":1},"i":"x"}`), "after=" + cursor(`{"v":1}`), "after=" + cursor(`[]`),
		"after=" + cursor(`{"v":[1],"i":"x"}`), "after=" + cursor("not json"), "after=" + strings.Repeat("A", 5000),
		"eq.title=a&%zz", "eq.title=a;b=c", "lastEventId=3", "access_token=x&eq.title=a&bogus=1",
	} {
		add(hostile{name: fmt.Sprintf("lists/%02d", i), method: "GET", target: "/lists/note?" + q, headers: asAnn, status: 400})
	}

	// --- The relay: resume tokens from the future and other bad ones.
	head := h.head
	for name, c := range map[string]hostile{
		"resume-future":           {headers: []string{"Last-Event-ID: " + strconv.FormatInt(head+1, 10)}},
		"resume-far-future":       {headers: []string{"Last-Event-ID: 999999999999"}},
		"resume-overflow":         {headers: []string{"Last-Event-ID: 99999999999999999999"}},
		"resume-negative":         {headers: []string{"Last-Event-ID: -1"}},
		"resume-text":             {headers: []string{"Last-Event-ID: abc"}},
		"resume-hex":              {headers: []string{"Last-Event-ID: 0x10"}},
		"resume-two":              {headers: []string{"Last-Event-ID: 1 2"}},
		"resume-plus":             {headers: []string{"Last-Event-ID: +1"}},
		"resume-exponent":         {headers: []string{"Last-Event-ID: 1e3"}},
		"resume-query-future":     {target: "/stream?lastEventId=" + strconv.FormatInt(head+100, 10)},
		"resume-query-space":      {target: "/stream?lastEventId=%20"},
		"resume-query-fraction":   {target: "/stream?lastEventId=1.0"},
		"types-unknown":           {target: "/stream?types=nope"},
		"types-one-unknown":       {target: "/stream?types=counter,nope"},
		"types-empty-item":        {target: "/stream?types=counter,"},
		"types-traversal":         {target: "/stream?types=..%2Fnote"},
		"unknown-param":           {target: "/stream?since=0"},
		"bad-escape":              {target: "/stream?types=%zz"},
		"token-query-bad":         {target: "/stream?access_token=abc", headers: []string{"Authorization:"}},
		"post":                    {method: "POST", target: "/stream"},
		"resume-header-and-query": {target: "/stream?lastEventId=abc", headers: []string{"Last-Event-ID: 1"}},
	} {
		c.name = "stream/" + name
		if c.method == "" {
			c.method = "GET"
		}
		if c.target == "" {
			c.target = "/stream"
		}
		status := 400
		switch name {
		case "token-query-bad":
			c.headers = nil
			status = 401
		case "post":
			status = 405
		case "resume-header-and-query":
			// The header wins; 1 is a valid position, so make the
			// header the bad one instead.
			c.headers = []string{"Last-Event-ID: 1x"}
		}
		c.status = status
		if name != "token-query-bad" {
			c.headers = append([]string{bearer(ann)}, c.headers...)
		}
		add(c)
	}

	// --- Methods and paths.
	for i, m := range []struct{ method, target string }{
		{"PUT", "/commands"}, {"DELETE", "/commands/ann-note-1"}, {"PATCH", "/aggregates/note/n-ann"}, {"POST", "/aggregates/note/n-ann"},
		{"DELETE", "/aggregates/note/n-ann"}, {"POST", "/lists/note"}, {"PUT", "/lists/note"}, {"DELETE", "/stream"}, {"OPTIONS", "/commands"},
		{"TRACE", "/commands"}, {"GET", "/commands"}, {"PUT", "/healthz"}, {"POST", "/metrics"}, {"GET", "/views/tally/rebuild"},
		{"PROPFIND", "/commands"}, {"get", "/healthz"},
	} {
		add(hostile{name: fmt.Sprintf("method/%02d-%s-%s", i, m.method, strings.ReplaceAll(strings.Trim(m.target, "/"), "/", "-")),
			method: m.method, target: m.target, headers: asAnn, body: "", status: 405})
	}
	for i, p := range []string{
		"/nope", "/aggregates/note", "/aggregates/note/n-ann/events/extra", "/aggregates", "/lists", "/lists/note/extra",
		"/commands/", "/%2e%2e/%2e%2e/etc/passwd", "/..%2F..%2Fgo.mod", "/plait.js%00.html", "/index.html/..%2F..%2Fgo.mod",
		"/" + strings.Repeat("a/", 2000), "/%ff%fe", "/.git/config", "/.env", "/web/../../go.mod", "/static/%2e%2e/%2e%2e/go.mod",
		"/aggregates/note/n-ann/../../../etc/passwd", "/commands/%2e%2e", "/plait.js/", "/./plait.js", "//plait.js", "/index.html/.",
	} {
		add(hostile{name: fmt.Sprintf("path/%02d", i), method: "GET", target: p, headers: asAnn, status: 404})
	}

	// --- Requests only raw TCP can send: header tricks.
	okBody := `{"type":"counter","aggregateId":"c-ann","name":"add","data":{"by":1}}`
	rawPost := func(extra, body string) string {
		return "POST /commands HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" + bearer(ann) + "\r\nContent-Type: application/json\r\n" + extra + "\r\n" + body
	}
	cl := "Content-Length: " + strconv.Itoa(len(okBody)) + "\r\n"
	for name, c := range map[string]hostile{
		"duplicate-content-length": {raw: rawPost(cl+"Content-Length: 5\r\n", okBody), netHTTP: true, status: 400},
		"content-length-list":      {raw: rawPost("Content-Length: 5, 70\r\n", okBody), netHTTP: true, status: 400},
		"content-length-negative":  {raw: rawPost("Content-Length: -1\r\n", okBody), netHTTP: true, status: 400},
		"content-length-text":      {raw: rawPost("Content-Length: abc\r\n", okBody), netHTTP: true, status: 400},
		// Chunked wins over Content-Length (RFC 9112 6.3), so the body is
		// read as chunks, and is not.
		"content-length-and-chunked": {raw: rawPost(cl+"Transfer-Encoding: chunked\r\n", okBody), status: 400, halfClose: true},
		"transfer-encoding-identity": {raw: rawPost("Transfer-Encoding: identity\r\n", okBody), netHTTP: true, status: 501},
		"transfer-encoding-twice":    {raw: rawPost("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), netHTTP: true, status: 501},
		"cr-in-header-value":         {raw: rawPost(cl+"X-Note: a\rX-Injected: 1\r\n", okBody), netHTTP: true, status: 400},
		"nul-in-header-value":        {raw: rawPost(cl+"X-Note: a\x00b\r\n", okBody), netHTTP: true, status: 400},
		"space-before-colon":         {raw: rawPost(cl+"X-Note : a\r\n", okBody), netHTTP: true, status: 400},
		"header-name-bad-char":       {raw: rawPost(cl+"X(Note): a\r\n", okBody), netHTTP: true, status: 400},
		// net/http unfolds obs-fold into a space (RFC 9112 5.2): the
		// folded line becomes part of the token, which then fails.
		"obsolete-line-folding":            {raw: "POST /commands HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n" + bearer(ann) + "\r\n X-Injected: 1\r\n" + cl + "\r\n" + okBody, status: 401},
		"no-host":                          {raw: "GET /commands/nope HTTP/1.1\r\nConnection: close\r\n\r\n", netHTTP: true, status: 400},
		"two-hosts":                        {raw: "GET /commands/nope HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", netHTTP: true, status: 400},
		"host-with-crlf-escape":            {raw: "GET /commands/nope HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", netHTTP: true, status: 400},
		"garbage-request-line":             {raw: "GARBAGE\r\n\r\n", netHTTP: true, status: 400},
		"http-version-2-cleartext":         {raw: "GET /healthz HTTP/2.0\r\nHost: {host}\r\n\r\n", netHTTP: true, status: 505},
		"http-version-garbage":             {raw: "GET /healthz HTTP/9.x\r\nHost: {host}\r\n\r\n", netHTTP: true, status: 400},
		"header-too-large":                 {raw: "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: " + strings.Repeat("b", 1<<20+4096) + "\r\n\r\n", netHTTP: true, status: 431},
		"cookie-header-smuggling":          {raw: "GET /commands/nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" + bearer(ann) + "\r\nCookie: a=1\r\nSet-Cookie: x=1\r\n\r\n", status: 404},
		"bare-lf-line-endings":             {raw: "GET /commands/nope HTTP/1.1\nHost: {host}\nConnection: close\n" + bearer(ann) + "\n\n", status: 404},
		"absolute-form-target":             {raw: "GET http://evil.invalid/commands/nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" + bearer(ann) + "\r\n\r\n", status: 404},
		"http-1.0-no-host":                 {raw: "GET /commands/nope HTTP/1.0\r\n" + bearer(ann) + "\r\n\r\n", status: 404},
		"body-shorter-than-content-length": {raw: rawPost("Content-Length: 500\r\n", okBody), status: 400, halfClose: true},
		"chunked-bad-size":                 {raw: rawPost("Transfer-Encoding: chunked\r\n", "zz\r\n"+okBody+"\r\n0\r\n\r\n"), status: 400},
		"chunked-over-max-body":            {raw: rawPost("Transfer-Encoding: chunked\r\n", chunked(valid(`{"label":"`+strings.Repeat("x", 1<<20)+`"}`))), status: 413},
		"chunked-truncated":                {raw: rawPost("Transfer-Encoding: chunked\r\n", "10\r\n{\"type\":\"counter"), status: 400, halfClose: true},
		"expect-continue-huge":             {raw: rawPost("Content-Length: 10000000\r\nExpect: 100-continue\r\n", ""), status: 413},
		"content-length-over-max":          {raw: rawPost("Content-Length: 1048577\r\n", okBody), status: 413},
		"authorization-non-ascii":          {raw: "GET /commands/nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n", status: 401},
		"last-event-id-cr":                 {raw: "GET /stream HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" + bearer(ann) + "\r\nLast-Event-ID: 1\rX-Injected: 1\r\n\r\n", netHTTP: true, status: 400},
		"request-target-asterisk":          {raw: "GET * HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", status: 404},
		"connect-method":                   {raw: "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n" + bearer(ann) + "\r\n\r\n", status: 404},
	} {
		c.name = "raw/" + name
		add(c)
	}
	return c
}

// wideObject is an object of n members.
func wideObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

// chunked encodes body in chunks of 64 KiB.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// hmacWithHeader signs claims with the test secret under an arbitrary
// header: a token whose signature is right but whose header lies.
func hmacWithHeader(t *testing.T, header, claims string) string {
	return hmacWithKey(t, secret, header, claims)
}

// hmacWithKey is hmacWithHeader with another key.
func hmacWithKey(t *testing.T, key []byte, header, claims string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(header)) + "." + b64([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, key)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// swapClaims keeps a token's header and signature and replaces its claims.
func swapClaims(tok, claims string) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + parts[2]
}
