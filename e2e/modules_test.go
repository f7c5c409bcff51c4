package e2e

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/wasmq/wasmq/ui"
)

func TestRelatedActionTemplateExpandsJobFieldsAndContextPaths(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()
	ctx := newBrowser(t)
	run(t, ctx, "open the UI", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("header.top")))
	job := `{uuid: "u-1", model_name: "res.partner", tenant: "acme", kwargs: {lang: "fr"},
		context: {records: [7, 8], user: "alice bob", tags: {a: 1}}}`
	cases := []struct{ tmpl, want string }{
		{"https://erp.example/web#model={model_name}&id={context.records.0}", `{"url":"https://erp.example/web#model=res.partner&id=7"}`},
		{"https://x.example/{context.records}?u={context.user}", `{"url":"https://x.example/7,8?u=alice%20bob"}`},
		{"/jobs/{uuid}?lang={kwargs.lang}&t={{x}}", `{"url":"/jobs/u-1?lang=fr&t={x}"}`},
		{"https://x.example/{context.records.5}", `{"error":"{context.records.5} has no value for this job"}`},
		{"javascript:alert({uuid})", `{"error":"template must produce an http(s) URL or a /path"}`},
		{"https://x.example/{uuid", `{"error":"unclosed { in template"}`},
	}
	for _, c := range cases {
		tmpl, _ := json.Marshal(c.tmpl)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`import('/assets/related.js').then(m => JSON.stringify(m.expand(`+string(tmpl)+`, `+job+`)))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("expand %s: %v", c.tmpl, err)
		}
		if got != c.want {
			t.Errorf("expand %s\n got %s\nwant %s", c.tmpl, got, c.want)
		}
	}
}

func TestGraphLayoutPutsEachJobRightOfItsParents(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()
	ctx := newBrowser(t)
	run(t, ctx, "open the UI", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("header.top")))
	// a → b1, b2 → c (fan-out then fan-in), plus d depending on a and c.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`import('/assets/graph.js').then(m => {
		const jobs = [
			{uuid: "a", seq: 1, depends_on: []}, {uuid: "b1", seq: 2, depends_on: ["a"]},
			{uuid: "b2", seq: 3, depends_on: ["a"]}, {uuid: "c", seq: 4, depends_on: ["b1", "b2"]},
			{uuid: "d", seq: 5, depends_on: ["a", "c"]}];
		const l = m.layout(jobs);
		return JSON.stringify(Object.fromEntries([...l.pos].map(([k, p]) => [k, p.layer])).valueOf()) + " " + l.edges.length;
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":0,"b1":1,"b2":1,"c":2,"d":3} 6`; got != want {
		t.Errorf("layers and edges: got %s, want %s", got, want)
	}
}
