;; edge.wat: a waPC actor written by hand for the runtime's edge cases.
;; The first byte of the operation picks the behaviour:
;;   echo      respond with the payload
;;   trap      unreachable
;;   loop      loop forever (the deadline must stop it)
;;   grow      grow memory one page at a time until refused, then trap
;;   huge      respond with 2 GiB (over any max_response)
;;   oob       respond from outside memory (ABI violation)
;;   request   ask for the request at an address outside memory
;;   fail      return the guest error "edge: asked to fail"
;;   call      host call: payload = nslen(1) ns oplen(1) op data;
;;             respond with the host's response or fail with its error
;;   nothing   succeed without a response
;;   print     fd_write the payload to stdout; respond with the errno (1 byte)
;;   xrandom   random_get 16 bytes; respond errno(1) || bytes(16)
;;   klock     clock_time_get monotonic twice; respond t1(8) || t2(8), LE
;;   sleep     poll_oneoff on a 10 s relative clock; respond with the errno
;;   zopen     path_open (a WASI call teastick does not provide); respond errno
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 600) "edge: asked to fail")
  (data (i32.const 640) "edge: unknown operation")

  ;; ensure memory holds [0, end)
  (func $ensure (param $end i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1)))
              (i32.const -1))
          (then unreachable)))))

  ;; respond with one byte
  (func $byte (param $b i32) (result i32)
    (i32.store8 (i32.const 800) (local.get $b))
    (call $guest_response (i32.const 800) (i32.const 1))
    (i32.const 1))

  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $op i32) (local $ns i32) (local $nslen i32) (local $o i32) (local $olen i32) (local $d i32) (local $n i32)
    (call $ensure (i32.add (i32.const 1024) (local.get $plen)))
    (call $guest_request (i32.const 0) (i32.const 1024))
    (local.set $op (i32.load8_u (i32.const 0)))

    (if (i32.eq (local.get $op) (i32.const 0x65)) ;; e
      (then (call $guest_response (i32.const 1024) (local.get $plen)) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x74)) ;; t
      (then unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x6c)) ;; l
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $op) (i32.const 0x67)) ;; g
      (then
        (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x68)) ;; h
      (then (call $guest_response (i32.const 0) (i32.const 0x7fffffff)) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x6f)) ;; o
      (then (call $guest_response (i32.const 0x7ffffff0) (i32.const 64)) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x72)) ;; r
      (then (call $guest_request (i32.const 0x7ffffff0) (i32.const 0x7ffffff0)) (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x66)) ;; f
      (then (call $guest_error (i32.const 600) (i32.const 19)) (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 0x6e)) ;; n
      (then (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x63)) ;; c
      (then
        (local.set $nslen (i32.load8_u (i32.const 1024)))
        (local.set $ns (i32.const 1025))
        (local.set $olen (i32.load8_u (i32.add (local.get $ns) (local.get $nslen))))
        (local.set $o (i32.add (i32.add (local.get $ns) (local.get $nslen)) (i32.const 1)))
        (local.set $d (i32.add (local.get $o) (local.get $olen)))
        (if (call $host_call (i32.const 0) (i32.const 0)
              (local.get $ns) (local.get $nslen) (local.get $o) (local.get $olen)
              (local.get $d) (i32.sub (i32.add (i32.const 1024) (local.get $plen)) (local.get $d)))
          (then
            (local.set $n (call $host_response_len))
            (call $ensure (i32.add (i32.const 1024) (local.get $n)))
            (call $host_response (i32.const 1024))
            (call $guest_response (i32.const 1024) (local.get $n))
            (return (i32.const 1))))
        (local.set $n (call $host_error_len))
        (call $ensure (i32.add (i32.const 1024) (local.get $n)))
        (call $host_error (i32.const 1024))
        (call $guest_error (i32.const 1024) (local.get $n))
        (return (i32.const 0))))
    (if (i32.eq (local.get $op) (i32.const 0x70)) ;; p: iovec at 896
      (then
        (i32.store (i32.const 896) (i32.const 1024))
        (i32.store (i32.const 900) (local.get $plen))
        (return (call $byte (call $fd_write (i32.const 1) (i32.const 896) (i32.const 1) (i32.const 904))))))
    (if (i32.eq (local.get $op) (i32.const 0x78)) ;; x
      (then
        (i32.store8 (i32.const 800) (call $random_get (i32.const 801) (i32.const 16)))
        (call $guest_response (i32.const 800) (i32.const 17))
        (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x6b)) ;; k
      (then
        (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 800)))
        (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 808)))
        (call $guest_response (i32.const 800) (i32.const 16))
        (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x73)) ;; s: one clock subscription at 896
      (then
        (i64.store (i32.const 896) (i64.const 7))           ;; userdata
        (i32.store8 (i32.const 904) (i32.const 0))          ;; tag: clock
        (i32.store (i32.const 912) (i32.const 1))           ;; monotonic
        (i64.store (i32.const 920) (i64.const 10000000000)) ;; 10 s
        (i64.store (i32.const 928) (i64.const 0))
        (i32.store16 (i32.const 936) (i32.const 0))         ;; relative
        (return (call $byte (call $poll_oneoff (i32.const 896) (i32.const 944) (i32.const 1) (i32.const 980))))))
    (if (i32.eq (local.get $op) (i32.const 0x7a)) ;; z
      (then
        (return (call $byte (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $plen)
          (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 800))))))
    (call $guest_error (i32.const 640) (i32.const 23))
    (i32.const 0))
)
