// Package virtio is the stick's virtio driver core: the virtio-mmio
// transport (version 2, and the legacy version 1 of spec 4.2.4 that QEMU
// uses unless told otherwise), split virtqueues, the entropy device and the
// network device, shared by the QEMU boards.
//
// The driver talks to registers through the small Registers interface and to
// guest memory through byte slices whose physical address the caller gives,
// so the protocol logic is tested on the host against a device model, and on
// bare metal the same code drives QEMU's devices.
//
// Nothing here allocates: the bare-metal random source initialises it before
// the Go heap exists. For the same reason errors are constants of type Error,
// which need no package initialisation.
//
// References are to "Virtual I/O Device (VIRTIO) Version 1.2", OASIS
// Committee Specification 01 (the "spec" below).
package virtio

// Error is a constant error: usable before package initialisation has run.
type Error string

func (e Error) Error() string { return string(e) }

// Errors reported by the transport and the queues.
const (
	ErrNoDevice     = Error("virtio: no device at this address")
	ErrVersion      = Error("virtio: unknown virtio-mmio version (neither 1, legacy, nor 2)")
	ErrQueueAddr    = Error("virtio: queue beyond the legacy interface's reach (page frame number over 32 bits)")
	ErrFeatures     = Error("virtio: device refused the negotiated features")
	ErrNoVersion1   = Error("virtio: device does not offer VIRTIO_F_VERSION_1")
	ErrQueueSize    = Error("virtio: queue size not supported by the device")
	ErrQueueInUse   = Error("virtio: queue already set up")
	ErrMemory       = Error("virtio: queue memory too small or misaligned")
	ErrQueueFull    = Error("virtio: no free descriptor")
	ErrDeviceFailed = Error("virtio: device needs reset")
	ErrTimeout      = Error("virtio: device did not answer")
	ErrBadUsed      = Error("virtio: device returned a malformed used element")
	ErrUsedLength   = Error("virtio: device claims to have written more than its buffer holds")
	ErrReset        = Error("virtio: device did not complete its reset")
)

// Registers is access to one virtio-mmio register window.
type Registers interface {
	Read32(off uint32) uint32
	Write32(off uint32, val uint32)
}

// MMIO device register layout (spec 4.2.2, Table "MMIO Device Register Layout").
const (
	MagicValue        = 0x000
	Version           = 0x004
	DeviceID          = 0x008
	VendorID          = 0x00c
	DeviceFeatures    = 0x010
	DeviceFeaturesSel = 0x014
	DriverFeatures    = 0x020
	DriverFeaturesSel = 0x024
	QueueSel          = 0x030
	QueueNumMax       = 0x034
	QueueNum          = 0x038
	QueueReady        = 0x044
	QueueNotify       = 0x050
	InterruptStatus   = 0x060
	InterruptACK      = 0x064
	Status            = 0x070
	QueueDescLow      = 0x080
	QueueDescHigh     = 0x084
	QueueDriverLow    = 0x090
	QueueDriverHigh   = 0x094
	QueueDeviceLow    = 0x0a0
	QueueDeviceHigh   = 0x0a4
	ConfigGeneration  = 0x0fc
	Config            = 0x100
)

// Registers of the legacy interface only (spec 4.2.4, Table "MMIO Device
// Legacy Register Layout"). The legacy names of the registers both
// interfaces share (HostFeatures, HostFeaturesSel, GuestFeatures,
// GuestFeaturesSel) are the DeviceFeatures... names above; QueueReady and
// the 64-bit queue address registers do not exist there.
const (
	GuestPageSize = 0x028
	QueueAlign    = 0x03c
	QueuePFN      = 0x040
)

// LegacyPageSize is the guest page size the driver writes to GuestPageSize,
// and also the used ring alignment it writes to QueueAlign: 4096 for both,
// as Linux's virtio_mmio driver does, so a device that assumes them (old
// devices did) still finds the rings.
const LegacyPageSize = 4096

// Magic is "virt" in little endian (spec 4.2.2).
const Magic = 0x74726976

// Device status bits (spec 2.1).
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 64
	StatusFailed           = 128
)

// Reserved feature bits (spec 6).
const (
	FeatureVersion1 = uint64(1) << 32
	// FeatureAnyLayout (legacy only, spec 2.6.4.1): the device does not
	// assume message framing from the descriptors, so a virtio-net header
	// and its frame may share one descriptor.
	FeatureAnyLayout = uint64(1) << 27
)

