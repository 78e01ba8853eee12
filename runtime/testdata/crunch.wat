;; crunch.wat: a waPC actor that computes for a bounded, chosen time, with
;; no grants: the payload is n (4 bytes, big-endian), the response is the
;; state of a xorshift64 generator (Marsaglia 2003, shifts 13, 7, 17)
;; seeded with 0x9e3779b97f4a7c15 after n steps, 8 bytes little-endian.
;; Any operation name runs it. A host checks the answer with the same
;; few lines of Go.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "crunch: payload is n(4)")

  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $n i32) (local $x i64)
    ;; the operation goes to [0, 256), the payload to [256, 260)
    (if (i32.or (i32.gt_u (local.get $oplen) (i32.const 256)) (i32.ne (local.get $plen) (i32.const 4)))
      (then
        (call $guest_error (i32.const 512) (i32.const 23))
        (return (i32.const 0))))
    (call $guest_request (i32.const 0) (i32.const 256))
    (local.set $n
      (i32.or
        (i32.or
          (i32.shl (i32.load8_u (i32.const 256)) (i32.const 24))
          (i32.shl (i32.load8_u (i32.const 257)) (i32.const 16)))
        (i32.or
          (i32.shl (i32.load8_u (i32.const 258)) (i32.const 8))
          (i32.load8_u (i32.const 259)))))
    (local.set $x (i64.const 0x9e3779b97f4a7c15))
    (block $done
      (loop $step
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $step)))
    (i64.store (i32.const 1024) (local.get $x))
    (call $guest_response (i32.const 1024) (i32.const 8))
    (i32.const 1)))
