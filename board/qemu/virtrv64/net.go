//go:build tamago && riscv64

package virtrv64

import (
	"fmt"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/qemu/vmmio"
	"github.com/teastick/teastick/board/virtio"
)

// ErrNoNet is returned when the board has no network device.
var ErrNoNet = fmt.Errorf("virtrv64: no virtio network device (QEMU: -netdev user,id=net0 -device virtio-net-device,netdev=net0): %w", board.ErrNoNet)

// OpenNet finds the first virtio network device and brings it up with its
// receive buffers posted.
func OpenNet() (*virtio.Net, board.Device, error) { return vmmio.OpenNet(virtioBus, ErrNoNet) }
