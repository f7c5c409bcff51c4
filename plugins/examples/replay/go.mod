module wasmq.example/flaky

go 1.24
