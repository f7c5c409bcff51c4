package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestScreenshots regenerates docs/screenshots/{jobs,job,channels,plugins,schedules}.png at
// 1366×768 from realistic seeded jobs:
//
//	WASMQ_SCREENSHOTS=1 go test ./e2e/ -run TestScreenshots -count=1
//
// WASMQ_SCREENSHOTS_DARK=1 renders the dark theme; WASMQ_SCREENSHOTS_DIR
// writes elsewhere (to compare without touching the docs).
func TestScreenshots(t *testing.T) {
	if os.Getenv("WASMQ_SCREENSHOTS") == "" {
		t.Skip("set WASMQ_SCREENSHOTS=1 to regenerate docs/screenshots")
	}
	dir := os.Getenv("WASMQ_SCREENSHOTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "docs", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base, token, jobUUID := seedScreenshots(t)
	ctx := newBrowser(t)
	setup := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(1366, 768)}
	if os.Getenv("WASMQ_SCREENSHOTS_DARK") != "" {
		setup = append(setup, darkMode())
	}
	run(t, ctx, "set up the viewport", setup...)
	run(t, ctx, "open the UI", chromedp.Navigate(base+"/"))
	if token != "" {
		useToken(t, ctx, token)
	}
	shots := []struct{ name, path, ready string }{
		{"jobs", "/#/jobs", `document.querySelectorAll('tr[data-uuid]').length > 5 && document.querySelector('button.count')`},
		{"job", "/#/jobs/" + jobUUID, `document.querySelector('svg.graph a.node') && document.querySelector('.attempts, .card')`},
		{"channels", "/#/channels", `document.querySelector('table.channels-table')`},
		{"plugins", "/#/plugins", `document.querySelector('section.plugin')`},
		{"schedules", "/#/schedules", `document.querySelectorAll('tr[data-schedule]').length === 4 && document.querySelector('.last-job .badge')`},
	}
	for _, s := range shots {
		run(t, ctx, "open "+s.name, chromedp.Navigate(base+s.path))
		waitJS(t, ctx, s.name+" rendered", s.ready)
		run(t, ctx, "let the layout settle", chromedp.Sleep(300*time.Millisecond))
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", s.name, err)
		}
		out := filepath.Join(dir, s.name+".png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}

// darkMode makes the page see prefers-color-scheme: dark.
func darkMode() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
}
