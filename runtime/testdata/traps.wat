;; traps.wat: one WebAssembly trap per operation, to check that each
;; becomes the same error natively as in the interpreter (issue 18). The
;; first byte of the operation picks it:
;;   u unreachable        l load out of bounds   s store out of bounds
;;   d i32.div_u by zero   r i64.rem_s by zero    o i32.div_s overflow
;;   n i32.trunc_f32_s of NaN   b i64.trunc_f64_u of 1e300
;;   t call_indirect past the table   e call_indirect of a null entry
;;   y call_indirect with another type   f memory.fill out of bounds
;;   c memory.copy out of bounds   anything else: succeed
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 3 funcref)
  (elem (i32.const 0) $one)
  (func $one (result i32) (i32.const 1))
  (func (export "__guest_call") (param $oplen i32) (param $plen i32) (result i32)
    (local $op i32)
    (call $guest_request (i32.const 0) (i32.const 256))
    (local.set $op (i32.load8_u (i32.const 0)))
    (if (i32.eq (local.get $op) (i32.const 0x75)) (then unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x6c)) (then (drop (i32.load (i32.const 65534)))))
    (if (i32.eq (local.get $op) (i32.const 0x73)) (then (i64.store (i32.const -1) (i64.const 1))))
    (if (i32.eq (local.get $op) (i32.const 0x64)) (then (drop (i32.div_u (i32.const 1) (local.get $plen)))))
    (if (i32.eq (local.get $op) (i32.const 0x72)) (then (drop (i64.rem_s (i64.const 1) (i64.extend_i32_u (local.get $plen))))))
    (if (i32.eq (local.get $op) (i32.const 0x6f)) (then (drop (i32.div_s (i32.const 0x80000000) (i32.sub (local.get $plen) (i32.const 1))))))
    (if (i32.eq (local.get $op) (i32.const 0x6e)) (then (drop (i32.trunc_f32_s (f32.div (f32.const 0) (f32.convert_i32_u (local.get $plen)))))))
    (if (i32.eq (local.get $op) (i32.const 0x62)) (then (drop (i64.trunc_f64_u (f64.add (f64.const 1e300) (f64.convert_i32_u (local.get $plen)))))))
    (if (i32.eq (local.get $op) (i32.const 0x74)) (then (drop (call_indirect (type $v_i) (i32.add (i32.const 7) (local.get $plen))))))
    (if (i32.eq (local.get $op) (i32.const 0x65)) (then (drop (call_indirect (type $v_i) (i32.add (i32.const 2) (local.get $plen))))))
    (if (i32.eq (local.get $op) (i32.const 0x79)) (then (drop (call_indirect (type $i_i) (i32.const 5) (local.get $plen)))))
    (if (i32.eq (local.get $op) (i32.const 0x66)) (then (memory.fill (i32.const 65000) (i32.const 0) (i32.add (i32.const 1000) (local.get $plen)))))
    (if (i32.eq (local.get $op) (i32.const 0x63)) (then (memory.copy (i32.const 0) (i32.const 65000) (i32.add (i32.const 1000) (local.get $plen)))))
    (i32.const 1)))
