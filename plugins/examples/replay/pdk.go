package main

// The Extism guest ABI and wasmq's host functions this example uses, with
// the go-pdk's names (the go-pdk is not on the module proxy here).

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(offs uint64) uint32

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env length
func extismLength(offs uint64) uint64

//go:wasmimport extism:host/env load_u8
func extismLoadU8(offs uint64) uint32

//go:wasmimport extism:host/env store_u8
func extismStoreU8(offs uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(offs, n uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(offs uint64)

//go:wasmimport extism:host/env http_request
func extismHTTPRequest(req, body uint64) uint64

//go:wasmimport extism:host/env http_status_code
func extismHTTPStatusCode() int32

//go:wasmimport extism:host/user wasmq_fail_v1
func wasmqFail(message uint64)

//go:wasmimport extism:host/user wasmq_now_v1
func wasmqNow() int64

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

func read(off uint64) []byte {
	if off == 0 {
		return nil
	}
	b := make([]byte, extismLength(off))
	for i := range b {
		b[i] = byte(extismLoadU8(off + uint64(i)))
	}
	return b
}

// Output sets the function's output (go-pdk: pdk.Output).
func Output(b []byte) { extismOutputSet(block(b), uint64(len(b))) }

// SetErrorString sets the error message of a failing call (go-pdk name).
func SetErrorString(s string) { extismErrorSet(block([]byte(s))) }

// Fail ends the job failed for good (wasmq_fail_v1).
func Fail(message string) { wasmqFail(block([]byte(message))) }

// Now is the host's wall clock in Unix nanoseconds (wasmq_now_v1).
func Now() int64 { return wasmqNow() }

// HTTPGet does a GET through the host (go-pdk: pdk.SendRequest) and
// returns the status and body.
func HTTPGet(url string, headers map[string]string) (int32, []byte) {
	req := map[string]any{"url": url, "method": "GET", "headers": headers}
	off := extismHTTPRequest(block(mustJSON(req)), 0)
	body := read(off)
	return extismHTTPStatusCode(), body
}
