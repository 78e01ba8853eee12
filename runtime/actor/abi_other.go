//go:build !wasip1

package actor

// Call invokes a capability; outside an actor it always fails.
func Call(namespace, operation string, payload []byte) ([]byte, error) {
	return nil, ErrNotActor
}

func callInto(namespace, operation string, payload, dst []byte) error { return ErrNotActor }
