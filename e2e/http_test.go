package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wasmq/wasmq/abi"
)

// call sends one API request with a bearer token and decodes the answer
// into out (when non-nil); a status other than want fails the test.
func call(t *testing.T, base, token, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func createJob(t *testing.T, base, token string, body map[string]any) abi.Job {
	t.Helper()
	var j abi.Job
	call(t, base, token, http.MethodPost, "/v1/jobs", body, http.StatusCreated, &j)
	return j
}

// waitState polls the API until the job reaches state, failing after d.
func waitState(t *testing.T, base, token, uuid string, state abi.State, d time.Duration) abi.Job {
	t.Helper()
	deadline := time.Now().Add(d)
	var j abi.Job
	for {
		call(t, base, token, http.MethodGet, "/v1/jobs/"+uuid, nil, http.StatusOK, &j)
		if j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s after %s, want %s (%s: %s)", uuid, j.State, d, state, j.ExcName, j.ExcMessage)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
