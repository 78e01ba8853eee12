//go:build wasip1

// Command notary hashes and signs what it is given, through the crypto
// capability: the hash runs natively on the stick, the signature is made by
// the stick's result key.
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/teastick/teastick/runtime/actor"
)

// Statement is what "notarize" returns. The signature covers
// runtime.ActorMessage(notary CID, SHA256 digest bytes).
type Statement struct {
	SHA256    string `json:"sha256"`
	Size      int    `json:"size"`
	Signature string `json:"signature"`
}

func init() {
	actor.Handle("hash", func(p []byte) ([]byte, error) {
		d, err := actor.SHA256(p)
		return d[:], err
	})
	actor.Handle("notarize", func(p []byte) ([]byte, error) {
		d, err := actor.SHA256(p)
		if err != nil {
			return nil, err
		}
		sig, err := actor.Sign(d[:])
		if err != nil {
			return nil, err
		}
		return json.Marshal(Statement{
			SHA256:    hex.EncodeToString(d[:]),
			Size:      len(p),
			Signature: base64.StdEncoding.EncodeToString(sig),
		})
	})
}

func main() {}
