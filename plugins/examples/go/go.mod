module wasmq.example/report

go 1.24
