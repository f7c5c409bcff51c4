;; Loop-free exponential recursion, no imports: measures the cost of the
;; entry loop instrument() adds, and that it makes recursion interruptible.
(module
  (global $g (mut i32) (i32.const 5))
  (func (export "g") (result i32) (global.get $g))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))
