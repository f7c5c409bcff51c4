;; Starts with 4 GiB of linear memory, over any memory_limit: it could
;; never run. Refused at load, naming host.memory_limit.
(module
  (memory (export "memory") 65536)
  (func (export "run") (result i32) (i32.const 0)))
