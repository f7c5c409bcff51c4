package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

// BenchmarkReadHTTP measures the reads an operator's UI sends, against a
// real node (SQLite store) over loopback: one job (GET /v1/jobs/{uuid})
// and a page of 50 (GET /v1/jobs?limit=50, jobs of 1 KiB of args).
func BenchmarkReadHTTP(b *testing.B) {
	s := start(b)
	args := []string{strings.Repeat("a", 1024)}
	var uuid string
	for range 50 {
		r := s.do("POST", "/v1/jobs", tokA, map[string]any{"func": "testkit.echo", "args": args, "eta": 86400})
		if r.status != 201 {
			b.Fatalf("enqueue: %d %s", r.status, r.body)
		}
		uuid = r.json(b)["uuid"].(string)
	}
	get := func(b *testing.B, path string) {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("%s: %v %v", path, res.StatusCode, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	b.Run("job", func(b *testing.B) {
		for b.Loop() {
			get(b, "/v1/jobs/"+uuid)
		}
	})
	b.Run("list50", func(b *testing.B) {
		for b.Loop() {
			get(b, "/v1/jobs?limit=50")
		}
	})
}
