//go:build tamago && arm

package imxusb

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
	"github.com/usbarmory/tamago/soc/nxp/usb"

	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/netstack/ecm"
)

// Registers the shell reads itself (i.MX6UL reference manual, IMX6ULRM
// §56.6 USB Core Memory Map).
const (
	regDCCPARAMS = 0x124 // §56.6.10 Device Control Capability Parameters
	dccparamsDC  = 1 << 7
	regOTGSC     = 0x1a4   // §56.6.32 On-The-Go Status & control
	otgscBSV     = 1 << 11 // B session valid: VBUS from a host
)

var started atomic.Bool

// Start runs f on port in device mode: it initializes the controller
// (port.Init: the board must not call it too) and returns; enumeration and
// transfers run in goroutines from then on. It
// returns ErrNoController where there is no device controller (under
// emulation, detected at run time by tamago: imx6ul.Native), without
// touching the controller.
func Start(port *usb.USB, f *ecm.Function) error {
	if port == nil || f == nil {
		return errors.New("imxusb: Start needs a port and a function")
	}
	if !imx6ul.Native {
		return ErrNoController
	}
	if !started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	port.Init()
	if mmio.Read32(uintptr(port.Base+regDCCPARAMS))&dccparamsDC == 0 {
		return ErrNoController
	}
	dev := device(f)
	go func() {
		port.DeviceMode()
		port.Start(dev) // polls for setup packets and bus resets; never returns
	}()
	go watchVBUS(port, f)
	return nil
}

// VBUS reports whether a host powers the port (OTGSC.BSV): a cable to a
// host is plugged in, whether or not it has enumerated the stick yet.
func VBUS(port *usb.USB) bool {
	if !started.Load() {
		return false
	}
	return mmio.Read32(uintptr(port.Base+regOTGSC))&otgscBSV != 0
}

// HostPresent reports whether a USB host is there: VBUS, or a setup
// packet received. False under QEMU, where Start found no controller.
func HostPresent(port *usb.USB, f *ecm.Function) bool {
	return started.Load() && (VBUS(port) || f.HostSeen())
}

// watchVBUS resets the function when the host goes away (VBUS drops):
// frames queued for it are dropped and the stack sees the link down.
func watchVBUS(port *usb.USB, f *ecm.Function) {
	was := false
	for {
		now := VBUS(port)
		if was && !now {
			f.Reset()
		}
		was = now
		time.Sleep(100 * time.Millisecond)
	}
}

// device is tamago's view of the function: the Setup hook answers every
// request; the configuration only lists the endpoints tamago starts.
func device(f *ecm.Function) *usb.Device {
	dev := &usb.Device{Descriptor: &usb.DeviceDescriptor{}, Qualifier: &usb.DeviceQualifierDescriptor{}}
	dev.Descriptor.SetDefaults()
	dev.Qualifier.SetDefaults()
	conf := &usb.ConfigurationDescriptor{}
	conf.SetDefaults()
	iface := &usb.InterfaceDescriptor{}
	iface.SetDefaults()
	for _, e := range ecm.Endpoints() {
		ep := &usb.EndpointDescriptor{}
		ep.SetDefaults()
		ep.EndpointAddress, ep.Attributes, ep.MaxPacketSize, ep.Interval = e.Address, e.Attributes, e.MaxPacketSize, e.Interval
		ep.Zero = zlt(e)
		switch e.Address {
		case ecm.EPNotify:
			ep.Function = notify(f)
		case ecm.EPBulkIn:
			ep.Function = bulkIn(f)
		case ecm.EPBulkOut:
			ep.Function = bulkOut(f)
		}
		iface.Endpoints = append(iface.Endpoints, ep)
	}
	iface.NumEndpoints = uint8(len(iface.Endpoints))
	conf.AddInterface(iface)
	dev.AddConfiguration(conf)
	dev.Setup = func(s *usb.SetupData) (in []byte, ack, done bool, err error) {
		return Answer(f, Packet(s.RequestType, s.Request, s.Value, s.Index, s.Length), f.Reset)
	}
	return dev
}
