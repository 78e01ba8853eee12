package virtio

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack"
	"github.com/teastick/teastick/netstack/ecm"
	"github.com/teastick/teastick/netstack/ecm/ecmtest"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

// The stick's two links side by side in one benchmark run: virtio-net
// (the driver in front of this package's device model, as QEMU's virt
// board has it) and USB CDC-ECM (netstack/ecm's function in front of
// ecmtest's simulated host, packet by packet). Each carries the stick's
// gVisor stack at netstack.USBArmory's address and a box stack at
// 10.0.0.2; neither simulates any wire or bus timing, so the figures
// price the software path of each link, not the link.

var quietLog = slog.New(slog.DiscardHandler)

// virtioNIC is the stick's NIC: the driver, with the device model behind
// it moving frames to and from the box's end. The model is not safe for
// concurrent use; the mutex serializes the driver's two directions.
type virtioNIC struct {
	mu  sync.Mutex
	n   *Net
	m   *deviceModel
	box *boxEnd
}

// boxEnd is the box's NIC on the far side of the device model.
type boxEnd struct {
	mu      sync.Mutex
	fromDev [][]byte
	toDev   [][]byte
	mac     [6]byte
}

func (v *virtioNIC) MAC() [6]byte { return v.n.MAC() }

func (v *virtioNIC) Transmit(frame []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	err := v.n.Transmit(frame)
	if len(v.m.sent) > 0 {
		v.box.mu.Lock()
		for _, f := range v.m.sent { // each with its virtio-net header
			v.box.fromDev = append(v.box.fromDev, f[v.m.netHeader():])
		}
		v.box.mu.Unlock()
		v.m.sent = nil
	}
	return err
}

func (v *virtioNIC) Receive(buf []byte) (int, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.box.mu.Lock()
	for len(v.box.toDev) > 0 && v.m.deliver(v.box.toDev[0]) {
		v.box.toDev = v.box.toDev[1:]
	}
	v.box.mu.Unlock()
	return v.n.Receive(buf)
}

func (b *boxEnd) MAC() [6]byte { return b.mac }

func (b *boxEnd) Transmit(frame []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.toDev) >= 256 {
		return ErrTxBusy // the device's receive ring is full: the box waits
	}
	b.toDev = append(b.toDev, append([]byte(nil), frame...))
	return nil
}

func (b *boxEnd) Receive(buf []byte) (int, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.fromDev) == 0 {
		return 0, false, nil
	}
	f := b.fromDev[0]
	b.fromDev = b.fromDev[1:]
	return copy(buf, f), true, nil
}

// run starts a stick stack on stickNIC and a box stack on boxNIC.
func runPair(b *testing.B, stickNIC, boxNIC netstack.NIC) (stick, box *netstack.Stack) {
	b.Helper()
	cfg := netstack.USBArmory
	cfg.Poll, cfg.Log = 50*time.Microsecond, quietLog
	stick, err := netstack.New(stickNIC, cfg)
	if err != nil {
		b.Fatal(err)
	}
	box, err = netstack.New(boxNIC, netstack.Config{Address: netip.MustParsePrefix("10.0.0.2/24"), Poll: 50 * time.Microsecond, Log: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go stick.Run(ctx)
	go box.Run(ctx)
	b.Cleanup(func() { cancel(); stick.Close(); box.Close() })
	return stick, box
}

func virtioLink(b *testing.B) (stick, box *netstack.Stack) {
	b.Helper()
	const size = 32 // the stick's (board/qemu/vmmio.NetQueueSize)
	mem := make([]byte, NetMemory(size))
	m := newModel(mem, base)
	m.id = IDNetwork
	m.offered = FeatureVersion1 | NetFeatureMAC
	m.config = []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0}
	n := &Net{}
	if err := n.Init(m, mem, base, size); err != nil {
		b.Fatal(err)
	}
	end := &boxEnd{mac: [6]byte{0x52, 0x54, 0, 0, 0, 2}}
	return runPair(b, &virtioNIC{n: n, m: m, box: end}, end)
}

func ecmLink(b *testing.B) (stick, box *netstack.Stack) {
	b.Helper()
	stickMAC, boxMAC := ecm.MACs([]byte("benchmark stick"))
	f, err := ecm.New(ecm.Config{StickMAC: stickMAC, HostMAC: boxMAC, Log: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	h := ecmtest.NewHost(f)
	if _, err := h.Enumerate(1); err != nil {
		b.Fatal(err)
	}
	return runPair(b, f, h)
}

func viaStack(st *netstack.Stack) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return st.DialTCP(ctx, ap)
		},
	}}
}

type linkUnderTest struct {
	name       string
	stick, box *netstack.Stack
	elapsed    time.Duration
}

func bothLinks(b *testing.B) []*linkUnderTest {
	vs, vb := virtioLink(b)
	es, eb := ecmLink(b)
	return []*linkUnderTest{{name: "virtio", stick: vs, box: vb}, {name: "ecm", stick: es, box: eb}}
}

func report(b *testing.B, links []*linkUnderTest, size int, unit string) {
	rate := map[string]float64{}
	for _, l := range links {
		rate[l.name] = float64(size) * float64(b.N) / l.elapsed.Seconds() / 1e6
		b.ReportMetric(rate[l.name], l.name+"-"+unit)
	}
	b.ReportMetric(rate["ecm"]/rate["virtio"], "ecm/virtio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLinkGoodput is TCP goodput from the stick to the box (an HTTP
// body of 8 MiB served by the stick's stack) over each link, alternately,
// in MB/s.
func BenchmarkLinkGoodput(b *testing.B) {
	const size = 8 << 20
	body := bytes.Repeat([]byte("teastick"), size/8)
	links := bothLinks(b)
	for _, l := range links {
		ln, err := l.stick.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80))
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
	}
	for b.Loop() {
		for _, l := range links {
			start := time.Now()
			resp, err := viaStack(l.box).Get("http://10.0.0.1/")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatalf("%s: %d bytes, %v", l.name, n, err)
			}
			l.elapsed += time.Since(start)
		}
	}
	report(b, links, size, "MB/s")
}

// BenchmarkLinkVerifiedFetch is the stick's verified fetch of 8 MiB from a
// real kubo on the box, over each link, alternately, in MB/s. kubo listens
// on the host's loopback; each box stack relays 10.0.0.2:8080 to it.
func BenchmarkLinkVerifiedFetch(b *testing.B) {
	node := kubotest.Start(b)
	data := bytes.Repeat([]byte("verified"), 1<<20)
	root := node.Publish(b, data)
	links := bothLinks(b)
	for _, l := range links {
		ln, err := l.box.ListenTCP(netip.MustParseAddrPort("10.0.0.2:8080"))
		if err != nil {
			b.Fatal(err)
		}
		go relayTo(ln, node.Gateway[len("http://"):])
		b.Cleanup(func() { ln.Close() })
	}
	for b.Loop() {
		for _, l := range links {
			cl := &ipfs.Client{Gateway: "http://10.0.0.2:8080", HTTP: viaStack(l.stick), CAR: true, Log: quietLog}
			start := time.Now()
			got, err := cl.Fetch(context.Background(), root)
			if err != nil || len(got) != len(data) {
				b.Fatalf("%s: %d bytes, %v", l.name, len(got), err)
			}
			l.elapsed += time.Since(start)
		}
	}
	report(b, links, len(data), "verified-MB/s")
}

func relayTo(ln net.Listener, addr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			k, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer k.Close()
			go func() { io.Copy(k, c); k.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, k)
		}()
	}
}
