;; fdwrite.wat: a waPC actor that writes one large buffer to stdout through
;; many iovecs in a single fd_write, to check that the host's work is linear
;; in what it is given and bounded by the call's deadline.
;;
;; The request payload is count(4, LE) || length(4, LE): the actor builds
;; `count` iovecs at 8192 that all point at the first `length` bytes of its
;; 4 MiB buffer at 64 KiB ('a's: no newline anywhere), and calls
;; fd_write(1, iovs, count, &nwritten). It responds errno(1) || nwritten(4,
;; LE). count is at most 7168 (the iovec array ends below 64 KiB), length
;; at most 4 MiB. The buffer is in the initial memory, so the call's
;; deadline is spent in fd_write, not in growing or filling memory (the
;; start function fills it when the instance is created).
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 65) ;; 64 KiB, then the 4 MiB buffer

  (func $fill (memory.fill (i32.const 65536) (i32.const 0x61) (i32.const 0x400000)))
  (start $fill)

  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $count i32) (local $len i32) (local $i i32)
    (if (i32.gt_u (i32.add (local.get $oplen) (local.get $plen)) (i32.const 1024)) (then unreachable))
    (call $guest_request (i32.const 0) (i32.const 512))
    (local.set $count (i32.load (i32.const 512)))
    (local.set $len (i32.load (i32.const 516)))
    (if (i32.gt_u (local.get $count) (i32.const 7168)) (then unreachable))
    (if (i32.gt_u (local.get $len) (i32.const 0x400000)) (then unreachable))
    (local.set $i (i32.const 0))
    (block $done
      (loop $iov
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store (i32.add (i32.const 8192) (i32.shl (local.get $i) (i32.const 3))) (i32.const 65536))
        (i32.store (i32.add (i32.const 8196) (i32.shl (local.get $i) (i32.const 3))) (local.get $len))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iov)))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store8 (i32.const 1024)
      (call $fd_write (i32.const 1) (i32.const 8192) (local.get $count) (i32.const 1028)))
    ;; response: errno at 1027, nwritten at 1028
    (i32.store8 (i32.const 1027) (i32.load8_u (i32.const 1024)))
    (call $guest_response (i32.const 1027) (i32.const 5))
    (i32.const 1))
)
