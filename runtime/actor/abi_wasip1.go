//go:build wasip1

package actor

import "unsafe"

//go:wasmimport wapc __guest_request
func guestRequest(op, payload unsafe.Pointer)

//go:wasmimport wapc __guest_response
func guestResponse(ptr unsafe.Pointer, n uint32)

//go:wasmimport wapc __guest_error
func guestError(ptr unsafe.Pointer, n uint32)

//go:wasmimport wapc __host_call
func hostCall(bd unsafe.Pointer, bdLen uint32, ns unsafe.Pointer, nsLen uint32, op unsafe.Pointer, opLen uint32, p unsafe.Pointer, pLen uint32) uint32

//go:wasmimport wapc __host_response_len
func hostResponseLen() uint32

//go:wasmimport wapc __host_response
func hostResponse(ptr unsafe.Pointer)

//go:wasmimport wapc __host_error_len
func hostErrorLen() uint32

//go:wasmimport wapc __host_error
func hostError(ptr unsafe.Pointer)

// ptr returns a pointer usable for an empty slice too.
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// The request buffers are reused from call to call: a fresh megabyte per
// call would cost the guest an allocation, zeroing and garbage collection
// that dwarf the work (a 1 MiB SHA-256 through the crypto capability took
// 36 times native Go that way). Handlers get a payload valid until they
// return.
var opBuf, reqBuf []byte

func grow(b []byte, n uint32) []byte {
	if uint32(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

//go:wasmexport __guest_call
func guestCall(opLen, payloadLen uint32) uint32 {
	opBuf = grow(opBuf, opLen)
	reqBuf = grow(reqBuf, payloadLen)
	op, payload := opBuf, reqBuf
	guestRequest(ptr(op), ptr(payload))
	out, err := dispatch(string(op), payload)
	if err != nil {
		msg := []byte(err.Error())
		guestError(ptr(msg), uint32(len(msg)))
		return 0
	}
	guestResponse(ptr(out), uint32(len(out)))
	return 1
}

// Call invokes a capability: namespace.operation with payload.
func Call(namespace, operation string, payload []byte) ([]byte, error) {
	ns, op := []byte(namespace), []byte(operation)
	if hostCall(nil, 0, ptr(ns), uint32(len(ns)), ptr(op), uint32(len(op)), ptr(payload), uint32(len(payload))) != 1 {
		msg := make([]byte, hostErrorLen())
		hostError(ptr(msg))
		return nil, &HostError{Namespace: namespace, Operation: operation, Message: string(msg)}
	}
	out := make([]byte, hostResponseLen())
	hostResponse(ptr(out))
	return out, nil
}
