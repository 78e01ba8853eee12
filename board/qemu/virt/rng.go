//go:build tamago && arm

package virt

import (
	_ "unsafe"

	"github.com/teastick/teastick/board/qemu/vmmio"
)

// virtioBus is the board's row of virtio-mmio slots (a static value: the
// runtime asks for random bytes before any initialiser runs).
var virtioBus = vmmio.Bus{Base: VIRTIO_MMIO_BASE, Stride: VIRTIO_MMIO_SIZE, Slots: VIRTIO_MMIO_SLOTS}

// ExitNoEntropy is the exit status when the board has no entropy source.
const ExitNoEntropy = vmmio.ExitNoEntropy

// initRNG seeds the DRBG from the virtio entropy device, refusing to run
// without one (vmmio.SeedEntropy).
//
//go:linkname initRNG runtime/goos.InitRNG
func initRNG() { vmmio.SeedEntropy(virtioBus, Exit) }

//go:linkname getRandomData runtime/goos.GetRandomData
func getRandomData(b []byte) { vmmio.RandomData(b, virtioBus, Exit) }

// EntropySlot returns the virtio-mmio slot of the entropy device.
func EntropySlot() int { return vmmio.EntropySlot() }
