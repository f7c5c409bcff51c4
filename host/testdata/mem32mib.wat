;; Starts with 32 MiB of memory (512 pages): over a 16 MiB memory_limit it
;; could never run, so the host must refuse it at load.
(module
  (memory (export "memory") 512)
  (func (export "run") (result i32) (i32.const 0)))
