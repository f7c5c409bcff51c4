;; Output amplification fixture: each export sets an output of about 4 MiB
;; (the default max_output), built by repeating a pattern, so tests can bound
;; what the host stores for it. Rebuild with ./gen.sh (wat2wasm).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  ;; every byte value 0..255: binary, not UTF-8
  (data (i32.const 0) "\00\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10\11\12\13\14\15\16\17\18\19\1a\1b\1c\1d\1e\1f\20\21\22\23\24\25\26\27\28\29\2a\2b\2c\2d\2e\2f\30\31\32\33\34\35\36\37\38\39\3a\3b\3c\3d\3e\3f\40\41\42\43\44\45\46\47\48\49\4a\4b\4c\4d\4e\4f\50\51\52\53\54\55\56\57\58\59\5a\5b\5c\5d\5e\5f\60\61\62\63\64\65\66\67\68\69\6a\6b\6c\6d\6e\6f\70\71\72\73\74\75\76\77\78\79\7a\7b\7c\7d\7e\7f\80\81\82\83\84\85\86\87\88\89\8a\8b\8c\8d\8e\8f\90\91\92\93\94\95\96\97\98\99\9a\9b\9c\9d\9e\9f\a0\a1\a2\a3\a4\a5\a6\a7\a8\a9\aa\ab\ac\ad\ae\af\b0\b1\b2\b3\b4\b5\b6\b7\b8\b9\ba\bb\bc\bd\be\bf\c0\c1\c2\c3\c4\c5\c6\c7\c8\c9\ca\cb\cc\cd\ce\cf\d0\d1\d2\d3\d4\d5\d6\d7\d8\d9\da\db\dc\dd\de\df\e0\e1\e2\e3\e4\e5\e6\e7\e8\e9\ea\eb\ec\ed\ee\ef\f0\f1\f2\f3\f4\f5\f6\f7\f8\f9\fa\fb\fc\fd\fe\ff")
  ;; terminal text: two ESC control bytes and a CRLF every 16 bytes
  (data (i32.const 256) "\1b\5b\33\31\6d\65\72\72\6f\72\1b\5b\30\6d\0d\0a")
  ;; HTML text: < > & are plain bytes in a JSON string
  (data (i32.const 272) "\3c\70\3e\54\6f\6d\20\26\20\4a\65\72\72\79\21\0a")
  ;; multi-byte UTF-8 text: "Grüße, 世界! ✓ ok\n"
  (data (i32.const 288) "\47\72\c3\bc\c3\9f\65\2c\20\e4\b8\96\e7\95\8c\21\20\e2\9c\93\20\6f\6b\0a")

  ;; 0xff, never in UTF-8: six bytes each as a JSON string of U+FFFD
  (data (i32.const 312) "\ff\ff\ff\ff\ff\ff\ff\ff")

  ;; $repeat outputs the pattern [pat, pat+len) repeated over 4 MiB, cut
  ;; to a whole number of patterns; len is a multiple of 8.
  (func $repeat (param $pat i32) (param $len i32) (result i32)
    (local $n i64) (local $off i64) (local $i i64) (local $plen i64)
    (local.set $plen (i64.extend_i32_u (local.get $len)))
    (local.set $n (i64.sub (i64.const 4194304) (i64.rem_u (i64.const 4194304) (local.get $plen))))
    (local.set $off (call $alloc (local.get $n)))
    (block $d (loop $l
      (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u64 (i64.add (local.get $off) (local.get $i))
        (i64.load (i32.add (local.get $pat) (i32.wrap_i64 (i64.rem_u (local.get $i) (local.get $plen))))))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $l)))
    (call $output_set (local.get $off) (local.get $n))
    (i32.const 0))

  (func (export "binary") (result i32) (call $repeat (i32.const 0) (i32.const 256)))
  (func (export "ansi") (result i32) (call $repeat (i32.const 256) (i32.const 16)))
  (func (export "html") (result i32) (call $repeat (i32.const 272) (i32.const 16)))
  (func (export "ff") (result i32) (call $repeat (i32.const 312) (i32.const 8)))
  (func (export "utf8") (result i32) (call $repeat (i32.const 288) (i32.const 24)))
)
