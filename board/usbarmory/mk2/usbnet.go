//go:build tamago && arm

package mk2

import (
	"fmt"

	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/imxusb"
)

// usbNet brings up the CDC-ECM USB function (netstack/ecm) on USB1, the
// USB-C plug towards the box, and returns it as the stick's NIC. Its MACs
// are derived from the SoC's unique ID (ecm.MACs): stable per stick,
// locally administered, 1e:a5:71:... for the stick and 1e:a5:70:... for
// the box's end, which the box's networkd files and `teactl stick find`
// expect.
func usbNet() (board.NIC, board.Device, error) {
	uid := imx6ul.UniqueID()
	stick, box := ecm.MACs(uid[:])
	f, err := ecm.New(ecm.Config{StickMAC: stick, HostMAC: box})
	if err != nil {
		return nil, usbDevice, fmt.Errorf("mk2: USB Ethernet: %w", err)
	}
	if err := imxusb.Start(imx6ul.USB1, f); err != nil {
		return nil, usbDevice, fmt.Errorf("mk2: USB Ethernet on USB1: %w", err)
	}
	return f, usbDevice, nil
}
