;; Asks the host for a 256 MiB output block (wasmq.OutputTooLarge).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (call $output_set (call $alloc (i64.const 268435456)) (i64.const 268435456))
    (i32.const 0)))
