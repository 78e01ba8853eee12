//go:build tamago && arm

package mk2

import (
	"fmt"

	"github.com/teastick/teastick/board"
)

// usbNet brings up the CDC-ECM USB function on USB1 and returns it as the
// stick's NIC. This build does not have it: USB Ethernet (netstack/ecm
// and its imxusb shell) is wired in by replacing this file.
func usbNet() (board.NIC, board.Device, error) {
	return nil, usbDevice, fmt.Errorf("mk2: USB Ethernet is not wired in this build: %w", board.ErrNoNet)
}
