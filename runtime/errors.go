package runtime

import "errors"

// Errors returned by Load, Upgrade and Invoke, for errors.Is. Each names a
// cause a caller can act on; the API maps them to HTTP statuses.
var (
	// ErrUnknownActor: no actor by that name is loaded.
	ErrUnknownActor = errors.New("runtime: unknown actor")
	// ErrCIDMismatch: the module bytes are not what the CID names. Checked
	// before anything else looks at the bytes.
	ErrCIDMismatch = errors.New("runtime: module does not match its CID")
	// ErrInvalidModule: the bytes are not a WebAssembly module the runtime
	// can run (malformed, bad exports, imports it does not provide, memory
	// above its limit, or an initializer that failed).
	ErrInvalidModule = errors.New("runtime: invalid actor module")
	// ErrInvalidLimits: a limit above what the runtime allows.
	ErrInvalidLimits = errors.New("runtime: invalid limits")
	// ErrRequestTooLarge: the payload exceeds the actor's max_request.
	ErrRequestTooLarge = errors.New("runtime: request too large")
	// ErrResponseTooLarge: the actor answered with more than max_response.
	ErrResponseTooLarge = errors.New("runtime: response too large")
	// ErrBusy: all of the actor's max_concurrent calls are in flight and
	// none finished within the queue wait.
	ErrBusy = errors.New("runtime: actor busy")
	// ErrDeadline: the call ran past the actor's timeout and was stopped.
	ErrDeadline = errors.New("runtime: deadline exceeded")
	// ErrTrap: the actor trapped (unreachable, out-of-bounds access, out of
	// memory, a stack overflow, an exit) or broke the ABI.
	ErrTrap = errors.New("runtime: actor trapped")
	// ErrActor: the actor ran normally and returned an error of its own
	// (waPC __guest_error, or a failure result); wrapped in *ActorError.
	ErrActor = errors.New("runtime: actor returned an error")
	// ErrClosed: the runtime was closed.
	ErrClosed = errors.New("runtime: closed")
	// ErrDenied: a capability the actor was not granted. The actor sees it
	// as a host error; it never reaches the provider.
	ErrDenied = errors.New("capability not granted")
)

// ActorError is an error the actor itself reported.
type ActorError struct {
	Actor   string
	Message string
}

func (e *ActorError) Error() string {
	return "actor " + e.Actor + ": " + e.Message
}

func (e *ActorError) Unwrap() error { return ErrActor }
