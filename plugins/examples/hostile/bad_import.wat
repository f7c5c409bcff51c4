;; Imports a function the host does not provide: refused when loaded.
(module
  (import "extism:host/env" "read_the_host_filesystem" (func $x (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (drop (call $x (i64.const 0)))
    (i32.const 0)))