// Device IDs (spec 5).
const (
	IDNetwork = 1
	IDBlock   = 2
	IDConsole = 3
	IDEntropy = 4
)

// DeviceName names a device ID for the boot banner.
func DeviceName(id uint32) string {
	switch id {
	case IDNetwork:
		return "net"
	case IDBlock:
		return "block"
	case IDConsole:
		return "console"
	case IDEntropy:
		return "rng"
	case 5:
		return "balloon"
	case 9:
		return "9p"
	case 16:
		return "gpu"
	case 18:
		return "input"
	case 19:
		return "vsock"
	}
	return "unknown"
}

// Probe reads a virtio-mmio window and returns its device ID and transport
// version. A window with no device behind it (QEMU populates its 32 slots
// with empty transports) has device ID 0 and reports ErrNoDevice.
func Probe(r Registers) (id uint32, version uint32, err error) {
	if r.Read32(MagicValue) != Magic {
		return 0, 0, ErrNoDevice
	}
	version = r.Read32(Version)
	id = r.Read32(DeviceID)
	if id == 0 {
		return 0, version, ErrNoDevice
	}
	return id, version, nil
}

// Transport drives one virtio-mmio device.
type Transport struct {
	Regs Registers
	// Features the device offered and the driver accepted (Init).
	Features uint64
	// Legacy is set by Init when the device speaks the legacy interface
	// (Version 1, spec 4.2.4).
	Legacy bool
}

