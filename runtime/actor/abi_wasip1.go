//go:build wasip1

package actor

import (
	"strconv"
	"unsafe"
)

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

// sptr points at a string's bytes: the host only reads them, so names go
// out without a copy.
func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// The request buffers are reused from call to call: a fresh megabyte per
// call would cost the guest an allocation, zeroing and garbage collection
// that dwarf the work (a 1 MiB SHA-256 through the crypto capability took
// 36 times native Go that way). Handlers get a payload valid until they
// return.
//
// The rest of the path allocates as little as it can too: under wazero's
// interpreter each Go function call and allocation costs about a
// microsecond, and a call used to spend 50 of them on bookkeeping.
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
	guestRequest(ptr(opBuf), ptr(reqBuf))
	out, err := dispatch(opBuf, reqBuf)
	if err != nil {
		msg := []byte(err.Error())
		guestError(ptr(msg), uint32(len(msg)))
		return 0
	}
	guestResponse(ptr(out), uint32(len(out)))
	return 1
}

// hostCallFailed makes the error of a failed __host_call.
func hostCallFailed(namespace, operation string) error {
	msg := make([]byte, hostErrorLen())
	hostError(ptr(msg))
	return &HostError{Namespace: namespace, Operation: operation, Message: string(msg)}
}

// Call invokes a capability: namespace.operation with payload.
func Call(namespace, operation string, payload []byte) ([]byte, error) {
	if hostCall(nil, 0, sptr(namespace), uint32(len(namespace)), sptr(operation), uint32(len(operation)), ptr(payload), uint32(len(payload))) != 1 {
		return nil, hostCallFailed(namespace, operation)
	}
	out := make([]byte, hostResponseLen())
	hostResponse(ptr(out))
	return out, nil
}

// callInto is Call for an answer of exactly len(dst) bytes, written into
// dst.
func callInto(namespace, operation string, payload, dst []byte) error {
	if hostCall(nil, 0, sptr(namespace), uint32(len(namespace)), sptr(operation), uint32(len(operation)), ptr(payload), uint32(len(payload))) != 1 {
		return hostCallFailed(namespace, operation)
	}
	if n := hostResponseLen(); n != uint32(len(dst)) {
		return &HostError{Namespace: namespace, Operation: operation, Message: "answered with " + strconv.Itoa(int(n)) + " bytes, not " + strconv.Itoa(len(dst))}
	}
	hostResponse(ptr(dst))
	return nil
}
