;; Two traps: unreachable, and a load past the end of memory (wasmq.Trap).
(module
  (memory (export "memory") 1)
  (func (export "unreachable") (result i32)
    unreachable)
  (func (export "out_of_bounds") (result i32)
    (i32.load (i32.const 1000000))))
