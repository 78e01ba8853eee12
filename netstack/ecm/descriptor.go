package ecm

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// USB identifiers: pid.codes' VID, teastick's PID (https://pid.codes/1209/2702/).
const (
	VendorID  = 0x1209
	ProductID = 0x2702
)

// Descriptor types (USB 2.0 §9.4, Table 9-5; IAD ECN, Table 9-Z).
const (
	descDevice          = 1
	descConfiguration   = 2
	descString          = 3
	descInterface       = 4
	descEndpoint        = 5
	descDeviceQualifier = 6
	descOtherSpeed      = 7
	descIAD             = 11
	descCSInterface     = 0x24 // CDC 1.2 §5.2.3, Table 12
)

// CDC functional descriptor subtypes (CDC 1.2 §5.2.3, Table 13).
const (
	fdHeader   = 0x00
	fdUnion    = 0x06
	fdEthernet = 0x0f
)

// Class codes: CDC communication interface, ECM subclass (CDC 1.2 §4.2,
// §4.3, Table 4), CDC data interface (§4.5); the device class of a device
// with an IAD (IAD ECN: Miscellaneous 0xEF, common class 0x02, IAD 0x01).
const (
	classComm        = 0x02
	subclassECM      = 0x06
	classData        = 0x0a
	classMisc        = 0xef
	subclassCommon   = 0x02
	protocolIAD      = 0x01
	bcdCDC           = 0x0120
	bcdUSB           = 0x0200
	maxPacket0       = 64
	attrBusPowered   = 0x80 // USB 2.0 Table 9-10: D7 reserved, set to one
	maxPower2mA      = 250  // 500 mA
	configValue      = 1
	ifaceComm        = 0
	ifaceData        = 1
	numInterfaces    = 2
	endpointTypeBulk = 0x02
	endpointTypeIntr = 0x03
)

// Endpoints of the function (USB 2.0 §9.6.6).
const (
	EPNotify  = 0x81 // interrupt IN: notifications (CDC 1.2 §3.4.1)
	EPBulkIn  = 0x82 // bulk IN: frames to the host
	EPBulkOut = 0x02 // bulk OUT: frames from the host

	// MaxPacket is the bulk endpoints' wMaxPacketSize at high speed
	// (USB 2.0 §5.8.3: 512 bytes for high-speed bulk).
	MaxPacket = 512
	// NotifyMaxPacket is the notification endpoint's wMaxPacketSize: one
	// CONNECTION_SPEED_CHANGE (8-byte header and 8 bytes of data) fits.
	NotifyMaxPacket = 16
	// notifyInterval is bInterval of the notification endpoint: 2^(9-1)
	// microframes = 32 ms at high speed (USB 2.0 Table 9-13).
	notifyInterval = 9
	// fullSpeedPacket and fullSpeedInterval describe the other speed
	// (full speed: bulk at most 64 bytes, interrupt bInterval in ms).
	fullSpeedPacket   = 64
	fullSpeedInterval = 32
)

// MaxFrame is the largest Ethernet frame (no FCS) the function carries:
// wMaxSegmentSize in the Ethernet networking functional descriptor
// (ECM 1.2 §5.4, Table 3), a 1500-byte MTU and the 14-byte header.
const MaxFrame = 1514

// minFrame is an Ethernet header: anything shorter is a runt.
const minFrame = 14

// String descriptor indices (USB 2.0 §9.6.7). Index 0 is the language list.
const (
	strManufacturer = 1
	strProduct      = 2
	strSerial       = 3
	strMAC          = 4
	numStrings      = 5
	langEnglishUS   = 0x0409
)

// Endpoint describes one of the function's endpoints as a device controller
// needs it to program its queue heads.
type Endpoint struct {
	Address       uint8  // bEndpointAddress: bit 7 set for IN
	Attributes    uint8  // bmAttributes: 2 bulk, 3 interrupt
	MaxPacketSize uint16 // wMaxPacketSize at high speed
	Interval      uint8  // bInterval at high speed
}

// Endpoints lists the function's endpoints besides endpoint 0, in the order
// of the configuration descriptor.
func Endpoints() []Endpoint {
	return []Endpoint{
		{EPNotify, endpointTypeIntr, NotifyMaxPacket, notifyInterval},
		{EPBulkIn, endpointTypeBulk, MaxPacket, 0},
		{EPBulkOut, endpointTypeBulk, MaxPacket, 0},
	}
}

// deviceDescriptor builds the device descriptor (USB 2.0 §9.6.1, Table
// 9-8). The class triple says the configuration holds an IAD (IAD ECN §2).
func deviceDescriptor() []byte {
	b := []byte{18, descDevice, 0, 0, classMisc, subclassCommon, protocolIAD, maxPacket0,
		0, 0, 0, 0, 0x00, 0x01, strManufacturer, strProduct, strSerial, 1}
	binary.LittleEndian.PutUint16(b[2:], bcdUSB)
	binary.LittleEndian.PutUint16(b[8:], VendorID)
	binary.LittleEndian.PutUint16(b[10:], ProductID)
	return b
}

