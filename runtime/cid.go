package runtime

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/netstack/ipfs"
)

// verifyModule checks that module is what c names, before anything parses
// it. A raw CID (codec 0x55) must hash to the module bytes; a dag-pb CID
// must be the root `ipfs add --cid-version 1 --raw-leaves` builds from them
// (how teactl publishes actors too large for one block). Only full 32-byte
// SHA2-256 digests are accepted (ipfs.CheckCID).
func verifyModule(c cid.Cid, module []byte) error {
	if !c.Defined() {
		return fmt.Errorf("%w: no CID", ErrCIDMismatch)
	}
	if err := ipfs.CheckCID(c); err != nil {
		return fmt.Errorf("%w: %v", ErrCIDMismatch, err)
	}
	switch c.Type() {
	case ipfs.CodecRaw:
		if err := ipfs.Verify(c, module); err != nil {
			return fmt.Errorf("%w: %v", ErrCIDMismatch, errors.Unwrap(err))
		}
		return nil
	case ipfs.CodecDagPB:
		root, _ := ipfs.Add(module)
		if !root.Equals(c) {
			return fmt.Errorf("%w: %s (the module adds as %s)", ErrCIDMismatch, c, root)
		}
		return nil
	}
	return fmt.Errorf("%w: %s has codec %#x; actors are raw or dag-pb", ErrCIDMismatch, c, c.Type())
}

// RawCID returns the raw-codec CIDv1 (sha2-256) of module: the identity of
// an actor small enough for one block.
func RawCID(module []byte) cid.Cid {
	h, _ := multihash.Sum(module, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}
