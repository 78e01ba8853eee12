;; Asks for a table of 200,000 elements at start, above runtime.MaxTableElements.
(module
  (memory (export "memory") 1)
  (table 200000 funcref)
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
