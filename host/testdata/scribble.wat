;; run: every byte of its memory (1 page, grown by 5) must be zero; then
;; fills all of it with 0xff. Returns 1 if it found a non-zero byte.
(module
  (memory 1)
  (func (export "run") (result i32) (local $p i32) (local $end i32) (local $bad i32)
    (drop (memory.grow (i32.const 5)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (loop $each
      (if (i32.load8_u (local.get $p)) (then (local.set $bad (i32.const 1))))
      (i32.store8 (local.get $p) (i32.const 0xff))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $p) (local.get $end))))
    (local.get $bad)))
