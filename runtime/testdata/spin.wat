;; spin.wat: a waPC actor that never answers (issue 13). An operation of
;; four bytes ("ping") answers at once; any other spins in an empty loop,
;; with no call and no memory access the runtime could stop it at. The
;; meter must end it at the deadline, with no help from preemption or
;; wazero's context watcher, and the actor must answer "ping" after.
(module
  (memory (export "memory") 1)
  (func (export "__guest_call") (param $op i32) (param $len i32) (result i32)
    (if (i32.eq (local.get $op) (i32.const 4))
      (then (return (i32.const 1))))
    (loop $l (br $l))
    (i32.const 1)))
