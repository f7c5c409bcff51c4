;; Loop-free exponential recursion and a tight loop, no imports: measure the
;; cost of the countdown instrument() adds, and that it makes both
;; interruptible.
(module
  (global $g (mut i32) (i32.const 5))
  (func (export "g") (result i32) (global.get $g))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  ;; count(n) runs an empty loop n times and returns n.
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))
