;; Declares a table of 130 million entries: instantiating it would take
;; 1 GiB. Refused at load, naming host.table_limit.
(module
  (memory (export "memory") 1)
  (table 130000000 funcref)
  (func (export "run") (result i32) (i32.const 0)))
