// Package boxlink is the box's end of the stick's USB Ethernet link (Linux):
// the systemd-networkd files a miner installs (shipped in every release
// bundle, generated here and nowhere else), the kubo configuration that
// puts the box's gateway on the link and keeps its RPC API on loopback, and
// finding the stick's interface through sysfs.
//
// The conventions are fixed for every stick (ARCHITECTURE, "Network"): the
// stick's MAC is 1e:a5:71:h0:h1:h2 and the box-side interface's
// 1e:a5:70:h0:h1:h2 (netstack/ecm.MACs derives h0..h2 from the stick's
// unique ID); the stick is 10.0.0.1/24 and the box 10.0.0.2
// (netstack.USBArmory); the stick's API is HTTPS on port 80 and the box's
// kubo gateway is http://10.0.0.2:8080; the USB function is VID 0x1209
// (pid.codes) PID 0x2702.
package boxlink

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/teastick/teastick/netstack/ecm"
)

// USB IDs of the stick's CDC-ECM function (the function's own constants).
const (
	USBVendorID  = ecm.VendorID
	USBProductID = ecm.ProductID
	// Driver is the Linux driver that binds the ECM function.
	Driver = "cdc_ether"
	// InterfaceName is the name the .link file gives the box-side
	// interface.
	InterfaceName = "teastick0"
)

// Ports.
const (
	StickAPIPort = 80   // the stick's HTTPS API (firmware/stick: net.Listen ":80")
	GatewayPort  = 8080 // the box's kubo gateway on the link
	RPCPort      = 5001 // the box's kubo RPC API, on loopback only
)

// MAC prefixes (locally administered: bit 1 of the first octet set).
var (
	BoxMACPrefix   = [3]byte{0x1e, 0xa5, 0x70}
	StickMACPrefix = [3]byte{0x1e, 0xa5, 0x71}
)

// Addresses on the link (netstack.USBArmory, checked by the tests).
var (
	StickAddr = netip.MustParseAddr("10.0.0.1")
	BoxAddr   = netip.MustParsePrefix("10.0.0.2/24")
)

// StickURL is the stick's API on the link.
func StickURL() string { return fmt.Sprintf("https://%s:%d", StickAddr, StickAPIPort) }

// GatewayURL is the box's kubo gateway as the stick reaches it.
func GatewayURL() string { return fmt.Sprintf("http://%s:%d", BoxAddr.Addr(), GatewayPort) }

// File is one file shipped to the box.
type File struct {
	// Name is the path in a release bundle (NetworkdDir/...).
	Name    string
	Content []byte
	// Install is where it goes on the box.
	Install string
}

// NetworkdDir is the bundle directory of the networkd files.
const NetworkdDir = "networkd"

// Names of the networkd files. Both sort before systemd's defaults
// (99-default.link, and networkd's 80-*/99-* .network files): the first
// matching file in lexical order wins.
const (
	LinkFile    = "10-teastick.link"
	NetworkFile = "10-teastick.network"
)

// usbMatch is the [Match] both files use: the USB IDs the udev builtin
// usb_id sets on a USB network device (75-net-description.rules) and the
// driver. systemd's MACAddress= takes whole addresses only (systemd.link(5)
// and systemd.network(5), systemd 252 to 256), so no networkd file can match
// the MAC prefix; `teactl stick find` checks it.
func usbMatch() string {
	return fmt.Sprintf("Property=ID_VENDOR_ID=%04x ID_MODEL_ID=%04x\nDriver=%s\n", USBVendorID, USBProductID, Driver)
}

// NetworkdFiles are the systemd-networkd files for the box: a .link file
// that names the stick's interface teastick0, and a .network file that
// gives it 10.0.0.2/24 and nothing else (no gateway, so no default route
// via the stick; no DHCP; no IPv6; no LLDP).
func NetworkdFiles() []File {
	link := "# teastick: the USB Ethernet (CDC-ECM) function of a teastick stick, VID 0x1209\n" +
		"# (pid.codes) PID 0x2702. Its MAC is 1e:a5:70:xx:xx:xx (box side); `teactl stick find`\n" +
		"# checks it. Install in /etc/systemd/network/ (udev applies it when the stick is plugged in).\n" +
		"[Match]\n" + usbMatch() +
		"\n[Link]\n" +
		"Name=" + InterfaceName + "\n" +
		"# keep the address the stick announces (the ECM iMACAddress)\n" +
		"MACAddressPolicy=none\n"
	network := "# teastick: the box's end of the stick's USB link. The stick is 10.0.0.1,\n" +
		"# the box 10.0.0.2; no default route, DNS or DHCP goes over the stick.\n" +
		"# Install in /etc/systemd/network/ beside " + LinkFile + ", then `networkctl reload`.\n" +
		"[Match]\n" +
		"Name=" + InterfaceName + "\n" + usbMatch() +
		"\n[Link]\n" +
		"# the box is online without its stick\n" +
		"RequiredForOnline=no\n" +
		"\n[Network]\n" +
		"Address=" + BoxAddr.String() + "\n" +
		"DHCP=no\n" +
		"DHCPServer=no\n" +
		"LinkLocalAddressing=no\n" +
		"IPv6AcceptRA=no\n" +
		"LLDP=no\n" +
		"EmitLLDP=no\n"
	return []File{
		{Name: NetworkdDir + "/" + LinkFile, Content: []byte(link), Install: "/etc/systemd/network/" + LinkFile},
		{Name: NetworkdDir + "/" + NetworkFile, Content: []byte(network), Install: "/etc/systemd/network/" + NetworkFile},
	}
}

// KuboConfig is what `ipfs config` must set on the box (one command per
// entry, arguments after `ipfs`): the gateway listens on the link address
// only, the RPC API on loopback only (it can add, pin and delete: nothing on
// the link may reach it), and the gateway serves only verifiable responses
// (CAR and raw blocks, the trustless gateway: all the stick asks for) and
// not the delegated routing API kubo otherwise exposes beside it
// (/routing/v1, lookups in the network on the stick's behalf).
func KuboConfig() [][]string {
	return [][]string{
		{"config", "Addresses.Gateway", fmt.Sprintf("/ip4/%s/tcp/%d", BoxAddr.Addr(), GatewayPort)},
		{"config", "Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", RPCPort)},
		{"config", "--json", "Gateway.DeserializedResponses", "false"},
		{"config", "--json", "Gateway.ExposeRoutingAPI", "false"},
	}
}

// NonlocalBindSysctl lets kubo bind 10.0.0.2 while the stick is unplugged
// (the address exists only while its interface does): without it the
// daemon fails to start when the stick is absent at boot.
const NonlocalBindSysctl = "net.ipv4.ip_nonlocal_bind=1"

// Commands renders KuboConfig as shell lines.
func Commands() string {
	var b strings.Builder
	for _, c := range KuboConfig() {
		b.WriteString("ipfs")
		for _, a := range c {
			b.WriteString(" " + a)
		}
		b.WriteString("\n")
	}
	return b.String()
}
