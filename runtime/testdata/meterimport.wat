;; meterimport.wat: an actor that imports the meter's own yield function,
;; reserved for the runtime's checks; it must be refused.
(module
  (import "teastick:meter" "yield" (func $yield (result i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32) (call $yield)))
