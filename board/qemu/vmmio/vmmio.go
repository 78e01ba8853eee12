//go:build tamago && (arm || riscv64)

// Package vmmio is the glue both QEMU virt boards share around the
// portable virtio driver (board/virtio): the row of virtio-mmio slots, the
// entropy device seeding the DRBG (board/drbg), and the network device.
// The boards keep only their addresses and their runtime hooks.
//
// The runtime asks for random bytes (hash seeds) before the heap exists,
// so the entropy path uses only static memory: the virtqueue, the DMA
// buffer, the slot registers, the device driver and the generator are all
// package variables.
//
// This package is only meant to be used with `GOOS=tamago` on arm or
// riscv64.
package vmmio

import (
	"net/netip"
	"sync"
	"unsafe"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/drbg"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/virtio"
)

// Bus is a row of virtio-mmio transports: Slots of them, Stride apart from
// Base.
type Bus struct {
	Base   uintptr
	Stride uintptr
	Slots  int
}

// MaxSlots bounds Slots (QEMU's arm virt machine has 32).
const MaxSlots = 32

// ExitNoEntropy is the exit status when the board has no entropy source.
const ExitNoEntropy = 3

var (
	// 12 KiB of 4-byte aligned memory; the queue starts at its first
	// page boundary, which a legacy device needs (its page frame number
	// goes to QueuePFN), with at least 8 KiB behind it
	// (virtio.RNGQueueMemory).
	rngQueueMem [3 * 1024]uint32
	rngBuf      [256]byte

	slots   [MaxSlots]mmio.Region
	rngDev  virtio.RNG
	rngSlot = -1
	entropy drbg.Reader
	rngMu   sync.Mutex

	// ReseedFailures counts reseeds the device did not answer; the
	// generator keeps running on its (still secret) key meanwhile.
	ReseedFailures uint32
)

// SeedEntropy finds the virtio entropy device on bus and seeds the
// generator from it. Without one the board refuses to run: it says so on
// the console and calls exit(ExitNoEntropy). It is the board's
// runtime/goos.InitRNG.
func SeedEntropy(bus Bus, exit func(int32)) {
	if entropy.Gen.Seeded() {
		return
	}
	for i := 0; i < bus.Slots && i < MaxSlots; i++ {
		slots[i].Base = bus.Base + uintptr(i)*bus.Stride
		id, _, err := virtio.Probe(&slots[i])
		if err != nil || id != virtio.IDEntropy {
			continue
		}
		qaddr := uintptr(unsafe.Pointer(&rngQueueMem[0]))
		off := (virtio.LegacyPageSize - qaddr%virtio.LegacyPageSize) % virtio.LegacyPageSize
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
		exit(ExitNoEntropy)
	}
}

// RandomData fills b from the generator, seeding it first if needed. It
// is the board's runtime/goos.GetRandomData.
func RandomData(b []byte, bus Bus, exit func(int32)) {
	rngMu.Lock()
	defer rngMu.Unlock()
	if !entropy.Gen.Seeded() {
		SeedEntropy(bus, exit)
	}
	if !entropy.Read(b) {
		if !entropy.Gen.Seeded() {
			print("teastick: FATAL: random generator unseeded\n")
			exit(ExitNoEntropy)
		}
		ReseedFailures++
	}
}

// EntropySlot returns the virtio-mmio slot of the entropy device.
func EntropySlot() int { return rngSlot }

// Devices probes the bus's slots and returns the devices present.
func Devices(bus Bus) (devs []board.Device) {
	for i := 0; i < bus.Slots; i++ {
		r := &mmio.Region{Base: bus.Base + uintptr(i)*bus.Stride}
		id, version, err := virtio.Probe(r)
		if err != nil {
			continue
		}
		devs = append(devs, board.Device{Slot: i, Base: uint64(r.Base), ID: id, Version: version, Name: virtio.DeviceName(id)})
	}
	return devs
}

// NetQueueSize is the number of receive and transmit buffers.
const NetQueueSize = 32

// netMem keeps the DMA memory of the network device reachable: the device
// writes into it for as long as the stick runs. RAM is identity mapped, so
// its address is its physical address; QEMU does not model caches, so no
// cache maintenance is done around DMA on these boards.
var netMem []byte

// OpenNet finds the first virtio network device on bus and brings it up
// with its receive buffers posted; noNet is the error when there is none.
func OpenNet(bus Bus, noNet error) (*virtio.Net, board.Device, error) {
	for _, d := range Devices(bus) {
		if d.ID != virtio.IDNetwork {
			continue
		}
		size := virtio.NetMemory(NetQueueSize)
		// page aligned: a legacy device is given its rings' page frame
		// numbers
		netMem = make([]byte, size+virtio.LegacyPageSize)
		addr := uintptr(unsafe.Pointer(&netMem[0]))
		off := (virtio.LegacyPageSize - addr%virtio.LegacyPageSize) % virtio.LegacyPageSize
		n := &virtio.Net{}
		if err := n.Init(&mmio.Region{Base: uintptr(d.Base)}, netMem[off:off+uintptr(size)], uint64(addr+off), NetQueueSize); err != nil {
			return nil, d, err
		}
		return n, d, nil
	}
	return nil, board.Device{}, noNet
}

// UserLink is QEMU user networking as both QEMU boards see it: the stick
// at 10.0.2.15/24 behind the gateway 10.0.2.2, the box's IPFS gateway
// forwarded to 10.0.2.100:8080 (qemu.BoxAddr).
var UserLink = board.Link{
	Address:    netip.MustParsePrefix("10.0.2.15/24"),
	Gateway:    netip.MustParseAddr("10.0.2.2"),
	BoxGateway: "http://10.0.2.100:8080",
}
