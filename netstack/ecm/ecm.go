// Package ecm is the stick's USB Ethernet: the complete function of a USB
// 2.0 high-speed device of the Communications Device Class's Ethernet
// Control Model (USB CDC 1.2, CDC ECM 1.2), with no device controller in
// it. A controller driver (netstack/ecm/imxusb on the i.MX6) is a thin
// shell that hands the function what the host sends and sends what the
// function gives; the function answers control transfers, keeps the USB
// state, frames Ethernet between the bulk endpoints and its NIC side, and
// raises the ECM notifications. It builds for the host, where tests play
// the USB host at the level of packets, and for GOOS=tamago.
//
// # Device side (what the controller shell calls)
//
//	f, err := ecm.New(ecm.Config{StickMAC: stick, HostMAC: box, Serial: "..."})
//	in, err := f.Setup(pkt, data)  // endpoint 0; errors.Is(err, ecm.ErrStall): stall
//	f.BulkOut(packet)              // each packet the host sent on EPBulkOut
//	p := f.BulkIn()                // next packet for EPBulkIn; nil: none, empty: a ZLP
//	n := f.Notification()          // next notification for EPNotify, nil: none
//	f.Reset()                      // a bus reset or VBUS lost
//
// Controllers that segment and reassemble transfers themselves (the
// i.MX6's dTDs do) use the transfer-level pair instead: BulkOutTransfer
// with each completed OUT transfer, BulkInTransfer for the next whole
// frame (the controller then ends it with a zero-length packet when it is
// a multiple of MaxPacket: automatic zero-length termination on).
//
// # Stack side
//
// *Function is a netstack.NIC: Transmit queues a frame for the host,
// Receive takes the next frame the host sent, MAC is the stick's address.
//
//	st, _ := netstack.New(f, netstack.USBArmory)
//
// Frames move only while the host has the data interface in altsetting 1
// (ECM 1.2 §3.3); in altsetting 0, unconfigured, or after a reset the
// function is disconnected and Transmit drops frames (counted). Transmit
// also drops what the host's packet filter (SET_ETHERNET_PACKET_FILTER)
// excludes. Both directions have bounded queues (Config.Queue frames); a
// full transmit queue returns ErrBusy (its Busy method reports true, so
// the stack offers the frame again); a full receive queue NAKs the host
// (BulkOut returns ErrNAK without taking the packet; a transfer-level shell
// waits for OutReady before it takes the next transfer). Stats counts
// what is dropped: frames while disconnected or filtered, oversize, runts.
//
// # MACs
//
// MACs derives the stick's MAC and the box side's (sent as iMACAddress)
// from the stick's unique ID: locally administered, stable per stick.
//
// # Framing
//
// A frame from the host is the bulk OUT packets up to and including the
// first short packet (shorter than MaxPacket, possibly zero-length: a
// zero-length packet ends a frame that is a multiple of MaxPacket, CDC
// ECM 1.2 §3.3.1). Linux's usbnet sends no zero-length packet to
// cdc_ether devices: it appends one zero byte to a frame that is a
// multiple of MaxPacket. The function keeps that byte: a 513- or
// 1025-byte transfer may equally be a frame of that length, and the
// byte after an IP packet is ignored like any Ethernet padding (see
// RATIONALE). Frames to the host end with a short packet, or with a
// zero-length packet when they are a multiple of MaxPacket.
package ecm

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

var (
	// ErrStall is a request the function refuses: the controller stalls
	// endpoint 0 (USB 2.0 §9.2.7).
	ErrStall = errors.New("ecm: request error")
	// ErrConfig is an invalid Config.
	ErrConfig = errors.New("ecm: invalid configuration")
	// ErrOversize is a frame longer than MaxFrame.
	ErrOversize = errors.New("ecm: frame longer than 1514 bytes")
	// ErrRunt is a frame shorter than an Ethernet header.
	ErrRunt = errors.New("ecm: frame shorter than 14 bytes")
	// ErrNAK is a bulk OUT packet the function cannot take yet: its
	// receive queue is full. The controller NAKs it (USB 2.0 §8.5.1).
	ErrNAK = errors.New("ecm: bulk OUT not ready (NAK)")
	// ErrShortBuffer is a Receive buffer too small for the frame waiting.
	ErrShortBuffer = errors.New("ecm: receive buffer too small")
)

// ErrBusy is returned by Transmit when the queue to the host is full; it
// says Busy, so netstack offers the frame again shortly.
var ErrBusy error = busyError{}

type busyError struct{}

func (busyError) Error() string { return "ecm: queue to the host full" }
func (busyError) Busy() bool    { return true }

// Config describes one stick's function.
type Config struct {
	// StickMAC is the stick's own address (the NIC's MAC), HostMAC the
	// box side's, sent as iMACAddress. MACs derives both from the
	// stick's unique ID.
	StickMAC, HostMAC [6]byte
	// Manufacturer, Product and Serial are the device's strings
	// (defaults "teastick", "teastick USB Ethernet", and the host MAC's
	// hex digits).
	Manufacturer, Product, Serial string
	// Queue is the depth in frames of each direction's queue (default 64).
	Queue int
	Log   *slog.Logger
}

// Stats counts what moved and what was lost.
type Stats struct {
	RxFrames, TxFrames uint64 // frames from and to the host
	RxBytes, TxBytes   uint64
	RxDropped          uint64 // host frames lost to a full receive queue
	TxDropped          uint64 // stack frames dropped while disconnected
	Filtered           uint64 // stack frames the host's packet filter excludes
	Oversize           uint64 // frames over MaxFrame, both directions
	Runts              uint64 // frames under 14 bytes, both directions
	Babble             uint64 // bulk OUT packets longer than MaxPacket
	Aborted            uint64 // frames cut by a reset, halt or altsetting change
	Stalls             uint64 // control requests refused
}

