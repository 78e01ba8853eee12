package ecmtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/teastick/teastick/netstack/ecm"
)

// Host is TEST CODE: a simulated USB host with one ecm.Function on its
// port. It sends control transfers to Function.Setup, bulk OUT packets to
// Function.BulkOut and polls Function.BulkIn and Function.Notification.
// Used as a netstack.NIC it is the box's network interface (usb0): frames
// it transmits go out as Linux's usbnet sends them, frames it receives are
// reassembled as usbnet receives them.
type Host struct {
	F *ecm.Function
	// ZLP makes the host end a frame that is a multiple of the packet
	// size with a zero-length packet (as the ECM spec asks, and as
	// Windows and macOS do) instead of Linux's one pad byte.
	ZLP bool
	// Binding is what Enumerate found.
	Binding *Binding

	mu        sync.Mutex
	partial   []byte
	overflow  bool
	notes     []Notification
	mac       [6]byte
	counts    Counts
	nakWindow time.Duration
}

// Counts is what the host saw on the bus.
type Counts struct {
	OutPackets, InPackets int
	ZLPsIn, ZLPsOut       int // zero-length packets received and sent
	PadsOut               int // frames sent with Linux's pad byte
	NAKs                  int // OUT packets the function was not ready for
	Overflows             int // IN transfers longer than the URB (hard_mtu)
	FramesIn, FramesOut   int
}

// Notification is a decoded CDC notification (CDC 1.2 §6.3).
type Notification struct {
	Code  uint8
	Value uint16
	Data  []byte
}

// NewHost plugs f into a simulated host (not enumerated yet).
func NewHost(f *ecm.Function) *Host {
	return &Host{F: f, nakWindow: 2 * time.Second}
}

// Control runs one control transfer: the setup stage, and the data stage
// of either direction. For IN requests the answer is checked to be at most
// wLength, as a host controller enforces.
func (h *Host) Control(p ecm.SetupPacket, data []byte) ([]byte, error) {
	in, err := h.F.Setup(p, data)
	if err != nil {
		return nil, err
	}
	if p.In() && len(in) > int(p.Length) {
		return nil, fmt.Errorf("ecmtest: %d bytes answered to wLength %d", len(in), p.Length)
	}
	if !p.In() && len(in) != 0 {
		return nil, fmt.Errorf("ecmtest: data answered to an OUT request")
	}
	return in, nil
}

// GetDescriptor is GET_DESCRIPTOR (USB 2.0 §9.4.3).
func (h *Host) GetDescriptor(typ, index uint8, lang, length uint16) ([]byte, error) {
	return h.Control(ecm.SetupPacket{RequestType: 0x80, Request: 6, Value: uint16(typ)<<8 | uint16(index), Index: lang, Length: length}, nil)
}

// String fetches string index as Linux's usb_string does: the language
// list first, then the string in the first language, 255 bytes asked.
func (h *Host) String(index uint8) (string, error) {
	langs, err := h.GetDescriptor(3, 0, 0, 255)
	if err != nil {
		return "", err
	}
	if len(langs) < 4 {
		return "", fmt.Errorf("ecmtest: no language")
	}
	d, err := h.GetDescriptor(3, index, binary.LittleEndian.Uint16(langs[2:]), 255)
	if err != nil {
		return "", err
	}
	return DecodeString(d)
}

// Enumerate does what Linux does when the stick is plugged in (hub_port_init,
// usb_new_device, usb_set_configuration, then cdc_ether's bind and
// usbnet_open): device descriptor at address 0 (64 bytes asked),
// SET_ADDRESS, the descriptors, SET_CONFIGURATION 1, the bind checks,
// SET_INTERFACE to the data altsetting, and the packet filter (DIRECTED |
// BROADCAST | ALL_MULTICAST, what usbnet_cdc_update_filter sets for an
// interface with multicast addresses).
func (h *Host) Enumerate(address uint8) (*Binding, error) {
	dev, err := h.GetDescriptor(1, 0, 0, 64)
	if err != nil || len(dev) != 18 || dev[1] != 1 {
		return nil, fmt.Errorf("ecmtest: device descriptor %x: %v", dev, err)
	}
	if _, err := h.Control(ecm.SetupPacket{RequestType: 0x00, Request: 5, Value: uint16(address)}, nil); err != nil {
		return nil, fmt.Errorf("ecmtest: SET_ADDRESS: %w", err)
	}
	if dev, err = h.GetDescriptor(1, 0, 0, 18); err != nil {
		return nil, err
	}
	head, err := h.GetDescriptor(2, 0, 0, 9)
	if err != nil || len(head) != 9 {
		return nil, fmt.Errorf("ecmtest: configuration header %x: %v", head, err)
	}
	all, err := h.GetDescriptor(2, 0, 0, binary.LittleEndian.Uint16(head[2:]))
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(all)
	if err != nil {
		return nil, err
	}
	for _, i := range []uint8{dev[15], dev[14], dev[16]} { // product, manufacturer, serial
		if _, err := h.String(i); err != nil {
			return nil, fmt.Errorf("ecmtest: string %d: %w", i, err)
		}
	}
	if _, err := h.Control(ecm.SetupPacket{RequestType: 0x00, Request: 9, Value: uint16(cfg.Value)}, nil); err != nil {
		return nil, fmt.Errorf("ecmtest: SET_CONFIGURATION: %w", err)
	}
	b, err := LinuxBind(cfg, h.String)
	if err != nil {
		return nil, err
	}
	if _, err := h.Control(ecm.SetupPacket{RequestType: 0x01, Request: 11, Value: uint16(b.DataAlt), Index: uint16(b.Data)}, nil); err != nil {
		return nil, fmt.Errorf("ecmtest: SET_INTERFACE: %w", err)
	}
	if err := h.SetFilter(ecm.FilterDirected | ecm.FilterBroadcast | ecm.FilterAllMulticast); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.Binding, h.mac = b, b.MAC
	h.mu.Unlock()
	return b, nil
}

