;; recurse.wat: a waPC actor that recurses as deep as it is asked, to
;; check that runaway recursion traps ("stack overflow") natively as in
;; the interpreter instead of exhausting the stick's stack (issue 18).
;; The payload is n (4 bytes, LE); $down calls itself n times and the
;; response is n (4 bytes, LE).
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 1)
  (func $down (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (call $down (i32.sub (local.get $n) (i32.const 1))) (i32.const 1)))))
  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (call $guest_request (i32.const 0) (i32.const 256))
    (i32.store (i32.const 512) (call $down (i32.load (i32.const 256))))
    (call $guest_response (i32.const 512) (i32.const 4))
    (i32.const 1)))
