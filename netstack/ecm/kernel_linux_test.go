//go:build linux

package ecm_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack"
	"github.com/teastick/teastick/netstack/internal/taptest"
)

// TestKernelPeerHelperECM is not a test: it is the kernel-side HTTP
// client TestLinuxKernelOverUSB starts inside its network namespace.
func TestKernelPeerHelperECM(t *testing.T) {
	url := os.Getenv("TSTK_ECM_GET")
	if url == "" {
		t.Skip("helper process for TestLinuxKernelOverUSB")
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	fmt.Printf("got %d bytes %v\n", n, err)
	os.Exit(0)
}

// TestLinuxKernelOverUSB puts Linux's own network stack on the box's end
// of the simulated USB cable: the host side moves frames between a TAP
// device (in a network namespace the test creates, with the box's MAC
// from iMACAddress, as cdc_ether gives usb0) and the function's bulk
// endpoints with Linux usbnet's framing. The kernel pings the stick with
// frames around every multiple of 512 (don't-fragment set) and fetches a
// body over TCP.
func TestLinuxKernelOverUSB(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: creating TAP devices and network namespaces needs root")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: no %s (Debian packages iproute2, iputils-ping)", tool)
		}
	}
	fd, name, err := taptest.Open("tsecm%d")
	if err != nil {
		t.Skipf("SKIPPED: no TAP device: %v", err)
	}
	defer syscall.Close(fd)

	f, h := enumerated(t, 0)
	cfg := netstack.USBArmory
	cfg.Poll, cfg.Log = 50*time.Microsecond, quiet
	st, err := netstack.New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	defer st.Close()
	// the bridge: TAP frames out through bulk OUT, bulk IN frames into TAP
	go func() {
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			idle := true
			if n, err := syscall.Read(fd, buf); err == nil && n > 0 {
				h.Transmit(buf[:n])
				idle = false
			}
			if n, ok, _ := h.Receive(buf); ok {
				syscall.Write(fd, buf[:n])
				idle = false
			}
			if idle {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()

	box := h.MAC()
	ns := taptest.Namespace(t, "tsecm", name, "10.0.0.2/24", net.HardwareAddr(box[:]).String())

	before := h.Counts()
	// ICMP payload n gives a frame of n+42 bytes
	for _, frame := range []int{511, 512, 513, 1023, 1024, 1025, 1514} {
		out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "3", "-M", "do",
			"-s", fmt.Sprint(frame-42), "10.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("kernel ping with %d-byte frames: %v: %s", frame, err, out)
		}
	}
	c := h.Counts()
	if c.PadsOut-before.PadsOut < 4 || c.ZLPsIn-before.ZLPsIn < 4 {
		t.Errorf("kernel frames of 512 and 1024 bytes: %d padded toward the stick, %d ZLPs back", c.PadsOut-before.PadsOut, c.ZLPsIn-before.ZLPsIn)
	}

	body := pattern(2 << 20)
	l, err := st.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	defer srv.Close()
	out, err := taptest.InNamespace(ns, "TestKernelPeerHelperECM", "TSTK_ECM_GET=http://10.0.0.1/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("got %d bytes <nil>", len(body))) {
		t.Fatalf("kernel GET from the stick: %v: %s", err, out)
	}
	if s := f.Stats(); s.Oversize+s.Runts+s.Babble != 0 {
		t.Errorf("stats %+v", s)
	}
}
