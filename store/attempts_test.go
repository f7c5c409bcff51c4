package store_test

import (
	"testing"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

func TestUsageIsStoredWithoutItsZeroCounts(t *testing.T) {
	u := abi.Usage{Fuel: 112, PeakMemory: 196608}
	text := store.UsageText(&u)
	if text == nil || *text != `{"fuel":112,"peak_memory":196608}` {
		t.Fatalf("stored %v, want only the counts that are not zero", text)
	}
	back, err := store.DecodeUsage(text)
	if err != nil || back == nil || *back != u {
		t.Fatalf("read back %+v (%v), want %+v", back, err, u)
	}

	// Rows written by earlier versions hold every count.
	old := `{"fuel":112,"wall_ms":0,"peak_memory":196608,"host_calls":0,"http_requests":0,"http_bytes_out":0,"http_bytes_in":0}`
	if back, err := store.DecodeUsage(&old); err != nil || back == nil || *back != u {
		t.Fatalf("read an earlier row as %+v (%v), want %+v", back, err, u)
	}

	// An attempt that used nothing still has a usage, unlike one with
	// none recorded (NULL).
	zero := store.UsageText(&abi.Usage{})
	if zero == nil || *zero != `{}` {
		t.Fatalf("an attempt that used nothing is stored as %v, want {}", zero)
	}
	if back, err := store.DecodeUsage(zero); err != nil || back == nil || *back != (abi.Usage{}) {
		t.Fatalf("read back %+v (%v), want a zero usage", back, err)
	}
	if store.UsageText(nil) != nil {
		t.Fatal("no usage must be stored as NULL")
	}
}
