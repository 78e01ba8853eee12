;; datasign1.wat: a data segment at i32.const -1, one byte of signed
;; LEB128 (0x7f), beside two the runtime would merge. wazero refuses it
;; (out of bounds); read as unsigned it would be offset 127 and load.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "a")
  (data (i32.const 4) "b")
  (data (i32.const -1) "x")
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
