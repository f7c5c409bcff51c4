;; Calls WASI proc_exit(3) (wasmq.Exit).
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (call $exit (i32.const 3))
    (i32.const 0)))
