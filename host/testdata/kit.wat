;; Small fixture module for host tests: one export per behaviour.
;; Rebuild with ./gen.sh (wat2wasm). VERSION is replaced by gen.sh.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "http_request" (func $http (param i64 i64) (result i64)))
  (import "extism:host/env" "http_status_code" (func $status (result i32)))
  (import "extism:host/user" "wasmq_retry_v1" (func $retry (param i64 i32 i64)))
  (import "extism:host/user" "wasmq_fail_v1" (func $fail (param i64)))
  (import "extism:host/user" "wasmq_nothing_to_do_v1" (func $nothing (param i64)))
  (import "extism:host/user" "wasmq_enqueue_v1" (func $enqueue (param i64) (result i64)))
  (import "extism:host/user" "wasmq_sleep_v1" (func $sleep (param i64) (result i32)))
  (import "extism:host/user" "wasmq_log_v1" (func $log (param i32 i64)))
  (import "extism:host/user" "wasmq_now_v1" (func $now (result i64)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "boom")
  (data (i32.const 16) "{\"wasmq\":{\"retry\":{\"seconds\":7,\"reason\":\"busy\"}}}")
  (data (i32.const 96) "req")
  (data (i32.const 100) "child")
  (data (i32.const 112) "\"VERSION\"") ;; VERSION is two characters

  ;; $block copies linear memory [ptr, ptr+len) into a new kernel block.
  (func $block (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $off))

  (func $output_block (param $off i64)
    (call $output_set (local.get $off) (call $length (local.get $off))))

  (func (export "echo") (result i32)
    (local $n i64) (local $off i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $off (call $alloc (local.get $n)))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $off) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)))
    (call $output_set (local.get $off) (local.get $n))
    (i32.const 0))

  (func (export "version") (result i32)
    (call $output_block (call $block (i32.const 112) (i32.const 4)))
    (i32.const 0))

  (func (export "sleepy") (result i32)
    (drop (call $sleep (i64.const 400)))
    (call $output_block (call $block (i32.const 112) (i32.const 4)))
    (i32.const 0))

  (func (export "text") (result i32)
    (call $output_block (call $block (i32.const 0) (i32.const 4)))
    (i32.const 0))

  (func (export "error") (result i32)
    (call $error_set (call $block (i32.const 0) (i32.const 4)))
    (i32.const 1))

  (func (export "retry") (result i32)
    (call $retry (i64.const 7) (i32.const 1) (call $block (i32.const 0) (i32.const 4)))
    (i32.const 1))

  (func (export "fail") (result i32)
    (call $fail (call $block (i32.const 0) (i32.const 4)))
    (i32.const 0))

  (func (export "nothing") (result i32)
    (call $nothing (call $block (i32.const 0) (i32.const 4)))
    (i32.const 0))

  (func (export "control") (result i32)
    (call $output_block (call $block (i32.const 16) (i32.const 49)))
    (i32.const 0))

  (func (export "logs") (result i32)
    (call $log_info (call $block (i32.const 0) (i32.const 4)))
    (call $log (i32.const 2) (call $block (i32.const 0) (i32.const 4)))
    (i32.const 0))

  (func (export "now") (result i32)
    (if (i64.lt_s (call $now) (i64.const 1600000000000000000)) (then unreachable))
    (i32.const 0))

  (func (export "enqueue") (result i32)
    (call $output_block (call $enqueue (call $config_get (call $block (i32.const 100) (i32.const 5)))))
    (i32.const 0))

  (func (export "http") (result i32)
    (local $resp i64)
    (local.set $resp (call $http (call $config_get (call $block (i32.const 96) (i32.const 3))) (i64.const 0)))
    (if (i32.ne (call $status) (i32.const 200)) (then (return (i32.const 2))))
    (call $output_block (local.get $resp))
    (i32.const 0))

  ;; Sleeps forever: each sleep is cut short near the deadline.
  (func (export "sleep") (result i32)
    (loop $l
      (drop (call $sleep (i64.const 60000)))
      (br $l))
    (i32.const 0))

  (func (export "loop") (result i32)
    (loop $l (br $l))
    (i32.const 0))

  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  (func (export "recurse") (result i32)
    (drop (call $fib (i32.const 60)))
    (i32.const 0))

  (func (export "membomb") (result i32)
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)

  (func (export "kernelbomb") (result i32)
    (loop $l
      (br_if $l (i64.ne (call $alloc (i64.const 1048576)) (i64.const 0))))
    unreachable)

  (func (export "huge") (result i32)
    (local $off i64)
    (local.set $off (call $alloc (i64.const 8388608)))
    (call $output_set (local.get $off) (i64.const 8388608))
    (i32.const 0))

  (func (export "trap") (result i32)
    unreachable)

  (func (export "exit") (result i32)
    (call $exit (i32.const 3))
    (i32.const 0))
)
