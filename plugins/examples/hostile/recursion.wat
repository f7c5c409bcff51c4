;; Exponential recursion with no loop instruction: fib(60) makes ~10^12
;; calls. Loop-free code escapes a deadline checked only at loop heads;
;; the host must still stop it (wasmq.Timeout).
(module
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "run") (result i32)
    (drop (call $fib (i32.const 60)))
    (i32.const 0)))
