//go:build tamago && riscv64

package virtrv64

import (
	"sync"
	"unsafe"
	_ "unsafe"

	"github.com/teastick/teastick/board/drbg"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/virtio"
)

// Exit status when the board has no entropy source.
const ExitNoEntropy = 3

// The runtime asks for random bytes (hash seeds) before the heap exists, so
// the entropy path uses only static memory: the virtqueue, the DMA buffer,
// the device driver and the generator are all package variables.
var (
	// 4 KiB of 4-byte aligned memory; the queue starts at its first
	// 16-byte boundary.
	rngQueueMem [1024]uint32
	rngBuf      [256]byte

	slots   [VIRTIO_MMIO_SLOTS]mmio.Region
	rngDev  virtio.RNG
	rngSlot = -1
	entropy drbg.Reader
	rngMu   sync.Mutex

	// ReseedFailures counts reseeds the device did not answer; the
	// generator keeps running on its (still secret) key meanwhile.
	ReseedFailures uint32
)

// initRNG finds the virtio entropy device and seeds the generator from it.
// Without one the board refuses to run: it says so on the console and stops.
//
//go:linkname initRNG runtime/goos.InitRNG
func initRNG() {
	if entropy.Gen.Seeded() {
		return
	}
	for i := range slots {
		slots[i].Base = VIRTIO_MMIO_BASE + uintptr(i)*VIRTIO_MMIO_SIZE
		id, _, err := virtio.Probe(&slots[i])
		if err != nil || id != virtio.IDEntropy {
			continue
		}
		qaddr := uintptr(unsafe.Pointer(&rngQueueMem[0]))
		off := (16 - qaddr%16) % 16
		qmem := unsafe.Slice((*byte)(unsafe.Pointer(&rngQueueMem[0])), len(rngQueueMem)*4)[off:]
		baddr := uint64(uintptr(unsafe.Pointer(&rngBuf[0])))
		if err := rngDev.Init(&slots[i], qmem, uint64(qaddr+off), rngBuf[:], baddr); err != nil {
			print("teastick: virtio-rng in slot ", i, ": ", err.Error(), "\n")
			continue
		}
		rngSlot = i
		break
	}
	entropy.Source = &rngDev
	if rngSlot < 0 || !entropy.Init() {
		print("teastick: FATAL: no entropy source: the board needs a virtio-rng device (QEMU: -device virtio-rng-device); refusing to continue\n")
		Exit(ExitNoEntropy)
	}
}

//go:linkname getRandomData runtime/goos.GetRandomData
func getRandomData(b []byte) {
	rngMu.Lock()
	defer rngMu.Unlock()
	if !entropy.Gen.Seeded() {
		initRNG()
	}
	if !entropy.Read(b) {
		if !entropy.Gen.Seeded() {
			print("teastick: FATAL: random generator unseeded\n")
			Exit(ExitNoEntropy)
		}
		ReseedFailures++
	}
}

// EntropySlot returns the virtio-mmio slot of the entropy device.
func EntropySlot() int { return rngSlot }
