;; datasign3.wat: a data segment at i32.const -64, one byte 0x40 of signed
;; LEB128, read as unsigned offset 64. wazero refuses it.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "a")
  (data (i32.const 8) "b")
  (data (i32.const -64) "x")
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
