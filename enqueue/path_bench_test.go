package enqueue

import (
	"strings"
	"testing"
)

// BenchmarkDecodeAndBuild is the enqueue service's own work on a
// single-job request, before the store: strict decoding and validation.
func BenchmarkDecodeAndBuild(b *testing.B) {
	s := &Service{Funcs: funcs{}}
	body := []byte(`{"func":"m.f","args":[1]}`)
	b.ReportAllocs()
	for b.Loop() {
		var r Request
		if err := Decode(body, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Build(b.Context(), "t", []Request{r}, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"func":"m.f","args":[1]}`)
	b.ReportAllocs()
	for b.Loop() {
		var r Request
		if err := Decode(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBatch1000 decodes the body of a batch of 1,000 jobs in
// one pass (the common case); EntryByEntry is the pass that names the
// entry of an error.
func BenchmarkDecodeBatch1000(b *testing.B) {
	body := []byte(`{"jobs":[` + strings.TrimSuffix(strings.Repeat(`{"func":"m.f","args":[1],"kwargs":{"n":"x"}},`, 1000), ",") + `]}`)
	for _, bc := range []struct {
		name   string
		decode func([]byte, *BatchRequest) error
	}{{"OnePass", decodeBatch}, {"EntryByEntry", decodeEntries}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var r BatchRequest
				if err := bc.decode(body, &r); err != nil || len(r.Jobs) != 1000 {
					b.Fatal(err, len(r.Jobs))
				}
			}
		})
	}
}

// BenchmarkBuildBatch1000 validates a decoded batch of 1,000 jobs and
// builds their rows, as POST /v1/jobs:batch does before the store.
func BenchmarkBuildBatch1000(b *testing.B) {
	s := &Service{Funcs: funcs{}}
	var r BatchRequest
	body := []byte(`{"jobs":[` + strings.TrimSuffix(strings.Repeat(`{"func":"m.f","args":[1, "x"]},`, 1000), ",") + `]}`)
	if err := Decode(body, &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if jobs, err := s.Build(b.Context(), "t", r.Jobs, true); err != nil || len(jobs) != 1000 {
			b.Fatal(err, len(jobs))
		}
	}
}
