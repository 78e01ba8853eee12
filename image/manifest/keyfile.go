package manifest

import (
	"crypto/ed25519"
	"encoding/pem"
	"errors"
)

// KeyPEMType is the PEM block type of a governance key file (teactl key
// generate): the Ed25519 seed, mode 0600.
const KeyPEMType = "TEASTICK GOVERNANCE KEY"

// ErrKeyFile: the bytes are not a governance key file.
var ErrKeyFile = errors.New("not a teastick governance key")

// EncodeKey returns the key file contents for key.
func EncodeKey(key ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: KeyPEMType, Bytes: key.Seed()})
}

// ParseKey reads a governance key file's contents.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != KeyPEMType || len(blk.Bytes) != ed25519.SeedSize {
		return nil, ErrKeyFile
	}
	return ed25519.NewKeyFromSeed(blk.Bytes), nil
}
