;; Spins forever: the wall-clock timeout must interrupt it (wasmq.Timeout).
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (loop $l (br $l))
    (i32.const 0)))
