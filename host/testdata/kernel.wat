;; Differential fixture: between them its exports call every function of
;; Extism's kernel (extism:host/env), and each outputs what it observed as
;; i64 values (8 bytes each, little endian), so that TestKernelMatchesTheGoSDK
;; can compare this host with the Extism Go SDK byte for byte. Values that
;; are the implementation's own (block offsets, the arena's size) are
;; reported as facts about them (equal, non-zero), not as themselves.
;; Rebuild with ./gen.sh (wat2wasm).
(module $kernel
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "length_unsafe" (func $length_unsafe (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_set" (func $input_set (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "output_length" (func $output_length (result i64)))
  (import "extism:host/env" "output_offset" (func $output_offset (result i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "error_get" (func $error_get (result i64)))
  (import "extism:host/env" "reset" (func $reset))
  (import "extism:host/env" "memory_bytes" (func $memory_bytes (result i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "http_status_code" (func $http_status_code (result i32)))
  (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
  (import "extism:host/env" "get_log_level" (func $get_log_level (result i32)))
  (import "extism:host/env" "log_trace" (func $log_trace (param i64)))
  (import "extism:host/env" "log_debug" (func $log_debug (param i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "log_warn" (func $log_warn (param i64)))
  (import "extism:host/env" "log_error" (func $log_error (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "key")
  (data (i32.const 8) "value")
  (data (i32.const 16) "oops")
  (data (i32.const 24) "a log line")
  (data (i32.const 40) "missing")
  (data (i32.const 48) "new input")

  ;; The report: up to 16 i64 values at 1024, $n of them so far.
  (global $n (mut i32) (i32.const 0))
  (func $put (param $v i64)
    (i64.store (i32.add (i32.const 1024) (i32.shl (global.get $n) (i32.const 3))) (local.get $v))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))
  (func $bool (param $b i32) (result i64) (i64.extend_i32_u (local.get $b)))
  ;; $report copies the report into a kernel block and sets it as output.
  (func $report (result i32)
    (local $off i64) (local $i i32) (local $len i32)
    (local.set $len (i32.shl (global.get $n) (i32.const 3)))
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u64 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
                       (i64.load (i32.add (i32.const 1024) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br $l)))
    (call $output_set (local.get $off) (i64.extend_i32_u (local.get $len)))
    (global.set $n (i32.const 0))
    (i32.const 0))
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

  ;; alloc, store_u8/u64, load_u8/u64, length, length_unsafe, free.
  (func (export "blocks") (result i32)
    (local $a i64) (local $b i64)
    (local.set $a (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $a) (i64.const 0x0102030405060708))
    (call $store_u8 (i64.add (local.get $a) (i64.const 8)) (i32.const 0xab))
    (call $put (call $load_u64 (local.get $a)))
    (call $put (i64.extend_i32_u (call $load_u8 (i64.add (local.get $a) (i64.const 8)))))
    (call $put (call $length (local.get $a)))
    (call $put (call $length_unsafe (local.get $a)))
    (call $put (call $length (i64.add (local.get $a) (i64.const 1)))) ;; not a block: 0
    (call $free (local.get $a))
    (local.set $b (call $alloc (i64.const 3)))
    (call $put (call $length (local.get $b)))
    (call $put (call $bool (i64.ne (local.get $b) (i64.const 0))))
    (call $report))

  ;; input_length, input_offset, input_load_u8/u64, input_set.
  (func (export "input") (result i32)
    (call $put (call $input_length))
    (call $put (call $input_load_u64 (i64.const 0)))
    (call $put (i64.extend_i32_u (call $input_load_u8 (i64.const 3))))
    (call $put (call $length (call $input_offset)))
    (call $put (i64.extend_i32_u (call $load_u8 (i64.add (call $input_offset) (i64.const 3)))))
    (call $input_set (call $block (i32.const 48) (i32.const 9)) (i64.const 9))
    (call $put (call $input_length))
    (call $put (i64.extend_i32_u (call $input_load_u8 (i64.const 0))))
    (call $report))

  ;; output_set, output_length, output_offset (the report replaces it).
  (func (export "output") (result i32)
    (local $o i64)
    (local.set $o (call $block (i32.const 8) (i32.const 5)))
    (call $output_set (local.get $o) (i64.const 5))
    (call $put (call $output_length))
    (call $put (call $bool (i64.eq (call $output_offset) (local.get $o))))
    (call $report))

  ;; error_set, error_get: the error is the call's message, compared too.
  (func (export "error") (result i32)
    (call $error_set (call $block (i32.const 16) (i32.const 4)))
    (i32.add (i32.const 1) (i32.wrap_i64 (call $length (call $error_get)))))

  ;; var_set, var_get (set, read, missing, removed), config_get (missing).
  (func (export "vars") (result i32)
    (local $v i64)
    (call $var_set (call $block (i32.const 0) (i32.const 3)) (call $block (i32.const 8) (i32.const 5)))
    (local.set $v (call $var_get (call $block (i32.const 0) (i32.const 3))))
    (call $put (call $length (local.get $v)))
    (call $put (i64.extend_i32_u (call $load_u8 (local.get $v))))
    (call $put (call $var_get (call $block (i32.const 40) (i32.const 7))))
    (call $var_set (call $block (i32.const 0) (i32.const 3)) (i64.const 0))
    (call $put (call $var_get (call $block (i32.const 0) (i32.const 3))))
    (call $put (call $config_get (call $block (i32.const 40) (i32.const 7))))
    (call $report))

  ;; reset empties the kernel memory; memory_bytes is non-zero.
  (func (export "reset") (result i32)
    (drop (call $alloc (i64.const 100)))
    (call $reset)
    (call $put (call $bool (i64.ne (call $memory_bytes) (i64.const 0))))
    (call $put (call $length (call $alloc (i64.const 7))))
    (call $report))

  ;; Before any http_request: no status, no headers.
  (func (export "http") (result i32)
    (call $put (i64.extend_i32_u (call $http_status_code)))
    (call $put (call $http_headers))
    (call $report))

  ;; Every log level (the lines go to each host's log), and the level.
  (func (export "logs") (result i32)
    (call $log_trace (call $block (i32.const 24) (i32.const 10)))
    (call $log_debug (call $block (i32.const 24) (i32.const 10)))
    (call $log_info (call $block (i32.const 24) (i32.const 10)))
    (call $log_warn (call $block (i32.const 24) (i32.const 10)))
    (call $log_error (call $block (i32.const 24) (i32.const 10)))
    (call $put (i64.extend_i32_u (call $get_log_level)))
    (call $report)))
