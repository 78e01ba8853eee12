// Package rt is the runtime tests' table of native actors:
// runtime/internal/nativegen (make runtime-prep, which make test runs)
// writes one package per translated test actor beside this file and
// actors.go, which imports them all; the tests import this package under
// the build tag nativegen. Only this file is committed: without a
// translation the table is empty.
package rt
