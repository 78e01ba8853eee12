//go:build tamago && riscv64

package virtrv64

import (
	"fmt"
	"unsafe"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/virtio"
)

// NetQueueSize is the number of receive and transmit buffers.
const NetQueueSize = 32

// ErrNoNet is returned when the board has no network device.
var ErrNoNet = fmt.Errorf("virtrv64: no virtio network device (QEMU: -netdev user,id=net0 -device virtio-net-device,netdev=net0): %w", board.ErrNoNet)

// netMem keeps the DMA memory of the network device reachable: the device
// writes into it for as long as the stick runs. RAM is identity mapped, so
// its address is its physical address; QEMU does not model caches, so no
// cache maintenance is done around DMA on this board.
var netMem []byte

// OpenNet finds the first virtio network device and brings it up with its
// receive buffers posted.
func OpenNet() (*virtio.Net, board.Device, error) {
	for _, d := range Devices() {
		if d.ID != virtio.IDNetwork {
			continue
		}
		size := virtio.NetMemory(NetQueueSize)
		netMem = make([]byte, size+16)
		addr := uintptr(unsafe.Pointer(&netMem[0]))
		off := (16 - addr%16) % 16
		n := &virtio.Net{}
		if err := n.Init(&mmio.Region{Base: uintptr(d.Base)}, netMem[off:off+uintptr(size)], uint64(addr+off), NetQueueSize); err != nil {
			return nil, d, err
		}
		return n, d, nil
	}
	return nil, board.Device{}, ErrNoNet
}