// SetFilter is SET_ETHERNET_PACKET_FILTER (ECM 1.2 §6.2.4).
func (h *Host) SetFilter(filter uint16) error {
	_, err := h.Control(ecm.SetupPacket{RequestType: 0x21, Request: 0x43, Value: filter, Index: uint16(h.control())}, nil)
	if err != nil {
		return fmt.Errorf("ecmtest: SET_ETHERNET_PACKET_FILTER: %w", err)
	}
	return nil
}

func (h *Host) control() uint8 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Binding != nil {
		return h.Binding.Control
	}
	return 0
}

// SetInterface is SET_INTERFACE on the data interface.
func (h *Host) SetInterface(alt uint8) error {
	_, err := h.Control(ecm.SetupPacket{RequestType: 0x01, Request: 11, Value: uint16(alt), Index: 1}, nil)
	return err
}

// Notifications polls the interrupt endpoint until it is empty and returns
// what arrived, decoded (CDC 1.2 §6.3, Table 67).
func (h *Host) Notifications() ([]Notification, error) {
	var out []Notification
	for {
		n := h.F.Notification()
		if n == nil {
			return out, nil
		}
		if len(n) < 8 || len(n) > ecm.NotifyMaxPacket || n[0] != 0xa1 || int(binary.LittleEndian.Uint16(n[6:])) != len(n)-8 {
			return out, fmt.Errorf("ecmtest: malformed notification %x", n)
		}
		out = append(out, Notification{Code: n[1], Value: binary.LittleEndian.Uint16(n[2:]), Data: n[8:]})
	}
}

// MAC is the box's MAC: the function's iMACAddress (netstack.NIC).
func (h *Host) MAC() [6]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mac
}

// Counts returns what the host saw.
func (h *Host) Counts() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts
}

// ErrNAKed is an OUT packet the function kept refusing for the NAK window.
var ErrNAKed = errors.New("ecmtest: function NAKed the packet for too long")

// Packets splits a frame into bulk OUT packets as Linux's usbnet does for
// cdc_ether (usbnet_start_xmit: no FLAG_SEND_ZLP, so a frame of a multiple
// of the packet size gets one zero byte appended), or with a zero-length
// packet when zlp is set.
func Packets(frame []byte, zlp bool) [][]byte {
	t := frame
	if len(t)%ecm.MaxPacket == 0 && !zlp {
		t = append(append([]byte(nil), frame...), 0)
	}
	var ps [][]byte
	for len(t) >= ecm.MaxPacket {
		ps = append(ps, t[:ecm.MaxPacket])
		t = t[ecm.MaxPacket:]
	}
	// the short packet: the rest, or zero-length
	return append(ps, t)
}

// Transmit sends a frame from the box to the stick (netstack.NIC). A NAK
// (the function's receive queue full) is retried, as a host controller
// does, for up to two seconds.
func (h *Host) Transmit(frame []byte) error {
	ps := Packets(frame, h.ZLP)
	for _, p := range ps {
		if err := h.SendPacket(p); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.counts.FramesOut++
	if len(frame)%ecm.MaxPacket == 0 {
		if h.ZLP {
			h.counts.ZLPsOut++
		} else {
			h.counts.PadsOut++
		}
	}
	h.mu.Unlock()
	return nil
}

// SendPacket sends one bulk OUT packet, retrying NAKs.
func (h *Host) SendPacket(p []byte) error {
	deadline := time.Now().Add(h.nakWindow)
	for {
		err := h.F.BulkOut(p)
		if !errors.Is(err, ecm.ErrNAK) {
			h.mu.Lock()
			h.counts.OutPackets++
			h.mu.Unlock()
			return err
		}
		h.mu.Lock()
		h.counts.NAKs++
		h.mu.Unlock()
		if time.Now().After(deadline) {
			return ErrNAKed
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// Receive takes the next frame from the stick (netstack.NIC): IN packets
// up to a short or zero-length one, into a URB of hard_mtu bytes (usbnet's
// rx_urb_size); a longer transfer overflows and is dropped, as usbnet
// drops an -EOVERFLOW URB.
func (h *Host) Receive(buf []byte) (int, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	mtu := ecm.MaxFrame
	if h.Binding != nil {
		mtu = h.Binding.HardMTU
	}
	for {
		p := h.F.BulkIn()
		if p == nil {
			return 0, false, nil
		}
		h.counts.InPackets++
		if len(p) == 0 {
			h.counts.ZLPsIn++
		}
		if len(h.partial)+len(p) > mtu {
			h.overflow = true
		} else if !h.overflow {
			h.partial = append(h.partial, p...)
		}
		if len(p) == ecm.MaxPacket {
			continue
		}
		frame, overflow := h.partial, h.overflow
		h.partial, h.overflow = nil, false
		if overflow {
			h.counts.Overflows++
			continue
		}
		if len(frame) == 0 {
			continue
		}
		h.counts.FramesIn++
		if len(buf) < len(frame) {
			return 0, false, fmt.Errorf("ecmtest: frame of %d bytes for a buffer of %d", len(frame), len(buf))
		}
		return copy(buf, frame), true, nil
	}
}
