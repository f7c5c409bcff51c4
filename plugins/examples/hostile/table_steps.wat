;; Grows its table 100,000 entries at a time towards 130 million, each
;; grow copying the whole table again; gives up (crashes) when refused.
;; The host stops it at host.table_limit (wasmq.MemoryLimit).
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "run") (result i32)
    (block $full (loop $l
      (br_if $full (i32.ge_u (table.size $t) (i32.const 130000000)))
      (br_if $full (i32.eq (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1)))
      (br $l)))
    unreachable))
