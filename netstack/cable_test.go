package netstack

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// cableEnd is one end of an in-memory Ethernet cable: frames it transmits
// arrive at the other end. It is the host tests' NIC; lossyCable's knobs
// inject faults.
type cableEnd struct {
	mac  [6]byte
	peer *cableEnd

	mu    sync.Mutex
	queue [][]byte
	cable *cable
	held  []byte // a frame held back to reorder
}

type cable struct {
	mu       sync.Mutex
	rng      *rand.Rand
	loss     float64 // probability a frame is dropped
	reorder  float64 // probability a frame is delivered after the next one
	cut      bool    // the far end vanished: nothing is delivered
	busyEach int     // every busyEach-th transmit is refused as busy
	sends    int
	longest  int // the longest frame sent
	dropped  int
	reversed int
}

func newCable(loss, reorder float64) (*cableEnd, *cableEnd, *cable) {
	c := &cable{rng: rand.New(rand.NewPCG(1, 2)), loss: loss, reorder: reorder}
	a := &cableEnd{mac: [6]byte{2, 0, 0, 0, 0, 1}, cable: c}
	b := &cableEnd{mac: [6]byte{2, 0, 0, 0, 0, 2}, cable: c}
	a.peer, b.peer = b, a
	return a, b, c
}

func (e *cableEnd) MAC() [6]byte { return e.mac }

func (e *cableEnd) Transmit(frame []byte) error {
	c := e.cable
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		return nil
	}
	c.sends++
	c.longest = max(c.longest, len(frame))
	if c.busyEach > 0 && c.sends%c.busyEach == 0 {
		c.mu.Unlock()
		return errBusy{}
	}
	drop := c.rng.Float64() < c.loss
	hold := c.rng.Float64() < c.reorder
	if drop {
		c.dropped++
	}
	c.mu.Unlock()
	if drop {
		return nil
	}
	f := append([]byte(nil), frame...)
	p := e.peer
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case hold && p.held == nil:
		p.held = f
	case p.held != nil:
		p.queue = append(p.queue, f, p.held)
		p.held = nil
		c.mu.Lock()
		c.reversed++
		c.mu.Unlock()
	default:
		p.queue = append(p.queue, f)
	}
	return nil
}

func (e *cableEnd) Receive(buf []byte) (int, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		if e.held != nil { // release a held frame rather than lose it
			e.queue, e.held = append(e.queue, e.held), nil
		} else {
			return 0, false, nil
		}
	}
	f := e.queue[0]
	e.queue = e.queue[1:]
	return copy(buf, f), true, nil
}

// errBusy is what a NIC with a full transmit ring says.
type errBusy struct{}

func (errBusy) Error() string { return "transmit ring full" }
func (errBusy) Busy() bool    { return true }

var (
	stickCfg = Config{Address: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("10.0.0.2"), Poll: 50 * time.Microsecond}
	boxCfg   = Config{Address: netip.MustParsePrefix("10.0.0.2/24"), Poll: 50 * time.Microsecond}
)

func pair(t testing.TB, loss, reorder float64) (*Stack, *Stack, *cable) {
	t.Helper()
	a, b, c := newCable(loss, reorder)
	stick, err := New(a, stickCfg)
	if err != nil {
		t.Fatal(err)
	}
	box, err := New(b, boxCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go stick.Run(ctx)
	go box.Run(ctx)
	t.Cleanup(func() { cancel(); stick.Close(); box.Close() })
	return stick, box, c
}

// serveHTTP runs an HTTP server on st at port 80 returning size bytes.
func serveHTTP(t testing.TB, st *Stack, size int) {
	t.Helper()
	l, err := st.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func client(st *Stack, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return st.DialTCP(ctx, ap)
		},
	}}
}

