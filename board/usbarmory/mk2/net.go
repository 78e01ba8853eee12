//go:build tamago && arm

package mk2

import (
	"fmt"
	"net/netip"

	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
)

// USB VBUS detect status of the USB1 (OTG1) port, the Mk II's USB-C plug
// (IMX6ULLRM 57.4.x USB_ANALOG_USB1_VBUS_DETECT_STAT): readable without
// the USB controller running.
const (
	USB_ANALOG_USB1_VBUS_DETECT_STAT = 0x020c81c0
	VBUS_DETECT_STAT_VBUS_VALID      = 1 << 3
)

// USBLink is the USB Ethernet link to the box (netstack.USBArmory): the
// stick is 10.0.0.1/24, the box 10.0.0.2, and the box's IPFS gateway
// listens on its end of the link only.
var USBLink = board.Link{
	Address:    netip.MustParsePrefix("10.0.0.1/24"),
	Gateway:    netip.MustParseAddr("10.0.0.2"),
	BoxGateway: "http://10.0.0.2:8080",
}

// usbDevice names the NIC in errors and the banner.
var usbDevice = board.Device{Name: "usb1 cdc-ecm", Base: imx6ul.USB1_BASE}

// OpenNet brings up USB Ethernet on the USB-C port, towards the box. With
// no USB host (emulated: QEMU's i.MX6UL has no USB device controller; on
// a stick: no VBUS) it answers board.ErrNoNet, saying why.
func OpenNet() (board.NIC, board.Device, error) {
	if !imx6ul.Native {
		return nil, usbDevice, fmt.Errorf("mk2: no USB host: %s; QEMU's mcimx6ul-evk has no USB device controller: %w", errEmulated, board.ErrNoNet)
	}
	if mmio.Read32(USB_ANALOG_USB1_VBUS_DETECT_STAT)&VBUS_DETECT_STAT_VBUS_VALID == 0 {
		return nil, usbDevice, fmt.Errorf("mk2: no USB host: no VBUS on the USB-C port: %w", board.ErrNoNet)
	}
	return usbNet()
}
