package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// BenchmarkEnqueueHTTP measures POST /v1/jobs and POST /v1/jobs:batch
// against a real node (SQLite store, host, runner) over loopback.
func BenchmarkEnqueueHTTP(b *testing.B) {
	s := start(b)
	one, _ := json.Marshal(map[string]any{"func": "testkit.echo", "args": []int{1}, "eta": 86400})
	jobs := make([]map[string]any, 100)
	for i := range jobs {
		jobs[i] = map[string]any{"func": "testkit.echo", "args": []int{i}, "eta": 86400}
	}
	batch, _ := json.Marshal(map[string]any{"jobs": jobs})
	post := func(b *testing.B, path string, body []byte) {
		req, _ := http.NewRequest("POST", s.url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokA)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 201 {
			b.Fatalf("%s: %v %v", path, res.StatusCode, err)
		}
		res.Body.Close()
	}
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			post(b, "/v1/jobs", one)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("batch100", func(b *testing.B) {
		for b.Loop() {
			post(b, "/v1/jobs:batch", batch)
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "jobs/s")
	})
}