// qualifierDescriptor builds the device qualifier (USB 2.0 §9.6.2, Table
// 9-9): what the device would be at the other speed.
func qualifierDescriptor() []byte {
	b := []byte{10, descDeviceQualifier, 0, 0, classMisc, subclassCommon, protocolIAD, maxPacket0, 1, 0}
	binary.LittleEndian.PutUint16(b[2:], bcdUSB)
	return b
}

// configDescriptor builds the configuration descriptor and everything that
// follows it (USB 2.0 §9.4.3: one GET_DESCRIPTOR returns the whole set).
// highSpeed false gives the other-speed configuration (§9.6.4), with
// bDescriptorType OTHER_SPEED_CONFIGURATION and full-speed packet sizes.
func configDescriptor(highSpeed bool) []byte {
	typ, bulk, interval := byte(descConfiguration), uint16(MaxPacket), byte(notifyInterval)
	if !highSpeed {
		typ, bulk, interval = descOtherSpeed, fullSpeedPacket, fullSpeedInterval
	}
	var b []byte
	// configuration (USB 2.0 Table 9-10); wTotalLength filled in below
	b = append(b, 9, typ, 0, 0, numInterfaces, configValue, 0, attrBusPowered, maxPower2mA)
	// interface association (IAD ECN Table 9-Z): both interfaces are one
	// function, of the CDC ECM class
	b = append(b, 8, descIAD, ifaceComm, 2, classComm, subclassECM, 0, strProduct)
	// communication interface (CDC 1.2 §4.2-4.4; ECM 1.2 §4.2), one endpoint
	b = append(b, 9, descInterface, ifaceComm, 0, 1, classComm, subclassECM, 0, 0)
	// header functional descriptor (CDC 1.2 §5.2.3.1, Table 15)
	b = append(b, 5, descCSInterface, fdHeader, bcdCDC&0xff, bcdCDC>>8)
	// union functional descriptor (CDC 1.2 §5.2.3.2, Table 16): the
	// communication interface controls the data interface
	b = append(b, 5, descCSInterface, fdUnion, ifaceComm, ifaceData)
	// Ethernet networking functional descriptor (ECM 1.2 §5.4, Table 3):
	// iMACAddress, no statistics, wMaxSegmentSize, no multicast filters
	// (wNumberMCFilters 0: the host must use ALL_MULTICAST), no power filters
	b = append(b, 13, descCSInterface, fdEthernet, strMAC, 0, 0, 0, 0, MaxFrame&0xff, MaxFrame>>8, 0, 0, 0)
	// notification endpoint (ECM 1.2 §3.2: optional, but Linux waits for
	// NETWORK_CONNECTION on it before it sets the carrier)
	b = append(b, 7, descEndpoint, EPNotify, endpointTypeIntr, NotifyMaxPacket, 0, interval)
	// data interface, altsetting 0: no endpoints, no traffic (ECM 1.2 §3.3)
	b = append(b, 9, descInterface, ifaceData, 0, 0, classData, 0, 0, 0)
	// data interface, altsetting 1: bulk IN and bulk OUT
	b = append(b, 9, descInterface, ifaceData, 1, 2, classData, 0, 0, 0)
	b = append(b, 7, descEndpoint, EPBulkIn, endpointTypeBulk, byte(bulk), byte(bulk>>8), 0)
	b = append(b, 7, descEndpoint, EPBulkOut, endpointTypeBulk, byte(bulk), byte(bulk>>8), 0)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// stringDescriptor encodes s as a UNICODE string descriptor (USB 2.0
// §9.6.7, Table 9-16): UTF-16LE, at most 126 code units.
func stringDescriptor(s string) ([]byte, error) {
	u := utf16.Encode([]rune(s))
	if 2+2*len(u) > 255 {
		return nil, fmt.Errorf("%w: string %q is %d UTF-16 units, at most 126", ErrConfig, s, len(u))
	}
	b := make([]byte, 2, 2+2*len(u))
	b[0], b[1] = byte(2+2*len(u)), descString
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return b, nil
}

// MACString is mac as iMACAddress wants it: 12 hexadecimal digits, the most
// significant first, upper case (ECM 1.2 §5.4, Table 3: "The Unicode
// character is chosen from the set of values 30h through 39h and 41h
// through 46h (0-9 and A-F)").
func MACString(mac [6]byte) string {
	return strings.ToUpper(fmt.Sprintf("%x", mac[:]))
}
