// Package imxusb runs an ecm.Function on the i.MX6 USB OTG controller in
// device mode, with tamago's soc/nxp/usb driver: a thin shell. The board
// calls Start with its port (imx6ul.USB1 on the USB armory Mk II, the
// Type-C receptacle) and the function; the controller then polls in its
// own goroutines, no interrupts needed.
//
// How the function's bytes reach the host: tamago's usb.Device builds
// descriptors from structs, but every setup packet goes first to the
// device's Setup hook, and the hook here answers all of them from the
// function (done: tamago's own handlers do not run), descriptors
// included. Only SET_ADDRESS, SET_CONFIGURATION and CLEAR_FEATURE(halt)
// are passed on to tamago as well after the function has accepted them,
// because they must also act on the controller: the address register,
// starting the endpoint goroutines, the data toggle. tamago's descriptor
// structs therefore only carry the endpoints it starts, built from
// ecm.Endpoints so they cannot disagree with the descriptors the host
// reads.
//
// Endpoints: bulk OUT hands each completed transfer (the controller
// reassembles packets until a short one) to Function.BulkOutTransfer;
// bulk IN sends Function.BulkInTransfer's frames as one transfer each with
// the controller's zero-length termination on, so a frame of a multiple
// of 512 bytes ends with a ZLP; the interrupt endpoint sends
// Function.Notification's. This file holds the parts of the shell that do
// not touch the controller, so that the host tests run them.
package imxusb

import (
	"errors"
	"math/bits"
	"time"

	"github.com/teastick/teastick/netstack/ecm"
)

// Packet converts the setup packet tamago hands its Setup hook into the
// host's. tamago's SetupData.swap byte-swaps wValue (its handlers read
// the descriptor type from the low byte and the configuration value from
// the high one); wIndex and wLength are as sent (USB 2.0 Table 9-2).
func Packet(requestType, request uint8, value, index, length uint16) ecm.SetupPacket {
	return ecm.SetupPacket{RequestType: requestType, Request: request, Value: bits.ReverseBytes16(value), Index: index, Length: length}
}

// Answer is the Setup hook's decision for one setup packet, in tamago's
// terms (usb.SetupFunction): in is the data stage to send; ack a status
// stage to send when in is empty; done that tamago's own handlers must
// not run; err a stall. reset is called first on SET_ADDRESS: a host
// addresses a device only after a bus reset (USB 2.0 §9.1.1.3-4), which
// tamago handles without telling the hook.
func Answer(f *ecm.Function, p ecm.SetupPacket, reset func()) (in []byte, ack, done bool, err error) {
	standard := p.RequestType&0x60 == 0
	if standard && p.Request == ecm.RequestSetAddress && p.RequestType == 0 && reset != nil {
		reset()
	}
	in, err = f.Setup(p, nil)
	if err != nil {
		return nil, false, true, err
	}
	if standard && p.RequestType&0x80 == 0 {
		switch p.Request {
		case ecm.RequestSetAddress, ecm.RequestSetConfiguration:
			// tamago writes DEVICEADDR, or starts the endpoints, and acks
			return nil, false, false, nil
		case ecm.RequestClearFeature:
			if p.RequestType&0x1f == 2 { // endpoint: tamago resets the data toggle and acks
				return nil, false, false, nil
			}
		}
	}
	if p.In() {
		if len(in) == 0 {
			return nil, true, true, nil
		}
		return in, false, true, nil
	}
	// a host-to-device request without data: the status stage
	return nil, true, true, nil
}

// idle is how long an IN endpoint loop sleeps when it has nothing to send,
// so that the core can idle (tamago's endpoint loop otherwise spins).
const (
	bulkIdle   = 50 * time.Microsecond
	notifyIdle = 4 * time.Millisecond
)

// bulkOut is the bulk OUT endpoint's function: each completed transfer is
// one frame. It never reports an error (which would stall the endpoint,
// and tamago has no way to clear a bulk stall): what the function cannot
// use it counts. It returns once the function has room for the next
// frame, so that the controller NAKs the host meanwhile.
func bulkOut(f *ecm.Function) func([]byte, error) ([]byte, error) {
	return func(buf []byte, _ error) ([]byte, error) {
		f.BulkOutTransfer(buf)
		for !f.OutReady() {
			time.Sleep(bulkIdle)
		}
		return nil, nil // nil: the next transfer gets tamago's default buffer
	}
}

// bulkIn is the bulk IN endpoint's function: the next frame, or nothing.
func bulkIn(f *ecm.Function) func([]byte, error) ([]byte, error) {
	return func([]byte, error) ([]byte, error) {
		if t := f.BulkInTransfer(); t != nil {
			return t, nil
		}
		time.Sleep(bulkIdle)
		return nil, nil
	}
}

// notify is the interrupt IN endpoint's function.
func notify(f *ecm.Function) func([]byte, error) ([]byte, error) {
	return func([]byte, error) ([]byte, error) {
		if n := f.Notification(); n != nil {
			return n, nil
		}
		time.Sleep(notifyIdle)
		return nil, nil
	}
}

// zlt reports whether an endpoint needs the controller's zero-length
// termination: the bulk IN endpoint, whose transfers are whole frames.
// The notification endpoint's transfers are one packet each and must not
// get a ZLP after a full 16-byte CONNECTION_SPEED_CHANGE.
func zlt(e ecm.Endpoint) bool { return e.Address == ecm.EPBulkIn }

var (
	// ErrNoController: the SoC has no USB device controller to run the
	// function on (QEMU's mcimx6ul-evk emulates a host-only chipidea).
	ErrNoController = errors.New("imxusb: no USB device controller (emulated?)")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("imxusb: already started")
)
