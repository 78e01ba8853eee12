;; preinit.wat: a waPC actor whose initializers leave state everywhere a
;; pre-initialized instance must have it (RATIONALE.md, "Pre-initialized
;; instances"): a grown memory, a data segment overwritten, mutable globals
;; of the four number types, the WASI virtual clock, and random_get's
;; answer (refused without the grant random).
;;
;; _initialize grows the memory by one page and stores 0xdeadbeef at its
;; start (65536), overwrites the data segment's first byte (16), reads the
;; real-time and the monotonic clock (at 100 and 108), stores random_get's
;; errno (at 116), and sets $a -5, $b, $c -1.5 and $d 3.25; wapc_init then
;; adds 1 to $a (the second initializer sees the first's state). A call
;; answers $a(4) $b(8) $c(4) $d(8) || memory[16..24) || memory[100..120)
;; || memory[65536..65540) || memory.size(4) || a monotonic clock read
;; now(8), all little-endian.
(module
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $a (mut i32) (i32.const 0))
  (global $b (mut i64) (i64.const 0))
  (global $c (mut f32) (f32.const 0))
  (global $d (mut f64) (f64.const 0))
  (global $k i32 (i32.const 7))
  (data (i32.const 16) "initial!")

  (func (export "_initialize")
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 65536) (i32.const 0xdeadbeef))
    (i32.store8 (i32.const 16) (i32.const 0x49))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 100)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 108)))
    (i32.store (i32.const 116) (call $random (i32.const 200) (i32.const 8)))
    (global.set $a (i32.const -5))
    (global.set $b (i64.const 0x123456789abcdef0))
    (global.set $c (f32.const -1.5))
    (global.set $d (f64.const 3.25)))

  (func (export "wapc_init")
    (global.set $a (i32.add (global.get $a) (i32.sub (global.get $k) (i32.const 6)))))

  (func (export "__guest_call") (param i32 i32) (result i32)
    (i32.store (i32.const 1024) (global.get $a))
    (i64.store (i32.const 1028) (global.get $b))
    (f32.store (i32.const 1036) (global.get $c))
    (f64.store (i32.const 1040) (global.get $d))
    (memory.copy (i32.const 1048) (i32.const 16) (i32.const 8))
    (memory.copy (i32.const 1056) (i32.const 100) (i32.const 20))
    (memory.copy (i32.const 1076) (i32.const 65536) (i32.const 4))
    (i32.store (i32.const 1080) (memory.size))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 1084)))
    (call $guest_response (i32.const 1024) (i32.const 68))
    (i32.const 1)))
