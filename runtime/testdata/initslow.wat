;; initslow.wat: its WASI reactor initializer counts to 2^22 before it
;; returns: longer than the 1 ms timeout its test gives each call, far
;; shorter than the initializers' own deadline (Config.InitTimeout). It must
;; load, and so must the instances a busy pool adds.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4194304)))))
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
