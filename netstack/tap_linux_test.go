//go:build linux

package netstack

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

	"github.com/teastick/teastick/netstack/internal/taptest"
)

// tapNIC is a NIC over a Linux TAP device: the kernel's stack on the far
// end of the link.
type tapNIC struct {
	f   *os.File
	fd  int
	mac [6]byte
}

func (t *tapNIC) MAC() [6]byte { return t.mac }

func (t *tapNIC) Transmit(frame []byte) error {
	_, err := syscall.Write(t.fd, frame)
	return err
}

func (t *tapNIC) Receive(buf []byte) (int, bool, error) {
	n, err := syscall.Read(t.fd, buf)
	if err == syscall.EAGAIN {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return n, true, nil
}

// openTAP creates a TAP device and returns it with its kernel-chosen name.
func openTAP() (*tapNIC, string, error) {
	fd, name, err := taptest.Open("tstk%d")
	if err != nil {
		return nil, "", err
	}
	return &tapNIC{fd: fd, mac: [6]byte{2, 0x74, 0x73, 0, 0, 1}}, name, nil
}

// inNamespace runs this test binary inside the namespace as a kernel-side
// peer (TestKernelPeerHelper).
func inNamespace(ns, role, arg string) *exec.Cmd {
	return taptest.InNamespace(ns, "TestKernelPeerHelper", "TSTK_PEER_ROLE="+role, "TSTK_PEER_ARG="+arg)
}

// TestKernelPeerHelper is not a test: it is the kernel-side peer that
// inNamespace starts.
func TestKernelPeerHelper(t *testing.T) {
	role, arg := os.Getenv("TSTK_PEER_ROLE"), os.Getenv("TSTK_PEER_ARG")
	switch role {
	case "":
		t.Skip("helper process for TestLinuxKernelPeer")
	case "get":
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(arg)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		io.Copy(os.Stdout, resp.Body)
		os.Exit(0)
	case "serve":
		l, err := net.Listen("tcp", arg)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		io.WriteString(c, "kernel says hi")
		c.Close()
		os.Exit(0)
	}
}

// TestLinuxKernelPeer puts the kernel's stack on the other end of a TAP
// device, in a network namespace the test creates (so nothing reaches any
// other network), and checks ICMP echo and TCP both ways.
func TestLinuxKernelPeer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: creating TAP devices and network namespaces needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIPPED: no ip command (Debian package iproute2)")
	}
	tap, name, err := openTAP()
	if err != nil {
		t.Skipf("SKIPPED: no TAP device: %v", err)
	}
	defer syscall.Close(tap.fd)
	ns := taptest.Namespace(t, "tstk", name, "10.99.0.2/24", "")

	st, err := New(tap, Config{Address: netip.MustParsePrefix("10.99.0.1/24"), Gateway: netip.MustParseAddr("10.99.0.2"), Poll: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	defer st.Close()

	t.Run("kernel pings the stick", func(t *testing.T) {
		if _, err := exec.LookPath("ping"); err != nil {
			t.Skip("SKIPPED: no ping (Debian package iputils-ping)")
		}
		out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", "10.99.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("ping: %v: %s", err, out)
		}
	})

	t.Run("kernel fetches from the stick's HTTP server", func(t *testing.T) {
		l, err := st.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from gvisor")
		})}
		go srv.Serve(l)
		defer srv.Close()
		out, err := inNamespace(ns, "get", "http://10.99.0.1/").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from gvisor") {
			t.Fatalf("kernel-side GET: %v: %s", err, out)
		}
	})

	t.Run("stick connects to a kernel-side server", func(t *testing.T) {
		srv := inNamespace(ns, "serve", "10.99.0.2:7000")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer srv.Process.Kill()
		var conn io.ReadCloser
		deadline := time.Now().Add(10 * time.Second)
		for {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err := st.DialTCP(dctx, netip.MustParseAddrPort("10.99.0.2:7000"))
			dcancel()
			if err == nil {
				conn = c
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dial the kernel: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		defer conn.Close()
		b, err := io.ReadAll(conn)
		if err != nil || string(b) != "kernel says hi" {
			t.Fatalf("read %q, %v", b, err)
		}
		srv.Wait()
	})
}
