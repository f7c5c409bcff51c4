package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wasmq/wasmq/abi"
)

// markup is what a stranger puts in every text of a job it controls: an
// image whose load error would run script, and an element with an id
// the test looks for. Shown as text, it creates no element and runs
// nothing; parsed as HTML anywhere, an element with an id starting with
// "pwn-" appears (even where the page's Content-Security-Policy stops
// the handler from running).
func markup(where string) string {
	return fmt.Sprintf(`<img src=x id=pwn-%[1]s onerror="window.__pwned='%[1]s'"><b id=pwn-b-%[1]s>%[1]s</b>`, where)
}

// A tenant runs untrusted code and chooses every text of its jobs; an
// operator reads them in the UI. Whatever those texts hold — the
// description, user, model, identity key, arguments, context, the
// plugin's failure message and its result — the list, the job page and
// the dependency graph show it as text: no element is made of it and
// no script of it runs.
func TestAStrangersMarkupInJobDataIsShownAsTextAndRunsNothing(t *testing.T) {
	s := startServer(t)
	ctx := newBrowser(t)
	failed := createJob(t, s.URL, s.TokenA, map[string]any{
		"func": "testkit.script", "args": []string{"final:" + markup("exc")},
		"description": markup("desc"), "identity_key": markup("key"),
		// The context's user and model are the job's user_id and model_name.
		"context": map[string]any{"user": markup("user"), "model": markup("model"), markup("ctxkey"): markup("ctx")},
	})
	echoed := createJob(t, s.URL, s.TokenA, map[string]any{
		"func": "testkit.echo", "args": []string{markup("arg")}, "kwargs": map[string]any{markup("kwkey"): markup("kw")},
		"description": markup("echo"),
	})
	var batch struct{ Jobs []abi.Job }
	call(t, s.URL, s.TokenA, http.MethodPost, "/v1/jobs:batch", map[string]any{"jobs": []map[string]any{
		{"ref": "first", "func": okFunc, "args": okArgs, "description": markup("parent")},
		{"ref": "second", "func": okFunc, "args": okArgs, "description": markup("child"), "depends_on": []string{"first"}},
	}}, http.StatusCreated, &batch)
	if len(batch.Jobs) != 2 {
		t.Fatalf("batch created %d jobs, want 2", len(batch.Jobs))
	}
	waitState(t, s.URL, s.TokenA, failed.UUID, abi.StateFailed, 15*time.Second)
	done := waitState(t, s.URL, s.TokenA, echoed.UUID, abi.StateDone, 15*time.Second)
	waitState(t, s.URL, s.TokenA, batch.Jobs[1].UUID, abi.StateDone, 15*time.Second)
	if !strings.Contains(string(done.Result), "pwn-kw") {
		t.Fatal("the echo's result does not hold the markup it was sent: nothing would test the result's view")
	}

	// shownAsText waits until each text is on the page, literally, or
	// something of the markup became an element or ran; then says which.
	const made = `[...document.querySelectorAll('[id^="pwn-"]')].map(e => e.id).concat(window.__pwned ? ['ran:' + window.__pwned] : [])`
	shownAsText := func(page string, texts ...string) {
		t.Helper()
		var shown []string
		for _, w := range texts {
			shown = append(shown, fmt.Sprintf("document.body.innerText.includes(%q)", fmt.Sprintf("id=pwn-%s ", w)))
		}
		all := strings.Join(shown, " && ")
		waitJS(t, ctx, page+": the markup shown as text", "("+all+") || "+made+".length > 0")
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](made))
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		if len(got) > 0 {
			t.Fatalf("%s: job data became elements or ran: %v", page, got)
		}
	}

	run(t, ctx, "open the list", chromedp.Navigate(s.URL+"/"))
	useToken(t, ctx, s.TokenA)
	run(t, ctx, "the jobs are listed", chromedp.WaitVisible(chromedp.CSS(row(failed.UUID))))
	shownAsText("the list", "desc", "echo", "parent", "child", "exc")

	run(t, ctx, "open the failed job", chromedp.Navigate(s.URL+"/#/jobs/"+failed.UUID))
	shownAsText("the failed job's page", "desc", "user", "model", "key", "ctxkey", "ctx", "exc")

	run(t, ctx, "open the echo", chromedp.Navigate(s.URL+"/#/jobs/"+echoed.UUID))
	shownAsText("the echo's page", "echo", "arg", "kwkey", "kw")

	run(t, ctx, "open the child", chromedp.Navigate(s.URL+"/#/jobs/"+batch.Jobs[1].UUID))
	waitJS(t, ctx, "the graph is drawn", `document.querySelectorAll('svg.graph a.node').length === 2`)
	shownAsText("the child's page and graph", "child")
	labels, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('svg.graph').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(labels, "parent>parent</b>") { // a label is a description's last 21 characters
		t.Fatalf("the graph does not label the parent with its description's text: %q", labels)
	}
}
