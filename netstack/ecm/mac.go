package ecm

import "crypto/sha256"

// macLabel prefixes the unique ID in the MAC derivation (COMMON conventions).
const macLabel = "teastick usb mac"

// MACs derives the two locally administered MACs of a stick's USB link from
// its unique ID (on the USB armory Mk II, the i.MX6 OCOTP unique ID): the
// stick's own, 1e:a5:71:h0:h1:h2, and the box side's, 1e:a5:70:h0:h1:h2 (the
// ECM iMACAddress, which Linux's cdc_ether gives the box's interface), where
// h0..h2 are the first three bytes of SHA-256("teastick usb mac" || id).
//
// 0x1e has the locally administered bit (0x02) set and the group bit (0x01)
// clear (IEEE 802-2014 §8.2.2): unicast addresses no vendor assigns. The same
// stick always gets the same pair, so the box's interface name (enx1ea570...)
// and its networkd match survive replugging.
func MACs(uniqueID []byte) (stick, box [6]byte) {
	h := sha256.New()
	h.Write([]byte(macLabel))
	h.Write(uniqueID)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	stick = [6]byte{0x1e, 0xa5, 0x71, sum[0], sum[1], sum[2]}
	box = [6]byte{0x1e, 0xa5, 0x70, sum[0], sum[1], sum[2]}
	return stick, box
}
