package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Hostile bytes every text field and JSON document is tried with.
var hostileText = map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xff\xfeb"}

// wantRefused checks err is a refusal of field as invalid input.
func wantRefused(t *testing.T, what, field string, err error) {
	t.Helper()
	var fe *abi.FieldError
	if !errors.Is(err, abi.ErrInvalid) || !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("%s: got %v, want abi.ErrInvalid naming %q", what, err, field)
	}
}

// noJobs checks nothing was stored by the refusals.
func noJobs(t *testing.T, s store.Store) {
	t.Helper()
	p, err := s.List(context.Background(), store.Filter{})
	if err != nil || len(p.Jobs) != 0 {
		t.Fatalf("a refused job was stored: %d jobs, %v", len(p.Jobs), err)
	}
}

func badTextIsRefusedInEveryField(t *testing.T, s store.Store) {
	ctx := context.Background()
	fields := map[string]func(j *store.NewJob, v string){
		"uuid":         func(j *store.NewJob, v string) { j.UUID = v },
		"tenant":       func(j *store.NewJob, v string) { j.Tenant = v },
		"func":         func(j *store.NewJob, v string) { j.Func = v },
		"user_id":      func(j *store.NewJob, v string) { j.UserID = v },
		"model_name":   func(j *store.NewJob, v string) { j.ModelName = v },
		"func_string":  func(j *store.NewJob, v string) { j.FuncString = v },
		"description":  func(j *store.NewJob, v string) { j.Description = v },
		"identity_key": func(j *store.NewJob, v string) { j.IdentityKey = v },
		"graph_uuid":   func(j *store.NewJob, v string) { j.GraphUUID = v },
		"channel":      func(j *store.NewJob, v string) { j.Channel = "root." + v },
		"depends_on":   func(j *store.NewJob, v string) { j.DependsOn = []string{v} },
	}
	for name, set := range fields {
		for kind, v := range hostileText {
			j := nj("t")
			set(&j, v)
			_, err := s.Insert(ctx, []store.NewJob{j})
			wantRefused(t, name+" with "+kind, name, err)
		}
	}
	// Inside JSON: NUL escaped in a string or a key, raw invalid UTF-8 in
	// a string; `\\u0000` is a backslash and text, and is kept.
	// A surrogate not in a high-low pair encodes no character: PostgreSQL's
	// jsonb refuses it, Go's decoder makes it U+FFFD. A key given twice in
	// one object: jsonb keeps the last value, SQLite the text as sent.
	docs := map[string][]string{
		"args":    {`["a\u0000b"]`, "[\"a\xffb\"]", `[{"k\u0000":1}]`, `["\ud800"]`, `["\udc00\ud800"]`, `["\\\ud83d x"]`, `[{"k":1,"k":2}]`},
		"kwargs":  {`{"x":"\u0000"}`, `{"k\u0000":1}`, "{\"x\":\"\xfe\"}", `{"\uDBFF":1}`, `{"a":1,"b":{"c":2},"a":3}`, `{"a":1,"\u0061":2}`},
		"context": {`{"x":["\u0000"]}`, "{\"\xff\":1}", `{"user":"\ud83d\u0041"}`, `{"user":"alice","user":"bob"}`},
	}
	for field, bad := range docs {
		for _, doc := range bad {
			j := nj("t")
			switch field {
			case "args":
				j.Args = json.RawMessage(doc)
			case "kwargs":
				j.Kwargs = json.RawMessage(doc)
			case "context":
				j.Context = json.RawMessage(doc)
			}
			_, err := s.Insert(ctx, []store.NewJob{j})
			wantRefused(t, field+" "+strings.ToValidUTF8(doc, "?"), field, err)
		}
	}
	noJobs(t, s)
	for _, kept := range []string{`["\\u0000 is six characters"]`, `["\\ud800 too"]`, `["\ud83d\ude00 a pair", "\uD83D\uDE00"]`, `[{"k":1},{"k":2}]`} {
		j := nj("t")
		j.Args = json.RawMessage(kept)
		if got := get(t, s, insert(t, s, j)[0].UUID); string(got.Args) != string(j.Args) {
			t.Fatalf("args %s stored as %s", j.Args, got.Args)
		}
	}
	// One bad job in a call refuses the call: nothing of it is stored.
	good, bad := nj("t"), nj("t")
	bad.Description = "\x00"
	if _, err := s.Insert(ctx, []store.NewJob{good, bad}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("a batch with a bad job: %v", err)
	}
	if _, err := s.Get(ctx, "", good.UUID); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("the good job of a refused batch was stored: %v", err)
	}
}

