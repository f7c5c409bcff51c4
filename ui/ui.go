// Package ui serves the wasmq web UI: static HTML, CSS and JavaScript
// modules embedded in the binary, with no build step and no network
// dependency. The pages talk to the HTTP API under /v1 with the bearer
// token the operator typed in (kept in the browser's localStorage).
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// files is the static tree rooted at its top, so "/assets/app.js" maps to
// static/assets/app.js.
var files = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}()

// pages are the client-side routes that deep links and browser reloads
// land on; each answers with index.html and the script renders the view.
var pages = []string{"/jobs", "/channels", "/schedules", "/plugins"}

// Handler serves the UI. Mount it at "/" next to the API: the API's more
// specific "/v1/" patterns take precedence in a ServeMux.
func Handler() http.Handler {
	assets := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		// The UI only ever fetches same-origin resources; say so, so an
		// injected string in job data cannot load anything from elsewhere.
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		switch {
		case strings.HasPrefix(p, "/assets/") || p == "/favicon.svg":
			// Assets change only with the binary; a short cache keeps
			// reloads cheap without serving stale code after an upgrade.
			w.Header().Set("Cache-Control", "public, max-age=300")
			assets.ServeHTTP(w, r)
		case p == "/" || isPage(p):
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, files, "index.html")
		default:
			http.NotFound(w, r)
		}
	})
}

func isPage(p string) bool {
	for _, pg := range pages {
		if p == pg || strings.HasPrefix(p, pg+"/") {
			return true
		}
	}
	return false
}
