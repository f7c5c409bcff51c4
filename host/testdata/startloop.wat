;; A start function that never ends: instantiation must stop at the
;; function's deadline (wasmq.Timeout), for fresh and pooled instances.
(module
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "run") (result i32) (i32.const 0)))
