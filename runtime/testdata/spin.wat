;; spin.wat: a waPC actor whose __guest_call loops forever, with no imports
;; and no grants (issue 13's reproduction). Only the invocation's deadline
;; can end a call; it must not take the core from anyone else meanwhile.
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32)
    (loop $l (br $l))
    (i32.const 0)))
