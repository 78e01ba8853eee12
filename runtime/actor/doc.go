// Package actor is the Go SDK for teastick actors: WebAssembly modules built
// with the standard Go toolchain,
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o echo.wasm ./echo
//
// that speak waPC (runtime/ABI.md). Register handlers in init functions;
// main is never called (a c-shared module is a WASI reactor):
//
//	func init() { actor.Handle("echo", func(p []byte) ([]byte, error) { return p, nil }) }
//	func main() {}
//
// A handler's payload is valid until it returns (the SDK reuses the buffer
// from call to call); copy what outlives the call.
//
// Capabilities are plain calls (Log, SHA256, Sign, KVGet, IPFSCat...); each
// fails with the stick's error text when the actor's manifest entry does not
// grant it. Outside wasip1 the package builds, and every call fails with
// ErrNotActor, so code using it can be unit-tested natively.
package actor

import "errors"

// Handler serves one operation.
type Handler func(payload []byte) ([]byte, error)

// ErrNotActor is returned by capability calls outside a WebAssembly actor.
var ErrNotActor = errors.New("actor: not running as a teastick actor")

// HostError is an error the stick returned to a capability call.
type HostError struct {
	Namespace, Operation, Message string
}

func (e *HostError) Error() string {
	return e.Namespace + "." + e.Operation + ": " + e.Message
}

// handlers is a list, not a map: an actor has a handful of operations,
// and comparing them is cheaper than hashing under the interpreter.
var handlers []handler

type handler struct {
	op string
	h  Handler
}

// Handle registers h for operation op, replacing an earlier handler for
// op. Call it from init.
func Handle(op string, h Handler) {
	for i := range handlers {
		if handlers[i].op == op {
			handlers[i].h = h
			return
		}
	}
	handlers = append(handlers, handler{op, h})
}

// dispatch runs the handler for op.
func dispatch(op, payload []byte) ([]byte, error) {
	for i := range handlers {
		if handlers[i].op == string(op) {
			return handlers[i].h(payload)
		}
	}
	return nil, errors.New("unknown operation " + string(op))
}
