;; dispatch.wat: a state machine shaped as Go's WebAssembly backend writes
;; every function (issue 18): a loop around a br_table on the resume
;; point, each state ending by setting the next one and branching back to
;; the loop. Translated, its constant transitions become direct jumps
;; (runtime/native/translate, directDispatch), each still paying the
;; meter's check of the loop header. The first byte of the operation
;; picks:
;;   run    run the machine from state 0 for the payload's first four
;;          bytes (u32, LE) rounds and answer its checksum (u32, LE):
;;          constant jumps, one computed jump (state 1), a state that
;;          falls into the next (2 into 3), and an exit through br_table's
;;          default (state 5, in no case)
;;   spin   run it from state 4, which jumps to itself forever: only the
;;          meter can end it (deadline), as in spin.wat
;;   ping   succeed at once
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (memory (export "memory") 1)

  (func $machine (param $state i32) (param $n i32) (result i32)
    (local $acc i32)
    (loop $top
      (block $exit
        (block $s4
          (block $s3
            (block $s2
              (block $s1
                (block $s0
                  (br_table $s0 $s1 $s2 $s3 $s4 $exit (local.get $state)))
                ;; state 0: mix the round in, then state 1
                (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $n)))
                (local.set $state (i32.const 1))
                (br $top))
              ;; state 1: one round less; none left: state 5 (the exit);
              ;; else state 2 or 3 by the round's parity (a computed jump)
              (if (i32.eqz (local.get $n))
                (then (local.set $state (i32.const 5)) (br $top)))
              (local.set $n (i32.sub (local.get $n) (i32.const 1)))
              (local.set $state (i32.add (i32.const 2) (i32.and (local.get $n) (i32.const 1))))
              (br $top))
            ;; state 2: falls into state 3
            (local.set $acc (i32.xor (local.get $acc) (i32.const 0x5bd1e995))))
          ;; state 3: then state 0
          (local.set $acc (i32.rotl (local.get $acc) (i32.const 5)))
          (local.set $state (i32.const 0))
          (br $top))
        ;; state 4: itself, forever
        (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
        (local.set $state (i32.const 4))
        (br $top)))
    (local.get $acc))

  (func (export "__guest_call") (param $oplen i32) (param $len i32) (result i32)
    ;; operation at 0, payload at 256
    (call $guest_request (i32.const 0) (i32.const 256))
    (block $done
      (block $ping
        (block $spin
          (block $run
            (br_if $run (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0x72)))   ;; r
            (br_if $spin (i32.eq (i32.load8_u (i32.const 0)) (i32.const 0x73))) ;; s
            (br $ping))
          (i32.store (i32.const 512) (call $machine (i32.const 0) (i32.load (i32.const 256))))
          (call $guest_response (i32.const 512) (i32.const 4))
          (br $done))
        (drop (call $machine (i32.const 4) (i32.const 0)))
        (br $done))
      (nop))
    (i32.const 1)))
