;; Starts with 4 GiB of memory (exported or not): must fail with
;; wasmq.MemoryLimit, never allocate it.
(module
  (memory 65536)
  (func (export "run") (result i32) (i32.const 0)))
