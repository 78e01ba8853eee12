package ecm

import (
	"encoding/binary"
	"fmt"
)

// SetupPacket is a control transfer's setup stage (USB 2.0 §9.3, Table
// 9-2), fields in the host's meaning (wValue not byte-swapped).
type SetupPacket struct {
	RequestType uint8  // bmRequestType
	Request     uint8  // bRequest
	Value       uint16 // wValue
	Index       uint16 // wIndex
	Length      uint16 // wLength
}

// ParseSetup decodes the 8 bytes of a setup packet (USB 2.0 §9.3,
// little-endian fields).
func ParseSetup(b []byte) (SetupPacket, error) {
	if len(b) != 8 {
		return SetupPacket{}, fmt.Errorf("%w: setup packet of %d bytes, want 8", ErrStall, len(b))
	}
	return SetupPacket{
		RequestType: b[0],
		Request:     b[1],
		Value:       binary.LittleEndian.Uint16(b[2:]),
		Index:       binary.LittleEndian.Uint16(b[4:]),
		Length:      binary.LittleEndian.Uint16(b[6:]),
	}, nil
}

// Bytes encodes p as the 8 bytes a host sends.
func (p SetupPacket) Bytes() []byte {
	b := []byte{p.RequestType, p.Request, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], p.Value)
	binary.LittleEndian.PutUint16(b[4:], p.Index)
	binary.LittleEndian.PutUint16(b[6:], p.Length)
	return b
}

// In reports whether the data stage, if any, goes to the host (bit 7 of
// bmRequestType).
func (p SetupPacket) In() bool { return p.RequestType&0x80 != 0 }

// bmRequestType fields (USB 2.0 Table 9-2).
const (
	typeMask     = 0x60
	typeStandard = 0x00
	typeClass    = 0x20

	recipientMask      = 0x1f
	recipientDevice    = 0
	recipientInterface = 1
	recipientEndpoint  = 2
)

// Standard request codes (USB 2.0 §9.4, Table 9-4).
const (
	reqGetStatus        = 0
	reqClearFeature     = 1
	reqSetFeature       = 3
	reqSetAddress       = 5
	reqGetDescriptor    = 6
	reqGetConfiguration = 8
	reqSetConfiguration = 9
	reqGetInterface     = 10
	reqSetInterface     = 11
)

// Standard feature selectors (USB 2.0 Table 9-6).
const featureEndpointHalt = 0

// Request codes a host may send this function's class; only the first is
// supported (ECM 1.2 §6.2, Table 6).
const (
	reqSetEthernetPacketFilter = 0x43 // ECM 1.2 §6.2.4
)

// Request codes of the standard requests, exported for device controller
// shells that must act on some of them in hardware as well.
const (
	RequestSetAddress       = reqSetAddress
	RequestSetConfiguration = reqSetConfiguration
	RequestClearFeature     = reqClearFeature
	RequestSetFeature       = reqSetFeature
)

// Packet filter bits of SET_ETHERNET_PACKET_FILTER's wValue (ECM 1.2
// §6.2.4, Table 8).
const (
	FilterPromiscuous  = 1 << 0
	FilterAllMulticast = 1 << 1
	FilterDirected     = 1 << 2
	FilterBroadcast    = 1 << 3
	FilterMulticast    = 1 << 4

	// defaultFilter is the filter before the host sets one: what a NIC
	// passes by default (directed, broadcast and all multicast, since the
	// function has no multicast filters).
	defaultFilter = FilterDirected | FilterBroadcast | FilterAllMulticast
)

// Setup answers a control transfer on endpoint 0. data is the data stage
// of a host-to-device request (nil when the controller hands none over).
// It returns the data stage of a device-to-host request, cut to wLength,
// or ErrStall (wrapped) for a request the function refuses: the
// controller then stalls endpoint 0 (USB 2.0 §8.5.3.4, §9.2.7). Setup
// never panics on what a host sends.
func (f *Function) Setup(p SetupPacket, data []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hostSeen = true
	out, err := f.setup(p, data)
	if err != nil {
		f.stats.Stalls++
		return nil, err
	}
	if p.In() && len(out) > int(p.Length) {
		out = out[:p.Length]
	}
	// a copy: the caller (a controller's DMA buffer) may write into it
	return append([]byte(nil), out...), nil
}

func stall(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrStall}, args...)...)
}

func (f *Function) setup(p SetupPacket, data []byte) ([]byte, error) {
	switch p.RequestType & typeMask {
	case typeStandard:
		return f.standard(p)
	case typeClass:
		return f.class(p, data)
	}
	return nil, stall("request type %#02x", p.RequestType)
}

