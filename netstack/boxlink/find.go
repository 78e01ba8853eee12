package boxlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Why a stick's link is not usable, in the order Find checks. Each
// Link.Err wraps one.
var (
	// ErrNoInterface: no network interface has a MAC starting 1e:a5:70.
	ErrNoInterface = errors.New("boxlink: no stick interface")
	// ErrDown: the interface exists but is not up.
	ErrDown = errors.New("boxlink: interface down")
	// ErrNoAddress: the interface does not carry the box's address.
	ErrNoAddress = errors.New("boxlink: box address missing")
	// ErrNotAnswering: nothing accepts a connection at the stick's API.
	ErrNotAnswering = errors.New("boxlink: stick not answering")
)

// Host is the machine Find looks at. The zero value is this machine:
// sysfs at /sys, the kernel's addresses, real connections.
type Host struct {
	// SysRoot is the sysfs mount (default "/sys"); tests point it at a
	// fake tree.
	SysRoot string
	// Addrs returns an interface's addresses (default: the kernel's, for
	// the network namespace this process runs in).
	Addrs func(ifname string) ([]netip.Prefix, error)
	// Dial connects to the stick's API (default net.Dialer) when Probe
	// is nil.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Probe, if set, checks that the stick answers at url instead of a
	// bare TCP connection (teactl asks the API for its status: one
	// connection, and no TLS handshake left half done in the stick's log).
	Probe func(ctx context.Context, link *Link) error
	// Timeout bounds each connection attempt (default 3 s).
	Timeout time.Duration
}

// Link is one stick interface found on the box.
type Link struct {
	Interface string   `json:"interface"`
	MAC       string   `json:"mac"`       // the box side's, 1e:a5:70:...
	StickMAC  string   `json:"stick_mac"` // derived: 1e:a5:71 and the same suffix
	Driver    string   `json:"driver,omitempty"`
	OperState string   `json:"operstate"`
	Addresses []string `json:"addresses"`
	StickURL  string   `json:"stick_url"`
	// Err says why the stick cannot be reached through this interface
	// (wrapping ErrDown, ErrNoAddress or ErrNotAnswering); nil when its
	// API port accepts a connection.
	Err     error  `json:"-"`
	Problem string `json:"problem,omitempty"`
}

func (h *Host) sysRoot() string {
	if h.SysRoot == "" {
		return "/sys"
	}
	return h.SysRoot
}

// kernelAddrs reads an interface's addresses from the kernel.
func kernelAddrs(name string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ones, _ := n.Mask.Size()
				out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
	return out, nil
}

// ParseMAC parses a sysfs address file's content (colon-separated hex).
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return m, fmt.Errorf("boxlink: not an Ethernet address: %q", strings.TrimSpace(s))
	}
	copy(m[:], hw)
	return m, nil
}

// IsBoxSide reports whether mac is a stick link's box-side address.
func IsBoxSide(mac [6]byte) bool { return [3]byte(mac[:3]) == BoxMACPrefix }

// StickMAC derives the stick's MAC from the box side's.
func StickMAC(box [6]byte) [6]byte {
	s := box
	copy(s[:3], StickMACPrefix[:])
	return s
}

// Interfaces lists the interfaces in sysfs whose MAC is a stick link's
// box side, by name. It returns ErrNoInterface when there is none.
func (h *Host) Interfaces() ([]Link, error) {
	dir := filepath.Join(h.sysRoot(), "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("boxlink: list network interfaces: %w", err)
	}
	var links []Link
	for _, e := range ents {
		name := e.Name()
		raw, err := os.ReadFile(filepath.Join(dir, name, "address"))
		if err != nil {
			continue // not every entry has an address (or it vanished)
		}
		mac, err := ParseMAC(string(raw))
		if err != nil || !IsBoxSide(mac) {
			continue
		}
		l := Link{Interface: name, MAC: net.HardwareAddr(mac[:]).String(), StickURL: StickURL(), Addresses: []string{}}
		sm := StickMAC(mac)
		l.StickMAC = net.HardwareAddr(sm[:]).String()
		if st, err := os.ReadFile(filepath.Join(dir, name, "operstate")); err == nil {
			l.OperState = strings.TrimSpace(string(st))
		}
		if drv, err := os.Readlink(filepath.Join(dir, name, "device", "driver")); err == nil {
			l.Driver = filepath.Base(drv)
		}
		links = append(links, l)
	}
	if len(links) == 0 {
		return nil, fmt.Errorf("%w: no network interface in %s has a MAC starting %s (is the stick plugged in and booted? `ip link` lists the interfaces)",
			ErrNoInterface, dir, net.HardwareAddr(BoxMACPrefix[:]))
	}
	slices.SortFunc(links, func(a, b Link) int { return strings.Compare(a.Interface, b.Interface) })
	return links, nil
}

// Find lists the stick interfaces and checks each in turn: up, carrying
// 10.0.0.2, and the stick's API port (10.0.0.1:80) accepting a TCP
// connection. A link that fails a check has Err (and Problem) set; Find's
// own error is ErrNoInterface, or a failure to read sysfs.
func (h *Host) Find(ctx context.Context) ([]Link, error) {
	links, err := h.Interfaces()
	if err != nil {
		return nil, err
	}
	addrs := h.Addrs
	if addrs == nil {
		addrs = kernelAddrs
	}
	dial := h.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	for i := range links {
		l := &links[i]
		l.Err = h.check(ctx, l, addrs, dial, timeout)
		if l.Err != nil {
			l.Problem = l.Err.Error()
		}
	}
	return links, nil
}

func (h *Host) check(ctx context.Context, l *Link, addrs func(string) ([]netip.Prefix, error),
	dial func(context.Context, string, string) (net.Conn, error), timeout time.Duration) error {
	// operstate (Documentation/ABI/testing/sysfs-class-net, RFC 2863
	// states): "unknown" is what drivers without carrier reporting show.
	if l.OperState != "up" && l.OperState != "unknown" {
		return fmt.Errorf("%w: %s is %q (bring it up: `ip link set %s up`, or `networkctl up %s`; a stick that has not finished booting reports no carrier)",
			ErrDown, l.Interface, l.OperState, l.Interface, l.Interface)
	}
	ps, err := addrs(l.Interface)
	if err != nil {
		return fmt.Errorf("%w: %s: reading its addresses: %v", ErrNoAddress, l.Interface, err)
	}
	has := false
	for _, p := range ps {
		l.Addresses = append(l.Addresses, p.String())
		has = has || p.Addr() == BoxAddr.Addr()
	}
	if !has {
		return fmt.Errorf("%w: %s carries %v, not %s (install the networkd files from the release bundle, then `networkctl reload`)",
			ErrNoAddress, l.Interface, l.Addresses, BoxAddr)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := netip.AddrPortFrom(StickAddr, StickAPIPort).String()
	if h.Probe != nil {
		if err := h.Probe(cctx, l); err != nil {
			return fmt.Errorf("%w: %s through %s: %v", ErrNotAnswering, l.StickURL, l.Interface, err)
		}
		return nil
	}
	c, err := dial(cctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s through %s: %v (is it booted? its console says `net: ... https on :80`)", ErrNotAnswering, addr, l.Interface, err)
	}
	c.Close()
	return nil
}