func numbersAreCheckedAtTheirBoundaries(t *testing.T, s store.Store) {
	ctx := context.Background()
	year := func(y int) *time.Time { d := time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC); return &d }
	for _, c := range []struct {
		field string
		set   func(j *store.NewJob)
	}{
		{"priority", func(j *store.NewJob) { j.Priority = math.MaxInt32 + 1 }},
		{"priority", func(j *store.NewJob) { j.Priority = 1 << 40 }},
		{"priority", func(j *store.NewJob) { j.Priority = -1 }},
		{"max_retries", func(j *store.NewJob) { j.MaxRetries = math.MaxInt32 + 1 }},
		{"max_retries", func(j *store.NewJob) { j.MaxRetries = -1 }},
		{"eta", func(j *store.NewJob) { j.ETA = year(1734) }},
		{"eta", func(j *store.NewJob) { j.ETA = year(10000) }},
		{"expected_at", func(j *store.NewJob) { j.ExpectedAt = year(1969) }},
		{"identity_key", func(j *store.NewJob) { j.IdentityKey = strings.Repeat("k", abi.MaxIdentityKey+1) }},
	} {
		j := nj("t")
		c.set(&j)
		_, err := s.Insert(ctx, []store.NewJob{j})
		wantRefused(t, "insert "+c.field, c.field, err)
	}
	noJobs(t, s)
	// The largest values are kept exactly.
	j := nj("t")
	j.Priority, j.MaxRetries, j.ETA = math.MaxInt32, math.MaxInt32, year(9999)
	j.IdentityKey = strings.Repeat("k", abi.MaxIdentityKey)
	got := get(t, s, insert(t, s, j)[0].UUID)
	if got.Priority != math.MaxInt32 || got.MaxRetries != math.MaxInt32 || !got.ETA.Equal(*j.ETA) || got.IdentityKey != j.IdentityKey {
		t.Fatalf("stored priority %d, max_retries %d, eta %v, identity key of %d bytes", got.Priority, got.MaxRetries, got.ETA, len(got.IdentityKey))
	}
	for _, c := range []struct {
		field string
		p     store.Patch
	}{
		{"priority", store.Patch{Priority: ptr(1 << 40)}},
		{"priority", store.Patch{Priority: ptr(-5)}},
		{"max_retries", store.Patch{MaxRetries: ptr(math.MaxInt32 + 1)}},
		{"eta", store.Patch{ETA: ptr(year(1734))}},
		{"channel", store.Patch{Channel: ptr("root.bad name!!")}},
		{"channel", store.Patch{Channel: ptr("../x")}},
		{"channel", store.Patch{Channel: ptr("root..x")}},
		{"description", store.Patch{Description: ptr("a\x00")}},
		{"description", store.Patch{Description: ptr(strings.Repeat("é", abi.MaxDescription+1))}},
	} {
		_, err := s.Update(ctx, "t", j.UUID, c.p)
		wantRefused(t, "patch "+c.field, c.field, err)
	}
	if after := get(t, s, j.UUID); after.Priority != math.MaxInt32 || after.Channel != "root" {
		t.Fatalf("a refused patch changed the job: %+v", after)
	}
	for _, r := range []string{`"\u0000"`, `["\ud800"]`, `{"k":1,"k":2}`} {
		if _, err := s.SetDone(ctx, "t", j.UUID, json.RawMessage(r)); !errors.Is(err, abi.ErrInvalid) {
			t.Fatalf("set done with the result %s: %v", r, err)
		}
	}
}

func hostileLookupsFindNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"))
	for kind, v := range hostileText {
		if _, err := s.Get(ctx, "t", v); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("get %s: %v", kind, err)
		}
		if _, err := s.Cancel(ctx, "t", v); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("cancel %s: %v", kind, err)
		}
		if _, err := s.Attempts(ctx, "t", v); !errors.Is(err, abi.ErrNotFound) {
			t.Fatalf("attempts %s: %v", kind, err)
		}
		for field, f := range map[string]store.Filter{
			"q": {Query: v}, "channel": {Channel: v}, "func": {Func: v}, "identity_key": {IdentityKey: v},
			"graph_uuid": {GraphUUID: v}, "cursor": {Cursor: v}, "tenant": {Tenant: v},
		} {
			_, err := s.List(ctx, f)
			wantRefused(t, "list "+field+" "+kind, field, err)
		}
	}
	if _, err := s.List(ctx, store.Filter{States: []abi.State{"nope"}}); !errors.Is(err, abi.ErrInvalid) {
		t.Fatalf("list by an unknown state: %v", err)
	}
}

