;; No __guest_call: not a waPC actor.
(module (memory (export "memory") 1) (func (export "run")))
