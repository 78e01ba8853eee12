//go:build linux

// Package taptest is test support shared by the tests that put Linux's own
// network stack at the far end of one of the stick's links (netstack's
// TestLinuxKernelPeer, netstack/ecm's TestLinuxKernelOverUSB): a TAP
// device, moved into a network namespace the test creates, so that
// nothing reaches any other network. It needs root; callers skip without.
package taptest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// Open creates a non-blocking TAP device (IFF_TAP|IFF_NO_PI) named after
// pattern (e.g. "tstk%d", the kernel picks the number) and returns its
// file descriptor and name.
func Open(pattern string) (fd int, name string, err error) {
	fd, err = syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	var ifr [40]byte
	copy(ifr[:15], pattern)
	const iffTAP, iffNoPI, tunSetIFF = 0x0002, 0x1000, 0x400454ca
	*(*uint16)(unsafe.Pointer(&ifr[16])) = iffTAP | iffNoPI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIFF, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		syscall.Close(fd)
		return -1, "", e
	}
	return fd, strings.TrimRight(string(ifr[:16]), "\x00"), nil
}

// IP runs ip(8) with args and fails the test if it fails.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// Namespace creates a network namespace named prefix-PID, deleted when
// the test ends, moves the TAP device dev into it with the address addr
// (and, if mac is not empty, that MAC and an MTU of 1500), and brings it
// and the namespace's loopback up. It returns the namespace's name.
func Namespace(t testing.TB, prefix, dev, addr, mac string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	IP(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	IP(t, "link", "set", dev, "netns", ns)
	if mac != "" {
		IP(t, "-n", ns, "link", "set", dev, "address", mac, "mtu", "1500")
	}
	IP(t, "-n", ns, "addr", "add", addr, "dev", dev)
	IP(t, "-n", ns, "link", "set", dev, "up")
	IP(t, "-n", ns, "link", "set", "lo", "up")
	return ns
}

// InNamespace is a command running this test binary inside ns with only
// the test named run selected and env added: the kernel-side peer, using
// the kernel's own sockets and no other tool.
func InNamespace(ns, run string, env ...string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}
