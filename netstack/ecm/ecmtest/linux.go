// Package ecmtest is TEST CODE: a simulated USB host for netstack/ecm. It
// enumerates the function through control transfers, binds it the way
// Linux's cdc_ether and usbnet do (LinuxBind), and moves Ethernet frames
// through the bulk endpoints packet by packet, as Linux's usbnet sends
// them (Host is a netstack.NIC: the box's end of the USB cable). No USB
// timing is simulated: a packet is a function call.
package ecmtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// ErrBind is a descriptor set Linux's cdc_ether would refuse ("bad CDC
// descriptors"), or one that breaks a rule the stick promises beyond it.
var ErrBind = errors.New("ecmtest: the host would not bind")

// Endpoint is a parsed endpoint descriptor (USB 2.0 Table 9-13).
type Endpoint struct {
	Address, Attributes uint8
	MaxPacket           uint16
	Interval            uint8
}

// In reports an IN endpoint; Bulk and Interrupt the transfer type.
func (e Endpoint) In() bool        { return e.Address&0x80 != 0 }
func (e Endpoint) Bulk() bool      { return e.Attributes&3 == 2 }
func (e Endpoint) Interrupt() bool { return e.Attributes&3 == 3 }

// Altsetting is one interface descriptor with what follows it, as Linux's
// usb_parse_interface keeps it: the class-specific descriptors between it
// and its first endpoint are its "extra" bytes.
type Altsetting struct {
	Number, Alt, Class, SubClass, Protocol, NumEndpoints uint8
	Extra                                                []byte
	Endpoints                                            []Endpoint
}

// Config is a parsed configuration descriptor set.
type Config struct {
	Value, NumInterfaces uint8
	IADs                 [][]byte
	// Interfaces[n] are interface n's altsettings in descriptor order.
	Interfaces map[uint8][]*Altsetting
}

// ParseConfig splits a configuration descriptor set the way Linux's
// usb_parse_configuration (drivers/usb/core/config.c) does, and refuses
// what it refuses: a bad header, a descriptor overrunning the buffer,
// wTotalLength other than what was read, an endpoint outside an interface.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) < 9 || b[0] < 9 || int(b[0]) > len(b) || b[1] != 2 {
		return nil, fmt.Errorf("%w: not a configuration descriptor", ErrBind)
	}
	if int(binary.LittleEndian.Uint16(b[2:])) != len(b) {
		return nil, fmt.Errorf("%w: wTotalLength %d, read %d", ErrBind, binary.LittleEndian.Uint16(b[2:]), len(b))
	}
	c := &Config{NumInterfaces: b[4], Value: b[5], Interfaces: map[uint8][]*Altsetting{}}
	var cur *Altsetting
	for rest := b[b[0]:]; len(rest) > 0; {
		if len(rest) < 2 || rest[0] < 2 || int(rest[0]) > len(rest) {
			return nil, fmt.Errorf("%w: descriptor of length %d with %d bytes left", ErrBind, rest[0], len(rest))
		}
		d := rest[:rest[0]]
		rest = rest[rest[0]:]
		switch d[1] {
		case 4: // interface
			if len(d) < 9 {
				return nil, fmt.Errorf("%w: interface descriptor of %d bytes", ErrBind, len(d))
			}
			cur = &Altsetting{Number: d[2], Alt: d[3], NumEndpoints: d[4], Class: d[5], SubClass: d[6], Protocol: d[7]}
			c.Interfaces[d[2]] = append(c.Interfaces[d[2]], cur)
		case 5: // endpoint
			if cur == nil || len(d) < 7 {
				return nil, fmt.Errorf("%w: endpoint outside an interface, or short", ErrBind)
			}
			cur.Endpoints = append(cur.Endpoints, Endpoint{d[2], d[3], binary.LittleEndian.Uint16(d[4:]), d[6]})
		case 11: // interface association
			if len(d) < 8 {
				return nil, fmt.Errorf("%w: IAD of %d bytes", ErrBind, len(d))
			}
			c.IADs = append(c.IADs, d)
		default:
			if cur != nil && len(cur.Endpoints) == 0 {
				cur.Extra = append(cur.Extra, d...)
			}
		}
	}
	for n, alts := range c.Interfaces {
		for _, a := range alts {
			if int(a.NumEndpoints) != len(a.Endpoints) {
				return nil, fmt.Errorf("%w: interface %d alt %d announces %d endpoints, has %d", ErrBind, n, a.Alt, a.NumEndpoints, len(a.Endpoints))
			}
		}
	}
	if int(c.NumInterfaces) != len(c.Interfaces) {
		return nil, fmt.Errorf("%w: bNumInterfaces %d, %d interfaces", ErrBind, c.NumInterfaces, len(c.Interfaces))
	}
	return c, nil
}

