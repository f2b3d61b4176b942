package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stint-dev/stint/ui"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestContentTypes(t *testing.T) {
	h := ui.Handler()
	for path, want := range map[string]string{
		"/ui/":            "text/html; charset=utf-8",
		"/ui/index.html":  "text/html; charset=utf-8",
		"/ui/app.css":     "text/css; charset=utf-8",
		"/ui/js/app.js":   "text/javascript; charset=utf-8",
		"/ui/js/api.js":   "text/javascript; charset=utf-8",
		"/ui/favicon.svg": "image/svg+xml",
	} {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		if body(t, res) == "" {
			t.Errorf("GET %s: empty body", path)
		}
	}
}

func TestFallbackToIndex(t *testing.T) {
	h := ui.Handler()
	index := body(t, get(t, h, "GET", "/ui/", nil))
	if !strings.Contains(index, `<script type="module" src="/ui/js/app.js">`) {
		t.Fatalf("/ui/ is not index.html:\n%s", index)
	}
	// Client-side routes, directories and a stripped prefix all get the page.
	for _, path := range []string{"/ui", "/ui/tasks", "/ui/tasks/019ab5e4-7c3a-7d51-9a3e-3f1f2b0c6d10", "/ui/js", "/ui/groups/x/y", "/", "/tasks"} {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusOK || body(t, res) != index {
			t.Errorf("GET %s: %d, want 200 and index.html", path, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
}

func TestMissingAssets(t *testing.T) {
	h := ui.Handler()
	for _, path := range []string{"/ui/app.jss", "/ui/js/nope.js", "/ui/favicon.ico", "/ui/static/index.html", "/ui/../handler.go", "/ui/js/app.js.map"} {
		res := get(t, h, "GET", path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
		if b := body(t, res); strings.Contains(b, "<html") {
			t.Errorf("GET %s: served HTML for a missing file", path)
		}
		if ct := res.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := ui.Handler()
	for _, path := range []string{"/ui/", "/ui/js/app.js", "/ui/app.css", "/ui/tasks", "/ui/app.jss"} {
		res := get(t, h, "GET", path, nil)
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q lacks default-src 'self'", path, csp)
		}
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "data:"} {
			if strings.Contains(csp, bad) {
				t.Errorf("GET %s: Content-Security-Policy %q allows %s", path, csp, bad)
			}
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
		if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q", path, got)
		}
	}
}

func TestMethodsAndCaching(t *testing.T) {
	h := ui.Handler()
	res := get(t, h, "POST", "/ui/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, "HEAD", "/ui/app.css", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD /ui/app.css: %d", res.StatusCode)
	}
	res = get(t, h, "GET", "/ui/js/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /ui/js/app.js: ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	res = get(t, h, "GET", "/ui/js/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("GET /ui/js/app.js with its ETag: %d, want 304", res.StatusCode)
	}
	if other := get(t, h, "GET", "/ui/app.css", nil).Header.Get("ETag"); other == etag {
		t.Errorf("app.css and app.js share the ETag %s", etag)
	}
}

// staticFiles returns the UI's files from the source tree, by their path
// under static/.
func staticFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("static", path)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNothingInline keeps the promise the CSP enforces: no inline script,
// no inline style, no event handler attributes, and no HTML parsing in the
// scripts (Trusted Types would refuse it).
func TestNothingInline(t *testing.T) {
	files := staticFiles(t)
	scriptTag := regexp.MustCompile(`(?i)<script\b([^>]*)>`)
	for name, text := range files {
		switch filepath.Ext(name) {
		case ".html":
			for _, m := range scriptTag.FindAllStringSubmatch(text, -1) {
				if !strings.Contains(m[1], `src="`) {
					t.Errorf("%s: inline script %s", name, m[0])
				}
			}
			for _, re := range []string{`(?i)<style\b`, `(?i)\sstyle\s*=`, `(?i)\son[a-z]+\s*=`, `(?i)javascript:`} {
				if loc := regexp.MustCompile(re).FindStringIndex(text); loc != nil {
					t.Errorf("%s: %q is not allowed by the CSP", name, text[loc[0]:loc[1]])
				}
			}
		case ".js":
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", "localStorage."} {
				if strings.Contains(text, bad) {
					t.Errorf("%s: uses %s", name, bad)
				}
			}
		}
	}
}

// TestReferencesResolve checks that what index.html loads and what the
// modules import is served.
func TestReferencesResolve(t *testing.T) {
	h := ui.Handler()
	files := staticFiles(t)
	refs := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(files["index.html"], -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d files", len(refs))
	}
	for _, m := range refs {
		if res := get(t, h, "GET", m[1], nil); res.StatusCode != http.StatusOK {
			t.Errorf("index.html loads %s: %d", m[1], res.StatusCode)
		}
	}
	imports := regexp.MustCompile(`(?m)^import .* from '(\./[^']+)';$`)
	for name, text := range files {
		if filepath.Ext(name) != ".js" {
			continue
		}
		for _, m := range imports.FindAllStringSubmatch(text, -1) {
			target := "/ui/" + filepath.ToSlash(filepath.Join(filepath.Dir(name), m[1]))
			if res := get(t, h, "GET", target, nil); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("%s imports %s: %d %s", name, target, res.StatusCode, res.Header.Get("Content-Type"))
			}
		}
	}
}