// standard handles the standard requests (USB 2.0 §9.4) a device must
// support in the Address and Configured states.
func (f *Function) standard(p SetupPacket) ([]byte, error) {
	recipient := p.RequestType & recipientMask
	switch p.Request {
	case reqGetDescriptor: // §9.4.3
		if !p.In() || recipient != recipientDevice {
			break
		}
		return f.descriptor(uint8(p.Value>>8), uint8(p.Value), p.Index)
	case reqSetAddress: // §9.4.6
		if p.In() || recipient != recipientDevice || p.Value > 127 || p.Index != 0 || p.Length != 0 || f.config != 0 {
			break
		}
		f.address = uint8(p.Value)
		return nil, nil
	case reqGetConfiguration: // §9.4.2
		if !p.In() || recipient != recipientDevice || p.Length != 1 {
			break
		}
		return []byte{f.config}, nil
	case reqSetConfiguration: // §9.4.7
		if p.In() || recipient != recipientDevice || p.Length != 0 || (p.Value != 0 && p.Value != configValue) {
			break
		}
		if f.address == 0 && p.Value != 0 {
			break // Default state: the request is not specified (§9.4.7); refuse
		}
		f.setConfiguration(uint8(p.Value))
		return nil, nil
	case reqGetInterface: // §9.4.4
		if !p.In() || recipient != recipientInterface || p.Length != 1 || f.config == 0 || p.Index >= numInterfaces {
			break
		}
		if p.Index == ifaceData {
			return []byte{f.alt}, nil
		}
		return []byte{0}, nil
	case reqSetInterface: // §9.4.10
		if p.In() || recipient != recipientInterface || p.Length != 0 || f.config == 0 {
			break
		}
		switch {
		case p.Index == ifaceComm && p.Value == 0:
			return nil, nil
		case p.Index == ifaceData && p.Value <= 1:
			f.setAlt(uint8(p.Value))
			return nil, nil
		}
	case reqGetStatus: // §9.4.5
		if !p.In() || p.Length != 2 || p.Value != 0 {
			break
		}
		switch recipient {
		case recipientDevice: // bus-powered, no remote wakeup
			return []byte{0, 0}, nil
		case recipientInterface:
			if f.config != 0 && p.Index < numInterfaces {
				return []byte{0, 0}, nil
			}
		case recipientEndpoint:
			if h, ok := f.halt(p.Index); ok {
				if h != nil && *h {
					return []byte{1, 0}, nil
				}
				return []byte{0, 0}, nil
			}
		}
	case reqClearFeature, reqSetFeature: // §9.4.1, §9.4.9
		if p.In() || recipient != recipientEndpoint || p.Value != featureEndpointHalt || p.Length != 0 {
			break
		}
		h, ok := f.halt(p.Index)
		if !ok {
			break
		}
		if h != nil {
			*h = p.Request == reqSetFeature
			if !*h && uint8(p.Index) == EPBulkOut {
				// clearing a halt resets the data toggle (§9.4.5): a
				// frame half-received before it is lost
				f.rxPartialDiscard()
			}
		}
		return nil, nil
	}
	return nil, stall("standard request %#02x type %#02x value %#04x index %#04x length %d", p.Request, p.RequestType, p.Value, p.Index, p.Length)
}

// halt finds the halt flag of the endpoint wIndex names; ok is false for
// an endpoint the function does not have in its current state. Endpoint 0
// has no halt flag (h nil).
func (f *Function) halt(index uint16) (h *bool, ok bool) {
	if index&^0x8f != 0 {
		return nil, false
	}
	switch uint8(index) {
	case 0x00, 0x80:
		return nil, true
	case EPNotify:
		if f.config != 0 {
			return &f.halted[0], true
		}
	case EPBulkIn:
		if f.config != 0 && f.alt == 1 {
			return &f.halted[1], true
		}
	case EPBulkOut:
		if f.config != 0 && f.alt == 1 {
			return &f.halted[2], true
		}
	}
	return nil, false
}

func (f *Function) descriptor(typ, index uint8, lang uint16) ([]byte, error) {
	switch typ {
	case descDevice:
		if index == 0 {
			return f.device, nil
		}
	case descConfiguration:
		if index == 0 {
			return f.configHS, nil
		}
	case descOtherSpeed:
		if index == 0 {
			return f.configFS, nil
		}
	case descDeviceQualifier:
		if index == 0 {
			return f.qualifier, nil
		}
	case descString:
		if int(index) < len(f.strings) {
			// wIndex is the language ID; string 0 lists them (§9.6.7).
			// Hosts ask for 0x0409, and some ask with 0; both are
			// answered in the one language the device has.
			if index == 0 || lang == langEnglishUS || lang == 0 {
				return f.strings[index], nil
			}
		}
	}
	return nil, stall("descriptor type %d index %d language %#04x", typ, index, lang)
}

// class handles the ECM class requests (ECM 1.2 §6.2) to the
// communication interface.
func (f *Function) class(p SetupPacket, data []byte) ([]byte, error) {
	if p.RequestType&recipientMask != recipientInterface || p.Index != ifaceComm || f.config == 0 {
		return nil, stall("class request %#02x to %#04x", p.Request, p.Index)
	}
	switch p.Request {
	case reqSetEthernetPacketFilter:
		if p.In() || p.Length != 0 || p.Value&^0x1f != 0 {
			break
		}
		f.filter = p.Value
		return nil, nil
	}
	return nil, stall("class request %#02x", p.Request)
}
