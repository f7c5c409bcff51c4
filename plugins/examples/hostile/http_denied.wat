;; Calls http_request for a host no allowed_hosts lists (wasmq.HTTPDenied).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "http_request" (func $http (param i64 i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"url\":\"https://example.com/\",\"method\":\"GET\"}")
  (func (export "run") (result i32)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.const 45)))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const 45)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (drop (call $http (local.get $off) (i64.const 0)))
    (i32.const 0)))