// Binding is what cdc_ether and usbnet take from the descriptors.
type Binding struct {
	Control, Data uint8 // interface numbers (union)
	HardMTU       int   // wMaxSegmentSize
	MACString     string
	MAC           [6]byte
	DataAlt       uint8 // the altsetting usbnet_get_endpoints selects
	In, Out       Endpoint
	Status        *Endpoint // the notification endpoint, if usable
}

// LinuxBind checks cfg the way Linux binds a CDC Ethernet function, step
// by step after drivers/net/usb/cdc_ether.c (usbnet_generic_cdc_bind,
// cdc_bind) and drivers/net/usb/usbnet.c (usbnet_get_endpoints,
// usbnet_get_ethernet_addr); str fetches a string descriptor by index (in
// the device's first language, as usb_string does). Then it checks the
// rules the stick promises beyond Linux (issue 17): wMaxSegmentSize 1514,
// an iMACAddress of 12 upper-case hex digits, a data interface whose
// altsetting 0 has no endpoints and altsetting 1 one bulk IN and one bulk
// OUT, both of class 0x0A, and an IAD spanning both interfaces.
func LinuxBind(cfg *Config, str func(index uint8) (string, error)) (*Binding, error) {
	// the id table: USB_INTERFACE_INFO(USB_CLASS_COMM,
	// USB_CDC_SUBCLASS_ETHERNET, USB_CDC_PROTO_NONE); probed with the
	// interface's current altsetting, 0 after SET_CONFIGURATION
	var intf *Altsetting
	for n := range 256 {
		alts := cfg.Interfaces[uint8(n)]
		if len(alts) > 0 && alts[0].Class == 0x02 && alts[0].SubClass == 0x06 && alts[0].Protocol == 0 {
			intf = alts[0]
			break
		}
	}
	if intf == nil {
		return nil, fmt.Errorf("%w: no interface of class 2 subclass 6 protocol 0", ErrBind)
	}
	b := &Binding{Control: intf.Number}
	var header, union, ether []byte
	var data []*Altsetting
	buf := intf.Extra
	for len(buf) > 3 {
		l := int(buf[0])
		if l == 0 || l > len(buf) {
			return nil, fmt.Errorf("%w: functional descriptor length %d", ErrBind, l)
		}
		if buf[1] == 0x24 { // USB_DT_CS_INTERFACE
			switch buf[2] {
			case 0x00: // USB_CDC_HEADER_TYPE
				if header != nil || l != 5 {
					return nil, fmt.Errorf("%w: extra CDC header, or length %d", ErrBind, l)
				}
				header = buf[:l]
			case 0x06: // USB_CDC_UNION_TYPE
				if union != nil || l != 5 {
					return nil, fmt.Errorf("%w: extra CDC union, or length %d", ErrBind, l)
				}
				union = buf[:l]
				control, slave := cfg.Interfaces[union[3]], cfg.Interfaces[union[4]]
				if len(control) == 0 || len(slave) == 0 {
					return nil, fmt.Errorf("%w: union master #%d slave #%d", ErrBind, union[3], union[4])
				}
				if union[3] != intf.Number {
					return nil, fmt.Errorf("%w: bogus CDC union", ErrBind)
				}
				// "a data interface altsetting does the real i/o": the
				// current (0) altsetting must be CDC data
				if slave[0].Class != 0x0a {
					return nil, fmt.Errorf("%w: slave class %d", ErrBind, slave[0].Class)
				}
				b.Data, data = union[4], slave
			case 0x0f: // USB_CDC_ETHERNET_TYPE
				if ether != nil || l != 13 {
					return nil, fmt.Errorf("%w: extra CDC ether, or length %d", ErrBind, l)
				}
				ether = buf[:l]
				b.HardMTU = int(binary.LittleEndian.Uint16(ether[8:]))
			}
		}
		buf = buf[l:]
	}
	if header == nil || union == nil || ether == nil {
		return nil, fmt.Errorf("%w: missing cdc header %t union %t ether %t descriptor", ErrBind, header != nil, union != nil, ether != nil)
	}
	// usbnet_get_endpoints: the first altsetting with a bulk IN and a
	// bulk OUT (endpoints with wMaxPacketSize 0 ignored)
	found := false
	for _, alt := range data {
		var in, out *Endpoint
		for i := range alt.Endpoints {
			e := &alt.Endpoints[i]
			if e.MaxPacket == 0 || !e.Bulk() {
				continue
			}
			if e.In() && in == nil {
				in = e
			} else if !e.In() && out == nil {
				out = e
			}
		}
		if in != nil && out != nil {
			b.DataAlt, b.In, b.Out, found = alt.Alt, *in, *out, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: no altsetting with bulk IN and bulk OUT", ErrBind)
	}
	// status endpoint: optional; one interrupt IN with room for a
	// notification header and a non-zero bInterval
	if len(intf.Endpoints) == 1 {
		e := intf.Endpoints[0]
		if e.Interrupt() && e.In() && e.MaxPacket >= 8 && e.Interval != 0 {
			b.Status = &e
		}
	}
	// usbnet_get_ethernet_addr: usb_string of iMACAddress must be 12
	// characters, hex2bin of them 6 bytes
	s, err := str(ether[3])
	if err != nil {
		return nil, fmt.Errorf("%w: iMACAddress string %d: %v", ErrBind, ether[3], err)
	}
	if len(s) != 12 {
		return nil, fmt.Errorf("%w: bad MAC string %q", ErrBind, s)
	}
	for i := range 6 {
		hi, ok1 := hexDigit(s[2*i], true)
		lo, ok2 := hexDigit(s[2*i+1], true)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: bad MAC string %q", ErrBind, s)
		}
		b.MAC[i] = hi<<4 | lo
	}
	b.MACString = s

	// beyond Linux: what the issue requires of the stick
	if b.HardMTU != 1514 {
		return nil, fmt.Errorf("%w: wMaxSegmentSize %d, want 1514", ErrBind, b.HardMTU)
	}
	for i := range len(s) {
		if _, ok := hexDigit(s[i], false); !ok {
			return nil, fmt.Errorf("%w: iMACAddress %q is not upper-case hex (ECM 1.2 §5.4)", ErrBind, s)
		}
	}
	if len(data) != 2 || data[0].Alt != 0 || len(data[0].Endpoints) != 0 || data[1].Alt != 1 {
		return nil, fmt.Errorf("%w: data interface needs altsetting 0 without endpoints and altsetting 1", ErrBind)
	}
	a1 := data[1]
	if data[0].Class != 0x0a || a1.Class != 0x0a || len(a1.Endpoints) != 2 || b.DataAlt != 1 ||
		!a1.Endpoints[0].Bulk() || !a1.Endpoints[1].Bulk() || a1.Endpoints[0].In() == a1.Endpoints[1].In() {
		return nil, fmt.Errorf("%w: data altsetting 1 needs one bulk IN and one bulk OUT, class 0x0A", ErrBind)
	}
	iadOK := false
	for _, iad := range cfg.IADs {
		lo, n := iad[2], iad[3]
		if iad[4] == 0x02 && iad[5] == 0x06 && lo <= b.Control && b.Control < lo+n && lo <= b.Data && b.Data < lo+n {
			iadOK = true
		}
	}
	if !iadOK {
		return nil, fmt.Errorf("%w: no IAD of class 2 subclass 6 spans interfaces %d and %d", ErrBind, b.Control, b.Data)
	}
	return b, nil
}

// hexDigit is Linux's hex_to_bin (lower case too), or upper case only.
func hexDigit(c byte, lower bool) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case lower && c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// DecodeString decodes a UNICODE string descriptor (USB 2.0 Table 9-16)
// the way usb_string does: bLength bounds it, UTF-16LE.
func DecodeString(d []byte) (string, error) {
	if len(d) < 2 || d[1] != 3 || int(d[0]) > len(d) || d[0] < 2 || d[0]%2 != 0 {
		return "", fmt.Errorf("%w: not a string descriptor", ErrBind)
	}
	u := make([]uint16, 0, (d[0]-2)/2)
	for i := 2; i+1 < int(d[0]); i += 2 {
		u = append(u, binary.LittleEndian.Uint16(d[i:]))
	}
	return string(utf16.Decode(u)), nil
}
