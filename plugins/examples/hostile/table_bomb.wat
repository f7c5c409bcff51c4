;; Grows its table by 130 million entries in one table.grow. wazero has no
;; table limit: it would allocate 1 GiB in one call the deadline cannot
;; interrupt. The host refuses the grow (wasmq.MemoryLimit).
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "run") (result i32)
    (drop (table.grow $t (ref.null func) (i32.const 130000000)))
    (i32.const 0)))