// A plugin's report cannot be refused: what no store keeps as text is
// mended, and the batch it came with is written whole.
func pluginReportsAreMendedNotLost(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"), nj("t"), nj("t"), nj("t"))
	js := start(t, s, "w", time.Minute)
	if len(js) != 4 {
		t.Fatalf("started %d", len(js))
	}
	cs := []store.Completion{
		{UUID: js[0].UUID, WorkerID: "w", Attempt: 1, To: abi.StateFailed, Cause: abi.CauseFail,
			ExcName: "E\x00", ExcMessage: "bad \xff bytes \x00", ExcInfo: "\xfe",
			Result: json.RawMessage("not json \xff"), Logs: []abi.LogLine{{Time: time.Now(), Level: "info", Message: "a\x00b"}}},
		{UUID: js[1].UUID, WorkerID: "w", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: json.RawMessage(`{"k":"\u0000"}`)},
		{UUID: js[2].UUID, WorkerID: "w", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: json.RawMessage(`["\ud800"]`)},
		// jsonb would keep the last of the two values, and lose the first.
		{UUID: js[3].UUID, WorkerID: "w", Attempt: 1, To: abi.StateDone, Cause: abi.CauseDone, Result: json.RawMessage(`{"k":1,"k":2}`)},
	}
	ap, err := s.Complete(ctx, cs)
	if err != nil || len(ap) != 4 {
		t.Fatalf("complete: %v %v", ap, err)
	}
	failed, done, lone, twice := get(t, s, js[0].UUID), get(t, s, js[1].UUID), get(t, s, js[2].UUID), get(t, s, js[3].UUID)
	if failed.State != abi.StateFailed || done.State != abi.StateDone {
		t.Fatalf("states %s %s", failed.State, done.State)
	}
	for _, x := range []string{failed.ExcName, failed.ExcMessage, failed.ExcInfo, string(failed.Result), string(done.Result)} {
		if !utf8.ValidString(x) || strings.ContainsRune(x, 0) || strings.Contains(x, `\u0000`) {
			t.Fatalf("stored %q", x)
		}
	}
	// What the store cannot keep as it is, it keeps whole, as base64.
	for _, x := range []struct {
		got  json.RawMessage
		sent json.RawMessage
	}{{failed.Result, cs[0].Result}, {done.Result, cs[1].Result}, {lone.Result, cs[2].Result}, {twice.Result, cs[3].Result}} {
		var b struct{ Base64 []byte }
		if err := json.Unmarshal(x.got, &b); err != nil || string(b.Base64) != string(x.sent) {
			t.Fatalf("result %q stored as %s, want the bytes kept as base64", x.sent, x.got)
		}
	}
	at, err := s.Attempts(ctx, "t", failed.UUID)
	if err != nil || len(at) != 1 || len(at[0].Logs) != 1 || strings.ContainsRune(at[0].Logs[0].Message, 0) {
		t.Fatalf("attempts %+v %v", at, err)
	}
}

// Every path moves jobs only along abi's transition table.
func illegalOutcomesAreRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, nj("t"))
	j := start(t, s, "w", time.Minute)[0]
	for _, c := range []store.Completion{
		{To: abi.StateDone, Cause: abi.CauseFail},
		{To: abi.StateCancelled, Cause: abi.CauseDone},
		{To: abi.StateEnqueued, Cause: abi.CauseRetry},
		{To: abi.StateWaitDependencies, Cause: abi.CauseShutdown},
	} {
		c.UUID, c.WorkerID, c.Attempt = j.UUID, "w", 1
		if _, err := s.Complete(ctx, []store.Completion{c}); !errors.Is(err, abi.ErrIllegalTransition) {
			t.Fatalf("started → %s by %s: %v", c.To, c.Cause, err)
		}
	}
	if got := get(t, s, j.UUID); got.State != abi.StateStarted {
		t.Fatalf("an illegal outcome moved the job to %s", got.State)
	}
}

// A page of List is bounded in bytes, not only in jobs: large jobs come
// a few per page, and paging still sees each exactly once.
func pagesAreBoundedInBytes(t *testing.T, s store.Store) {
	ctx := context.Background()
	big := json.RawMessage(`["` + strings.Repeat("x", 3<<20) + `"]`)
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		j := nj("t")
		j.Args = big
		want[insert(t, s, j)[0].UUID] = true
	}
	small := insert(t, s, nj("t"), nj("t"))
	want[small[0].UUID], want[small[1].UUID] = true, true
	seen, pages := map[string]bool{}, 0
	for f := (store.Filter{Tenant: "t", Limit: 1000}); ; pages++ {
		p, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		bytes := 0
		for _, j := range p.Jobs {
			if seen[j.UUID] {
				t.Fatalf("job %s on two pages", j.UUID)
			}
			seen[j.UUID] = true
			bytes += len(j.Args)
		}
		if len(p.Jobs) > 1 && bytes > store.MaxPageBytes {
			t.Fatalf("a page of %d jobs holds %d bytes of args", len(p.Jobs), bytes)
		}
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	if len(seen) != len(want) || pages < 2 {
		t.Fatalf("saw %d of %d jobs in %d pages", len(seen), len(want), pages+1)
	}
}
