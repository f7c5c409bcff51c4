;; Imports a function the host does not provide: must be refused.
(module
  (import "env" "nothing_here" (func $x))
  (func (export "run") (result i32) (call $x) (i32.const 0)))
