//go:build native

package main

// The release's native actors (make release / make qemu NATIVE=1): the
// package `teactl release translate` wrote, whose init registers each
// translation with runtime/native and sets image/nativetable.Embedded.
import _ "github.com/teastick/teastick/build/_native/stick"
