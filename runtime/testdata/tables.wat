;; tables.wat: every table instruction, in bounds and out of bounds, to
;; check that each gives the same result or trap natively as in the
;; interpreter (issue 18; WebAssembly 2.0 §4.4.6, table instructions:
;; an index or a range past a table's or an element segment's length
;; traps, wazero's "invalid table access").
;;
;; The payload holds three u32 operands, little-endian: a (the index or
;; the destination), b (the source) and c (the count); missing bytes are
;; 0. The first byte of the operation picks the instruction:
;;   g  table.get $t a               respond ref.is_null (1 byte) first
;;   s  table.set $t a (ref.func $f2)
;;   n  table.set $t a (ref.null func)
;;   f  table.fill $t a (ref.func $f3) c
;;   c  table.copy $t $t a b c
;;   C  table.copy $t $u a b c       (into $t from $u)
;;   U  table.copy $u $t a b c       (into $u from $t)
;;   i  table.init $t $p a b c       ($p: passive, 3 entries)
;;   a  table.init $t $act a b c     ($act: active, dropped at instantiation)
;;   d  elem.drop $p, then table.init $t $p a b c
;;   w  table.grow $t (ref.func $f1) c   respond the result (4 bytes) first
;;   x  table.grow $u (ref.null func) c  (both tables have a maximum)
;;   anything else: only the snapshot
;; Every operation that returns responds with a snapshot of both tables
;; after it: for each, table.size (4 bytes) then one byte per entry (the
;; first 16): 0 for a null entry, else what call_indirect of it returns.
;; Element segments and tables keep their state across the calls an
;; instance serves.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (type $v_i (func (result i32)))
  (memory (export "memory") 1)
  (table $t 4 8 funcref)
  (table $u 2 16 funcref)
  (elem $act (table $t) (i32.const 0) func $f1)
  (elem $p func $f1 $f2 $f3)
  (func $f1 (type $v_i) (i32.const 1))
  (func $f2 (type $v_i) (i32.const 2))
  (func $f3 (type $v_i) (i32.const 3))

  (func $snapt (param $p i32) (result i32)
    (local $i i32) (local $n i32)
    (local.set $n (table.size $t))
    (i32.store (local.get $p) (local.get $n))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.ge_u (local.get $i) (i32.const 16)))
        (i32.store8 (local.get $p)
          (if (result i32) (ref.is_null (table.get $t (local.get $i)))
            (then (i32.const 0))
            (else (call_indirect $t (type $v_i) (local.get $i)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $p))

  (func $snapu (param $p i32) (result i32)
    (local $i i32) (local $n i32)
    (local.set $n (table.size $u))
    (i32.store (local.get $p) (local.get $n))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.ge_u (local.get $i) (i32.const 16)))
        (i32.store8 (local.get $p)
          (if (result i32) (ref.is_null (table.get $u (local.get $i)))
            (then (i32.const 0))
            (else (call_indirect $u (type $v_i) (local.get $i)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $p))

  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $op i32) (local $a i32) (local $b i32) (local $c i32) (local $p i32)
    (i32.store8 (i32.const 0) (i32.const 0))
    (i64.store (i32.const 4096) (i64.const 0))
    (i32.store (i32.const 4104) (i32.const 0))
    (call $guest_request (i32.const 0) (i32.const 4096))
    (local.set $op (i32.load8_u (i32.const 0)))
    (local.set $a (i32.load (i32.const 4096)))
    (local.set $b (i32.load (i32.const 4100)))
    (local.set $c (i32.load (i32.const 4104)))
    (local.set $p (i32.const 1024))
    (if (i32.eq (local.get $op) (i32.const 0x67)) ;; g
      (then
        (i32.store8 (local.get $p) (ref.is_null (table.get $t (local.get $a))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 0x73)) ;; s
      (then (table.set $t (local.get $a) (ref.func $f2))))
    (if (i32.eq (local.get $op) (i32.const 0x6e)) ;; n
      (then (table.set $t (local.get $a) (ref.null func))))
    (if (i32.eq (local.get $op) (i32.const 0x66)) ;; f
      (then (table.fill $t (local.get $a) (ref.func $f3) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x63)) ;; c
      (then (table.copy $t $t (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x43)) ;; C
      (then (table.copy $t $u (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x55)) ;; U
      (then (table.copy $u $t (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x69)) ;; i
      (then (table.init $t $p (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x61)) ;; a
      (then (table.init $t $act (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x64)) ;; d
      (then
        (elem.drop $p)
        (table.init $t $p (local.get $a) (local.get $b) (local.get $c))))
    (if (i32.eq (local.get $op) (i32.const 0x77)) ;; w
      (then
        (i32.store (local.get $p) (table.grow $t (ref.func $f1) (local.get $c)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (if (i32.eq (local.get $op) (i32.const 0x78)) ;; x
      (then
        (i32.store (local.get $p) (table.grow $u (ref.null func) (local.get $c)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (local.set $p (call $snapu (call $snapt (local.get $p))))
    (call $guest_response (i32.const 1024) (i32.sub (local.get $p) (i32.const 1024)))
    (i32.const 1)))
