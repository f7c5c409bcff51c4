;; Sets a 4,000,000-byte output of NUL bytes: not JSON, not text a
;; database keeps. Stored as {"base64": ...} (4/3 of its size), not as a
;; JSON string of \u0000 escapes (6 times its size): the job ends done.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (call $output_set (call $alloc (i64.const 4000000)) (i64.const 4000000))
    (i32.const 0)))
