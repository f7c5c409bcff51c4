;; Loops forever in its start function, which runs while the module is
;; instantiated, before any export is called: the deadline must cover
;; instantiation too (wasmq.Timeout), and loading must not run it.
(module
  (memory (export "memory") 1)
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "run") (result i32) (i32.const 0)))
