;; Grows its memory 16 MiB at a time until refused, then crashes as an
;; out-of-memory program would (wasmq.MemoryLimit).
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (block $full (loop $l
      (br_if $full (i32.eq (memory.grow (i32.const 256)) (i32.const -1)))
      (br $l)))
    unreachable))