func TestHTTPAcrossCable(t *testing.T) {
	tests := []struct {
		name          string
		loss, reorder float64
		size          int
	}{
		{"clean", 0, 0, 1 << 20},
		{"2% loss", 0.02, 0, 256 << 10},
		{"10% reordering", 0, 0.10, 256 << 10},
		{"loss and reordering", 0.02, 0.05, 128 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stick, box, c := pair(t, tc.loss, tc.reorder)
			serveHTTP(t, stick, tc.size)
			resp, err := client(box, time.Minute).Get("http://10.0.0.1/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, tc.size)
			for i := range want {
				want[i] = byte(i * 7)
			}
			if sha256.Sum256(got) != sha256.Sum256(want) {
				t.Fatalf("body of %d bytes differs from the %d served", len(got), tc.size)
			}
			c.mu.Lock() // the stacks still send (ACKs, FIN) as we read
			dropped, reversed := c.dropped, c.reversed
			c.mu.Unlock()
			if tc.loss > 0 && dropped == 0 || tc.reorder > 0 && reversed == 0 {
				t.Fatalf("fault not exercised: dropped %d, reordered %d", dropped, reversed)
			}
		})
	}
}

// TestFullSizeFrames: an MTU of 1500 carries a 1472-byte UDP payload in
// one frame of 1514 bytes with the Ethernet header, unfragmented.
func TestFullSizeFrames(t *testing.T) {
	stick, box, c := pair(t, 0, 0)
	rx, err := stick.DialUDP(netip.MustParseAddrPort("10.0.0.1:7000"), netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := box.DialUDP(netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.1:7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.Write(make([]byte, 1472)); err != nil {
		t.Fatal(err)
	}
	rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2000)
	if n, _, err := rx.ReadFrom(buf); err != nil || n != 1472 {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.longest != 1514 {
		t.Fatalf("longest frame %d bytes, want 1514", c.longest)
	}
}

func TestBusyNICLosesNothing(t *testing.T) {
	stick, box, c := pair(t, 0, 0)
	c.mu.Lock()
	c.busyEach = 3
	c.mu.Unlock()
	serveHTTP(t, stick, 256<<10)
	resp, err := client(box, time.Minute).Get("http://10.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 256<<10 {
		t.Fatalf("%d bytes, %v", n, err)
	}
	if stick.Dropped() != 0 || box.Dropped() != 0 {
		t.Fatalf("frames dropped on a busy NIC: stick %d, box %d", stick.Dropped(), box.Dropped())
	}
}

func TestPeerVanishes(t *testing.T) {
	stick, box, c := pair(t, 0, 0)
	serveHTTP(t, stick, 4<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://10.0.0.1/", nil)
	resp, err := client(box, 0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.cut = true // the stick is unplugged
	c.mu.Unlock()
	_, err = io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Fatal("the transfer completed across a cut cable")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("read ended with %v", err)
	}
}

func TestDialNobody(t *testing.T) {
	_, box, _ := pair(t, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := box.DialTCP(ctx, netip.MustParseAddrPort("10.0.0.1:81")); err == nil {
		t.Fatal("connected to a port nobody listens on")
	}
}

func TestConfigErrors(t *testing.T) {
	a, _, _ := newCable(0, 0)
	if _, err := New(a, Config{Address: netip.MustParsePrefix("fd00::1/64")}); !errors.Is(err, ErrNotIPv4) {
		t.Fatalf("IPv6 address: %v", err)
	}
	if _, err := New(a, Config{Address: netip.MustParsePrefix("10.0.0.1/24"), Gateway: netip.MustParseAddr("fd00::2")}); !errors.Is(err, ErrNotIPv4) {
		t.Fatalf("IPv6 gateway: %v", err)
	}
}

// BenchmarkCableGoodput is TCP goodput between two stacks over the
// in-memory cable.
func BenchmarkCableGoodput(b *testing.B) {
	const size = 8 << 20
	stick, box, _ := pair(b, 0, 0)
	serveHTTP(b, stick, size)
	c := client(box, time.Minute)
	b.SetBytes(size)
	start := time.Now()
	for b.Loop() {
		resp, err := c.Get("http://10.0.0.1/")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/time.Since(start).Seconds()/1e6, "MB/s")
}
