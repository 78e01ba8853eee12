// Package meteroff lets the runtime's benchmarks load an actor without the
// meter, to price it. Being internal to runtime/, only the runtime's own
// packages (its tests and runtime/benchmode) can import it: neither a
// manifest nor the stick's core has a way to turn metering off.
package meteroff

import "context"

type key struct{}

// Context returns ctx marked so that an actor loaded with it runs
// unmetered, with wazero's context watcher as its only deadline. For
// benchmarks only: such an actor can hold the stick's core for good.
func Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, true)
}

// Off reports whether ctx was marked by Context.
func Off(ctx context.Context) bool {
	off, _ := ctx.Value(key{}).(bool)
	return off
}
