;; A trap two calls deep, built with --debug-names: the name section gives
;; exc_info a wasm stack with function names (module $ledger, functions
;; $post_entry and $check_balance).
(module $ledger
  (memory (export "memory") 1)
  (func $check_balance (param $amount i32) (result i32)
    (if (i32.lt_s (local.get $amount) (i32.const 0)) (then unreachable))
    (local.get $amount))
  (func $post_entry (result i32)
    (drop (call $check_balance (i32.const -5)))
    (i32.const 0))
  (export "post" (func $post_entry)))
