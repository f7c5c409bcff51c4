package abi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The document AppendJSON writes is encoding/json's, byte for byte, for
// jobs of every shape: empty and set fields, strings to escape, JSON
// with spaces, times in other zones and out of range.
func TestAppendJSONIsWhatEncodingJSONWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "plain", `quo"te`, `back\slash`, "<b>&amp;</b>", "tab\there", "nl\n", "\x00\x1f", "é ü 日本", "\u2028\u2029",
		"bad \xff utf-8", "\x7f"}
	raws := []json.RawMessage{nil, json.RawMessage(`[]`), json.RawMessage(`[1,"x",{"a":null}]`), json.RawMessage(` [1, 2] `),
		json.RawMessage(`{"k":"<script>"}`), json.RawMessage(`{"k":"é"}`), json.RawMessage(`{"k":"\u2028"}`),
		json.RawMessage(`{"a":`), json.RawMessage{}, json.RawMessage(`null`), json.RawMessage("{\"a\":\n1}")}
	paris, _ := time.LoadLocation("Europe/Paris")
	times := []time.Time{time.Date(2026, 11, 30, 20, 0, 0, 123456789, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, paris),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 25*3600)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("lmt", 561))}
	floats := []float64{0, 1.5, 1e-7, 1e21, 123456789.125, math.NaN()}
	pick := func(n int) int { return rng.IntN(n) }
	str := func() string { return texts[pick(len(texts))] }
	opt := func() *string {
		if pick(3) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	tm := func() *time.Time {
		if pick(3) == 0 {
			return nil
		}
		t := times[pick(len(times))]
		return &t
	}
	for i := 0; i < 5000; i++ {
		d := JobDoc{UUID: str(), Tenant: str(), Func: str(), Args: raws[pick(len(raws))], Kwargs: raws[pick(len(raws))],
			Context: raws[pick(len(raws))], UserID: opt(), ModelName: opt(), FuncString: str(), Description: str(), Channel: str(),
			Priority: rng.IntN(100) - 50, ETA: tm(), ExpectedAt: tm(), MaxRetries: rng.IntN(10), Retry: rng.IntN(10),
			Attempt: rng.IntN(10), IdentityKey: opt(), GraphUUID: opt(), State: State(str()), Result: raws[pick(len(raws))],
			ExcName: opt(), ExcMessage: opt(), ExcInfo: opt(), DateCreated: times[pick(len(times))], DateEnqueued: tm(),
			DateStarted: tm(), DateDone: tm(), DateCancelled: tm(), Late: pick(2) == 0, WorkerID: opt(), PluginSHA256: opt(),
			Seq: rng.Int64() - math.MaxInt64/2, LeaseUntil: tm()}
		switch pick(3) {
		case 0:
			d.DependsOn = []string{}
		case 1:
			d.DependsOn = []string{str(), str()}
		}
		if pick(2) == 0 {
			f := floats[pick(len(floats))]
			d.ExecTime = &f
		}
		if pick(3) == 0 {
			d.Progress = &Progress{Percent: 40, Message: str(), Updated: times[pick(len(times))]}
		}
		if pick(3) == 0 {
			d.Usage = &Usage{Fuel: 7, WallMS: 3}
		}
		want, wantErr := json.Marshal(&d)
		got, gotErr := d.AppendJSON(nil)
		if (wantErr != nil) != (gotErr != nil) {
			t.Fatalf("doc %d: error %v, encoding/json's %v", i, gotErr, wantErr)
		}
		if wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("doc %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func BenchmarkJobDocumentAppend(b *testing.B) {
	now := time.Now()
	j := Job{UUID: "0b9f0000-0000-4000-8000-000000000001", Tenant: "acme", Func: "m.f", Args: json.RawMessage(`[1,"x"]`),
		Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{}`), Channel: "root", State: StateDone,
		Result: json.RawMessage(`{"ok":true}`), DateCreated: now, DateStarted: &now, DateDone: &now, WorkerID: "n1/x"}
	b.ReportAllocs()
	buf := make([]byte, 0, 2048)
	for b.Loop() {
		if _, err := j.Doc().AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