// Init performs the device initialisation sequence of spec 3.1.1 up to
// FEATURES_OK: reset, ACKNOWLEDGE, DRIVER, feature negotiation. want are the
// device-specific features the driver understands; on a version 2 device
// VIRTIO_F_VERSION_1 is always required. A version 1 (legacy) device is
// driven through the legacy interface (spec 3.1.2, 4.2.4): 32 feature bits,
// no FEATURES_OK step, the guest page size written before the queues.
// Queues are set up next (InitQueue, SetupQueue), then Ready.
func (t *Transport) Init(want uint64) error {
	r := t.Regs
	if r.Read32(MagicValue) != Magic {
		return ErrNoDevice
	}
	switch r.Read32(Version) {
	case 2:
		t.Legacy = false
	case 1:
		t.Legacy = true
		return t.initLegacy(want)
	default:
		return ErrVersion
	}
	if err := t.Reset(); err != nil {
		return err
	}
	r.Write32(Status, StatusAcknowledge)
	r.Write32(Status, StatusAcknowledge|StatusDriver)

	r.Write32(DeviceFeaturesSel, 0)
	offered := uint64(r.Read32(DeviceFeatures))
	r.Write32(DeviceFeaturesSel, 1)
	offered |= uint64(r.Read32(DeviceFeatures)) << 32
	if offered&FeatureVersion1 == 0 {
		r.Write32(Status, StatusFailed)
		return ErrNoVersion1
	}
	accept := offered & (want | FeatureVersion1)
	r.Write32(DriverFeaturesSel, 0)
	r.Write32(DriverFeatures, uint32(accept))
	r.Write32(DriverFeaturesSel, 1)
	r.Write32(DriverFeatures, uint32(accept>>32))

	r.Write32(Status, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
	if r.Read32(Status)&StatusFeaturesOK == 0 {
		r.Write32(Status, StatusFailed)
		return ErrFeatures
	}
	t.Features = accept
	return nil
}

// initLegacy is Init for the legacy interface (spec 3.1.2 and 4.2.4): the
// device offers and the driver accepts the first 32 feature bits only
// (HostFeaturesSel and GuestFeaturesSel stay 0; QEMU ignores a write with
// GuestFeaturesSel 1), and the features take effect without FEATURES_OK.
func (t *Transport) initLegacy(want uint64) error {
	r := t.Regs
	if err := t.Reset(); err != nil {
		return err
	}
	r.Write32(Status, StatusAcknowledge)
	r.Write32(Status, StatusAcknowledge|StatusDriver)
	r.Write32(DeviceFeaturesSel, 0)
	accept := uint64(r.Read32(DeviceFeatures)) & want & 0xffffffff
	r.Write32(DriverFeaturesSel, 0)
	r.Write32(DriverFeatures, uint32(accept))
	r.Write32(GuestPageSize, LegacyPageSize)
	t.Features = accept
	return nil
}

// InitQueue lays out q for this transport (after Init): a version 2 queue
// (Queue.Init), or a legacy one (Queue.InitLegacy), whose memory must be
// LegacyPageSize aligned and LegacyQueueBytes(size) long.
func (t *Transport) InitQueue(q *Queue, mem []byte, addr uint64, size uint16) error {
	if t.Legacy {
		return q.InitLegacy(mem, addr, size)
	}
	return q.Init(mem, addr, size)
}

// resetSpin bounds the reads of Status while a reset completes.
const resetSpin = 1 << 16

// Reset resets the device: writing 0 to Status (spec 4.2.2), then waiting
// for Status to read 0, when the reset is complete (2.4.2). From then on the
// device does not touch its queues (2.4.1): every buffer it held is the
// driver's again. Init follows to use the device again.
func (t *Transport) Reset() error {
	t.Regs.Write32(Status, 0)
	for i := 0; t.Regs.Read32(Status) != 0; i++ {
		if i == resetSpin {
			return ErrReset
		}
	}
	return nil
}

// SetupQueue hands queue q to the device as virtqueue index (spec 4.2.3.2,
// or 4.2.4 for a legacy device).
func (t *Transport) SetupQueue(index uint32, q *Queue) error {
	if t.Legacy {
		return t.setupLegacyQueue(index, q)
	}
	if q.legacy {
		return ErrMemory
	}
	r := t.Regs
	r.Write32(QueueSel, index)
	if r.Read32(QueueReady) != 0 {
		return ErrQueueInUse
	}
	max := r.Read32(QueueNumMax)
	if max == 0 || uint32(q.size) > max {
		return ErrQueueSize
	}
	r.Write32(QueueNum, uint32(q.size))
	desc, avail, used := q.addrs()
	r.Write32(QueueDescLow, uint32(desc))
	r.Write32(QueueDescHigh, uint32(desc>>32))
	r.Write32(QueueDriverLow, uint32(avail))
	r.Write32(QueueDriverHigh, uint32(avail>>32))
	r.Write32(QueueDeviceLow, uint32(used))
	r.Write32(QueueDeviceHigh, uint32(used>>32))
	r.Write32(QueueReady, 1)
	q.transport = t
	q.index = index
	return nil
}

// setupLegacyQueue is the legacy queue set-up of spec 4.2.4 ("Legacy
// interface: Virtqueue Configuration"): QueuePFN must read 0 (queue not in
// use); QueueNum and QueueAlign are written before QueuePFN, from which the
// device computes all three ring addresses (spec 2.7, legacy layout).
func (t *Transport) setupLegacyQueue(index uint32, q *Queue) error {
	if !q.legacy {
		return ErrMemory
	}
	pfn := q.addr / LegacyPageSize
	if pfn == 0 || pfn > 0xffffffff {
		// 0 would reset the device (QEMU), not set an address
		return ErrQueueAddr
	}
	r := t.Regs
	r.Write32(QueueSel, index)
	if r.Read32(QueuePFN) != 0 {
		return ErrQueueInUse
	}
	max := r.Read32(QueueNumMax)
	if max == 0 || uint32(q.size) > max {
		return ErrQueueSize
	}
	r.Write32(QueueNum, uint32(q.size))
	r.Write32(QueueAlign, LegacyPageSize)
	r.Write32(QueuePFN, uint32(pfn))
	q.transport = t
	q.index = index
	return nil
}

// Ready sets DRIVER_OK: the device is live. A legacy device has no
// FEATURES_OK step (spec 3.1.2), so the bit is not set there.
func (t *Transport) Ready() {
	if t.Legacy {
		t.Regs.Write32(Status, StatusAcknowledge|StatusDriver|StatusDriverOK)
		return
	}
	t.Regs.Write32(Status, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
}

// Failed reports whether the device asked for a reset.
func (t *Transport) Failed() bool {
	return t.Regs.Read32(Status)&StatusDeviceNeedsReset != 0
}

// AckInterrupts acknowledges and returns the pending interrupt causes.
func (t *Transport) AckInterrupts() uint32 {
	s := t.Regs.Read32(InterruptStatus)
	if s != 0 {
		t.Regs.Write32(InterruptACK, s)
	}
	return s
}
