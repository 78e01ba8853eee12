;; initprint.wat: a waPC actor whose initializer writes a line to stdout:
;; output a pre-initialized instance would not give, so its translation
;; runs the initializer on the stick (RATIONALE.md, "Pre-initialized
;; instances"). A call answers "ok".
(module
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "starting\n")
  (data (i32.const 32) "ok")
  (func (export "_initialize")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "__guest_call") (param i32 i32) (result i32)
    (call $guest_response (i32.const 32) (i32.const 2))
    (i32.const 1)))
