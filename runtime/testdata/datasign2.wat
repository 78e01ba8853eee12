;; datasign2.wat: data segments at i32.const -64 (0x40) and -129 (0xff
;; 0x7e), which read as unsigned would be 64 and 16255, inside the page.
;; wazero refuses both.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "a")
  (data (i32.const 8) "b")
  (data (i32.const -129) "x")
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
