package main

// A minimal in-tree binding of the Extism guest ABI with the go-pdk's
// function names (the go-pdk is not on the module proxy here). Valid for
// standard Go (GOOS=wasip1) and TinyGo.

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(offs uint64) uint32

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func extismStoreU8(offs uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(offs, n uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(offs uint64)

//go:wasmimport extism:host/user wasmq_retry_v1
func wasmqRetry(seconds int64, ignoreRetry int32, reason uint64)

//go:wasmimport extism:host/user wasmq_progress_v1
func wasmqProgress(percent int32, message uint64) int32

// Input returns the whole input document (go-pdk: pdk.Input).
func Input() []byte {
	n := extismInputLength()
	b := make([]byte, n)
	for i := uint64(0); i < n; i++ {
		b[i] = byte(extismInputLoadU8(i))
	}
	return b
}

func block(b []byte) uint64 {
	off := extismAlloc(uint64(len(b)))
	for i, c := range b {
		extismStoreU8(off+uint64(i), uint32(c))
	}
	return off
}

// Output sets the function's output (go-pdk: pdk.Output).
func Output(b []byte) { extismOutputSet(block(b), uint64(len(b))) }

// SetErrorString sets the error message of a failing call (go-pdk name).
func SetErrorString(s string) { extismErrorSet(block([]byte(s))) }

// Retry asks wasmq to run the job again after seconds (0: the function's
// retry_pattern), not counting the attempt when ignore is true.
func Retry(seconds int64, ignore bool, reason string) {
	var ig int32
	if ignore {
		ig = 1
	}
	wasmqRetry(seconds, ig, block([]byte(reason)))
}

// Progress reports the job's progress, 0 to 100, with a short message;
// false when percent is out of range.
func Progress(percent int32, message string) bool {
	return wasmqProgress(percent, block([]byte(message))) == 0
}
