;; initspin.wat: its WASI reactor initializer never returns. The meter
;; must end it at its deadline (at least Config.InitTimeout), so the
;; actor fails to load rather than holding the core.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))
