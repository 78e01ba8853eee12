;; A table with no declared maximum: its initializer grows it by 100
;; elements, which must succeed, then by runtime.MaxTableElements more,
;; which must fail (-1) rather than allocate; either surprise traps, and
;; the actor does not load.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "_initialize")
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 100)) (i32.const -1))
      (then unreachable))
    (if (i32.ne (table.grow $t (ref.null func) (i32.const 131072)) (i32.const -1))
      (then unreachable)))
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
