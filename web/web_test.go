package web_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/plaithq/plait/web"
)

func TestTheFilesAreAtTheRoot(t *testing.T) {
	for _, name := range []string{"index.html", "plait.js", "app.js", "style.css", "favicon.svg"} {
		b, err := fs.ReadFile(web.Files, name)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

// Everything the page loads is embedded: no CDN, no file missing.
func TestThePageLoadsOnlyEmbeddedFiles(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"#]+)"|from '([^']+)'|import\('([^']+)'\)`)
	for _, name := range []string{"index.html", "app.js"} {
		b, err := fs.ReadFile(web.Files, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			target := m[1] + m[2] + m[3]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "//") {
				t.Errorf("%s loads %s from elsewhere", name, target)
				continue
			}
			target = strings.TrimPrefix(strings.TrimPrefix(target, "./"), "/")
			if _, err := fs.Stat(web.Files, target); err != nil {
				t.Errorf("%s loads %s, which is not embedded", name, target)
			}
		}
	}
}

// The page holds no inline code, which the server's Content-Security-Policy
// (default-src 'self') refuses: no <script> without src, no <style>, no
// style= or on…= attribute; nor do the scripts set a style attribute,
// write HTML as text or eval a string.
func TestNoInlineCodeForThePolicyToRefuse(t *testing.T) {
	checks := map[string][]*regexp.Regexp{
		"index.html": {
			regexp.MustCompile(`(?i)<script\b(?:[^>s]|s[^r>]|sr[^c>])*>`),
			regexp.MustCompile(`(?i)<style\b`),
			regexp.MustCompile(`(?i)\sstyle\s*=`),
			regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
			regexp.MustCompile(`(?i)javascript:`),
		},
	}
	for _, name := range []string{"app.js", "plait.js"} {
		checks[name] = []*regexp.Regexp{
			regexp.MustCompile(`setAttribute\(\s*['"]style`),
			regexp.MustCompile(`[{,]\s*['"]?style['"]?\s*:`),
			regexp.MustCompile(`\b(?:innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b`),
			regexp.MustCompile(`\beval\(|new Function\(|set(?:Timeout|Interval)\(\s*['"\x60]`),
		}
	}
	for name, res := range checks {
		b, err := fs.ReadFile(web.Files, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range res {
			if m := re.Find(b); m != nil {
				t.Errorf("%s has %q, which the Content-Security-Policy refuses", name, m)
			}
		}
	}
}

func TestServedWithTheRightTypes(t *testing.T) {
	srv := httptest.NewServer(http.FileServerFS(web.Files))
	defer srv.Close()
	for path, want := range map[string]string{
		"/":          "text/html",
		"/plait.js":  "javascript",
		"/app.js":    "javascript",
		"/style.css": "text/css",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want 200 and a type with %q", path, res.StatusCode, res.Header.Get("Content-Type"), want)
		}
	}
}
