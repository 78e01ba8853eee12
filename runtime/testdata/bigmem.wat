;; Asks for 1000 pages (62.5 MiB) of memory at start, above the default limit.
(module
  (memory (export "memory") 1000)
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
