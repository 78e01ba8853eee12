// Package stick is the stick image's table of native actors: `teactl
// release translate` (make release, make qemu NATIVE=1) writes one package
// per translated actor beside this file and actors.go, which imports them
// all; firmware/stick imports this package under the build tag native.
// Only this file is committed: without a translation the table is empty.
package stick
