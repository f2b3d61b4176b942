package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// static holds the UI's files: index.html, app.css, favicon.svg and the
// ES modules under js/.
//
//go:embed static
var static embed.FS

// Prefix is the path the UI is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every answer of the handler. Every
// script and style is a file of this package, so nothing inline is
// allowed, and with Trusted Types no script may turn a string into HTML:
// the UI builds its DOM node by node.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'none'; object-src 'none'; " +
	"frame-ancestors 'none'; form-action 'self'; require-trusted-types-for 'script'"

// contentTypes are the types of the files the UI ships, set explicitly so
// that they do not depend on the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

// asset is one embedded file, read once.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads every embedded file, keyed by its path under static/.
var loadAssets = sync.OnceValue(func() map[string]*asset {
	assets := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		assets[strings.TrimPrefix(name, "static/")] = &asset{
			body:        body,
			contentType: ctype,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("ui: reading the embedded files: %v", err)) // a broken build
	}
	if assets["index.html"] == nil {
		panic("ui: index.html is not embedded")
	}
	return assets
})

// Handler returns the handler of the web UI. Mount it at Prefix ("/ui/");
// it also accepts paths with that prefix already stripped.
//
// It serves the embedded files with their content types, and index.html
// for /ui/ and for any other path under /ui/ whose last element has no
// extension (the UI routes by the URL's fragment, so such paths only come
// from hand-made links). A missing file, a path whose last element has an
// extension such as /ui/app.jss, is a 404. Every answer carries
// ContentSecurityPolicy, X-Content-Type-Options: nosniff and
// Referrer-Policy: no-referrer; files are revalidated by their ETag.
func Handler() http.Handler {
	assets := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := r.URL.Path
		if name == "/ui" || strings.HasPrefix(name, "/ui/") {
			name = name[len("/ui"):]
		}
		name = strings.TrimPrefix(name, "/")
		a := assets[name]
		if a == nil {
			if path.Ext(name) != "" {
				http.NotFound(w, r)
				return
			}
			a = assets["index.html"] // client-side routing
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
