;; initcaps.wat: a waPC actor whose initializer uses capabilities, to check
;; that initializers run without them (ABI.md, "Initializers").
;;
;; _initialize calls kv.put("init", "I") through __host_call and reads the
;; real-time clock (clock_time_get, id 0); it records what it got at 512.
;; A call with an operation starting with 'i' answers that record; any
;; other operation makes the same calls itself, kv.put("call", "C"), and
;; answers its own record (at 1024). A record, and the response, is
;; clock(8, LE) || error length(4, LE) || __host_call result(1) || error
;; text.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 300) "kv")
  (data (i32.const 310) "put")
  (data (i32.const 320) "\00\04initI")
  (data (i32.const 340) "\00\04callC")

  ;; record makes the calls with kv.put's payload at $payload (7 bytes) and
  ;; writes their results at $base.
  (func $record (param $base i32) (param $payload i32)
    (local $r i32) (local $n i32)
    (local.set $r (call $host_call (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 2)
      (i32.const 310) (i32.const 3) (local.get $payload) (i32.const 7)))
    (i32.store8 offset=12 (local.get $base) (local.get $r))
    (i32.store offset=8 (local.get $base) (i32.const 0))
    (if (i32.eqz (local.get $r)) (then
      (local.set $n (call $host_error_len))
      (if (i32.gt_u (local.get $n) (i32.const 256)) (then unreachable))
      (i32.store offset=8 (local.get $base) (local.get $n))
      (call $host_error (i32.add (local.get $base) (i32.const 13)))))
    (drop (call $clock_time_get (i32.const 0) (i64.const 0) (local.get $base))))

  (func (export "_initialize") (call $record (i32.const 512) (i32.const 320)))

  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $base i32)
    (if (i32.gt_u (i32.add (local.get $oplen) (local.get $plen)) (i32.const 256)) (then unreachable))
    (call $guest_request (i32.const 2048) (i32.const 2304))
    (local.set $base (i32.const 512))
    (if (i32.ne (i32.load8_u (i32.const 2048)) (i32.const 0x69)) (then
      (local.set $base (i32.const 1024))
      (call $record (i32.const 1024) (i32.const 340))))
    (call $guest_response (local.get $base)
      (i32.add (i32.const 13) (i32.load offset=8 (local.get $base))))
    (i32.const 1)))
