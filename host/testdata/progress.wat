;; Reports its progress through wasmq_progress_v1: 0 to 100, a message
;; at 50 holding invalid UTF-8 and a NUL (the host mends them), then 101,
;; which the host must refuse (the function fails if it does not).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/user" "wasmq_progress_v1" (func $progress (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "half \ff\00done")
  (func $msg (result i64) (local $b i64) (local $i i32)
    (local.set $b (call $alloc (i64.const 11)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.const 11)))
        (call $store_u8 (i64.add (local.get $b) (i64.extend_i32_u (local.get $i))) (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $b))
  (func (export "run") (result i32) (local $p i32)
    (block $done
      (loop $l
        (br_if $done (i32.gt_s (local.get $p) (i32.const 100)))
        (if (i32.ne
              (call $progress (local.get $p)
                (if (result i64) (i32.eq (local.get $p) (i32.const 50)) (then (call $msg)) (else (i64.const 0))))
              (i32.const 0))
          (then (return (i32.const 2))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l)))
    (if (i32.ne (call $progress (i32.const 101) (i64.const 0)) (i32.const 1))
      (then (return (i32.const 3))))
    (if (i32.ne (call $progress (i32.const -1) (i64.const 0)) (i32.const 1))
      (then (return (i32.const 4))))
    (i32.const 0))
)
