package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestHandlerServesTheShellOnEveryPageRoute(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/jobs", "/jobs/0b7f6c1e-1111-4222-8333-444455556666", "/channels", "/schedules", "/plugins"} {
		res := get(t, h, http.MethodGet, p)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: content type %q", p, ct)
		}
		if !strings.Contains(string(body), `src="/assets/app.js"`) {
			t.Errorf("GET %s: not the UI shell", p)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no Content-Security-Policy", p)
		}
	}
}

func TestHandlerServesEveryModuleTheShellImports(t *testing.T) {
	h := Handler()
	want := map[string]string{
		"/assets/app.js": "javascript", "/assets/api.js": "javascript", "/assets/jobs.js": "javascript",
		"/assets/job.js": "javascript", "/assets/graph.js": "javascript", "/assets/channels.js": "javascript",
		"/assets/related.js": "javascript", "/assets/schedules.js": "javascript", "/assets/util.js": "javascript", "/assets/app.css": "text/css",
		"/favicon.svg": "image/svg+xml",
	}
	for p, ct := range want {
		res := get(t, h, http.MethodGet, p)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); !strings.Contains(got, ct) {
			t.Errorf("GET %s: content type %q, want %s", p, got, ct)
		}
	}
}

func TestHandlerRefusesUnknownPathsAndWrites(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/nope", "/assets/missing.js", "/jobsx", "/index.html.bak"} {
		if res := get(t, h, http.MethodGet, p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
	}
	if res := get(t, h, http.MethodPost, "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
}

// The UI must work with no network: nothing may be loaded from elsewhere.
func TestAssetsReferenceNoExternalHost(t *testing.T) {
	entries, err := static.ReadDir("static/assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := static.ReadFile("static/assets/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"cdn.", "googleapis", "unpkg", "jsdelivr", "@import url(http"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s references %q", e.Name(), bad)
			}
		}
	}
}
