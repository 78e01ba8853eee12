package actor

import (
	"encoding/binary"
	"errors"
	"time"
)

// Log writes one line to the stick's log under the actor's name (grant
// "log").
func Log(msg string) error {
	_, err := Call("log", "info", []byte(msg))
	return err
}

// SHA256 hashes data on the host (grant "crypto" or "crypto.sha256"): at
// native speed, not the interpreter's.
func SHA256(data []byte) ([32]byte, error) {
	// The host writes into a package buffer, not a local: a pointer handed
	// to the host would move the local to the heap. Go on wasm runs one
	// goroutine at a time and never switches inside callInto, so the
	// buffer is never shared.
	err := callInto("crypto", "sha256", data, digest[:])
	return digest, err
}

var digest [32]byte

// Sign signs msg with the stick's result key (grant "crypto.sign"): a
// 64-byte Ed25519 signature over runtime.ActorMessage(actor CID, msg),
// never over msg alone.
func Sign(msg []byte) ([]byte, error) { return Call("crypto", "sign", msg) }

// VerifyEd25519 checks an Ed25519 signature (grant "crypto.verify.ed25519").
func VerifyEd25519(pub, sig, msg []byte) (bool, error) {
	if len(pub) != 32 || len(sig) != 64 {
		return false, errors.New("actor: Ed25519 keys are 32 bytes, signatures 64")
	}
	p := append(append(append([]byte{}, pub...), sig...), msg...)
	out, err := Call("crypto", "verify.ed25519", p)
	return err == nil && len(out) == 1 && out[0] == 1, err
}

// KVGet, KVPut and KVDelete use the actor's own key-value namespace (grant
// "kv").
func KVGet(key string) ([]byte, error) { return Call("kv", "get", []byte(key)) }

func KVPut(key string, value []byte) error {
	if len(key) > 0xffff {
		return errors.New("actor: key too long")
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(len(key)))
	p = append(append(p, key...), value...)
	_, err := Call("kv", "put", p)
	return err
}

func KVDelete(key string) error {
	_, err := Call("kv", "delete", []byte(key))
	return err
}

// IPFSGet returns one verified block by CID (grant "ipfs" or "ipfs.get").
func IPFSGet(cid string) ([]byte, error) { return Call("ipfs", "get", []byte(cid)) }

// IPFSCat returns a whole UnixFS file by CID, every block verified by the
// stick (grant "ipfs" or "ipfs.cat").
func IPFSCat(cid string) ([]byte, error) { return Call("ipfs", "cat", []byte(cid)) }

// IPFSPut stores a raw block on the box and returns its CID (grant
// "ipfs.put").
func IPFSPut(block []byte) (string, error) {
	out, err := Call("ipfs", "put", block)
	return string(out), err
}

// Now reads the stick's real clock (grant "clock").
func Now() (time.Time, error) {
	out, err := Call("clock", "now", nil)
	if err != nil {
		return time.Time{}, err
	}
	if len(out) != 8 {
		return time.Time{}, errors.New("actor: clock.now answered with a malformed time")
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(out))), nil
}

// Random returns n random bytes from the stick (grant "random").
func Random(n int) ([]byte, error) {
	return Call("random", "bytes", binary.BigEndian.AppendUint32(nil, uint32(n)))
}
