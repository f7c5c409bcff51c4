;; A reactor whose _initialize never ends (a Go or Rust runtime stuck in
;; its start-up): the host runs _initialize under the job's deadline.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "run") (result i32) (i32.const 0)))
