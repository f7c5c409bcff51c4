package enqueue

import (
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