// Function is one CDC-ECM function. Its methods are safe for concurrent
// use: the controller's endpoint loops and the stack's pump call them from
// different goroutines.
type Function struct {
	cfg Config
	log *slog.Logger

	// descriptors, built once
	device, qualifier, configHS, configFS []byte
	strings                               [][]byte

	mu       sync.Mutex
	hostSeen bool
	address  uint8
	config   uint8
	alt      uint8   // data interface altsetting
	filter   uint16  // ECM packet filter
	halted   [3]bool // EPNotify, EPBulkIn, EPBulkOut

	rx        [][]byte // frames from the host, for Receive
	rxPartial []byte   // bulk OUT packets of the frame in progress
	rxDiscard bool     // the frame in progress is being discarded
	tx        [][]byte // frames for the host
	txCur     []byte   // frame being sent packet by packet
	txOff     int
	txZLP     bool     // a zero-length packet is owed after txCur
	notes     [][]byte // notifications for the host
	stats     Stats
}

// New builds the function for cfg.
func New(cfg Config) (*Function, error) {
	for _, m := range [][6]byte{cfg.StickMAC, cfg.HostMAC} {
		if m == [6]byte{} || m[0]&1 != 0 {
			return nil, fmt.Errorf("%w: MAC %x is zero or multicast", ErrConfig, m)
		}
	}
	if cfg.StickMAC == cfg.HostMAC {
		return nil, fmt.Errorf("%w: stick and host MAC are both %x", ErrConfig, cfg.StickMAC)
	}
	if cfg.Manufacturer == "" {
		cfg.Manufacturer = "teastick"
	}
	if cfg.Product == "" {
		cfg.Product = "teastick USB Ethernet"
	}
	if cfg.Serial == "" {
		cfg.Serial = MACString(cfg.HostMAC)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	f := &Function{
		cfg:       cfg,
		log:       cfg.Log.With("component", "usb"),
		device:    deviceDescriptor(),
		qualifier: qualifierDescriptor(),
		configHS:  configDescriptor(true),
		configFS:  configDescriptor(false),
		filter:    defaultFilter,
	}
	f.strings = [][]byte{{4, descString, langEnglishUS & 0xff, langEnglishUS >> 8}}
	for _, s := range []string{cfg.Manufacturer, cfg.Product, cfg.Serial, MACString(cfg.HostMAC)} {
		d, err := stringDescriptor(s)
		if err != nil {
			return nil, err
		}
		f.strings = append(f.strings, d)
	}
	return f, nil
}

// Descriptors returns the device descriptor and the high-speed
// configuration descriptor set, as GET_DESCRIPTOR answers them.
func (f *Function) Descriptors() (device, config []byte) {
	return append([]byte(nil), f.device...), append([]byte(nil), f.configHS...)
}

// Stats returns the counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// HostSeen reports whether a host has sent a setup packet since New: a
// USB host is (or was) attached and enumerating.
func (f *Function) HostSeen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostSeen
}

// Connected reports whether the host has the data interface in altsetting
// 1: frames move.
func (f *Function) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected()
}

func (f *Function) connected() bool { return f.config != 0 && f.alt == 1 }

// Configuration reports bConfigurationValue (0: not configured).
func (f *Function) Configuration() uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.config
}

// Reset returns the function to the Default state (USB 2.0 §9.1.1.3): a
// bus reset, or VBUS lost. Queued frames and notifications are dropped:
// the host that would have read them is gone.
func (f *Function) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.address, f.config = 0, 0
	f.disconnect()
	f.notes = nil
	f.filter = defaultFilter
}

func (f *Function) setConfiguration(v uint8) {
	if v == f.config {
		// §9.4.7 / §9.1.1.5: re-selecting the configuration resets
		// altsettings and data toggles
		if v != 0 {
			f.setAlt(0)
		}
		return
	}
	if f.config != 0 {
		f.setAlt(0)
	}
	f.config = v
	f.alt = 0
	f.halted = [3]bool{}
	f.filter = defaultFilter
	f.notes = nil
}

// setAlt selects the data interface's altsetting: 1 connects, 0
// disconnects (ECM 1.2 §3.3: the host selects altsetting 0 to reset the
// data pipes and stop traffic). The host learns it from the notifications
// (ECM 1.2 §6.3.1, §6.3.3).
func (f *Function) setAlt(alt uint8) {
	was := f.connected()
	f.disconnect()
	f.alt = alt
	f.halted[1], f.halted[2] = false, false
	if alt == 1 {
		f.notify(networkConnection(true))
		f.notify(connectionSpeedChange(bitRate, bitRate))
		f.log.Info("host connected", "host_mac", MACString(f.cfg.HostMAC))
	} else if was {
		f.notify(networkConnection(false))
		f.log.Info("host disconnected")
	}
}

// disconnect drops the frames in flight: altsetting 0 or a reset flushes
// the data endpoints (ECM 1.2 §3.3).
func (f *Function) disconnect() {
	if f.rxPartial != nil || f.txCur != nil {
		f.stats.Aborted++
	}
	f.alt = 0
	f.rx, f.tx = nil, nil
	f.rxPartial, f.rxDiscard = nil, false
	f.txCur, f.txOff, f.txZLP = nil, 0, false
}
