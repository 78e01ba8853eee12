;; compute.wat: long finite computations for the meter. The first byte of
;; the operation picks one, the payload sizes it:
;;   fib    naive recursive Fibonacci of the payload's first byte: no loop
;;          at all, only calls (the meter's function-entry check bounds it)
;;   count  count down from the payload's first four bytes (u32, LE) in a
;;          loop of seven instructions; respond with nothing
;;   ping   succeed at once
;; fib answers the 8-byte result (i64, LE).
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 1)

  (func $fib (param $n i32) (result i64)
    (if (result i64) (i32.lt_u (local.get $n) (i32.const 2))
      (then (i64.extend_i32_u (local.get $n)))
      (else (i64.add
        (call $fib (i32.sub (local.get $n) (i32.const 1)))
        (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  (func $count (param $n i32)
    (if (i32.eqz (local.get $n)) (then (return)))
    ;; seven instructions, the loop's end included
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))

  (func (export "__guest_call") (param $oplen i32) (param $len i32) (result i32)
    ;; operation at 0, payload at 256
    (call $guest_request (i32.const 0) (i32.const 256))
    (block $done
      (block $ping
        (block $count
          (block $fib
            (br_if $fib (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0x66)))   ;; f
            (br_if $count (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0x63))) ;; c
            (br $ping))
          (i64.store (i32.const 512) (call $fib (i32.load8_u (i32.const 256))))
          (call $guest_response (i32.const 512) (i32.const 8))
          (br $done))
        (call $count (i32.load (i32.const 256)))
        (br $done))
      (nop))
    (i32.const 1)))
