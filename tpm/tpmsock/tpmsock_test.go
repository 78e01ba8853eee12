package tpmsock_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmsock"
)

// Many goroutines share one Conn to a real swtpm; each gets its own
// command's answer.
func TestConcurrentCommands(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	c, err := tpmsock.Dial(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				n := uint16(1 + i)
				rsp, err := tpm2.GetRandom{BytesRequested: n}.Execute(c)
				if err != nil {
					errs <- err
					return
				}
				if len(rsp.RandomBytes.Buffer) != int(n) {
					errs <- errors.New("an answer to another goroutine's command")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Opening and closing faster than swtpm drains its listen queue must wait
// for room, not fail with EAGAIN.
func TestDialBackToBack(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	for i := range 200 {
		c, err := tpmsock.Dial(sw.Socket)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.Close()
	}
	c, err := tpmsock.Dial(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(c); err != nil {
		t.Fatalf("GetRandom after back-to-back dials: %v\n%s", err, sw.Log())
	}
}

func TestDialBadPath(t *testing.T) {
	dir := t.TempDir()
	if _, err := tpmsock.Dial(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent path: %v, want ErrNotExist", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := tpmsock.Dial(file); !errors.Is(err, tpmsock.ErrNotSocket) {
		t.Errorf("regular file: %v, want ErrNotSocket", err)
	}
}

func TestSendAfterClose(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	c, err := tpmsock.Dial(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(c); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
}

// faultyTPM is a fault-injection fake, not a TPM: on its first connection
// it reads a command and misbehaves as told; on every later connection it
// answers each command with a fixed, well-formed response.
type faultyTPM struct {
	path  string
	conns chan int
}

var goodResponse = []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xca, 0xfe}

func startFaultyTPM(t *testing.T, misbehave func(c net.Conn)) *faultyTPM {
	dir, err := os.MkdirTemp("", "tpmsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &faultyTPM{path: filepath.Join(dir, "tpm"), conns: make(chan int, 16)}
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for n := 1; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.conns <- n
			go func() {
				defer c.Close()
				cmd := make([]byte, 10)
				if n == 1 {
					if _, err := io.ReadFull(c, cmd); err == nil {
						misbehave(c)
					}
					return
				}
				for {
					if _, err := io.ReadFull(c, cmd); err != nil {
						return
					}
					size := binary.BigEndian.Uint32(cmd[2:6])
					if _, err := io.CopyN(io.Discard, c, int64(size)-10); err != nil {
						return
					}
					c.Write(goodResponse)
				}
			}()
		}
	}()
	return f
}

// A response that is malformed, cut short or late fails that command, and
// the next command goes over a new connection: nothing of the broken one is
// read as its answer.
func TestFaults(t *testing.T) {
	hdr := func(size uint32) []byte {
		b := []byte{0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[2:6], size)
		return b
	}
	for _, tc := range []struct {
		name      string
		misbehave func(c net.Conn)
		want      error
	}{
		{"size below the header", func(c net.Conn) { c.Write(hdr(6)) }, tpmsock.ErrResponse},
		{"size above MaxResponse", func(c net.Conn) { c.Write(hdr(tpmsock.MaxResponse + 1)) }, tpmsock.ErrResponse},
		{"closed mid header", func(c net.Conn) { c.Write(hdr(12)[:4]) }, io.ErrUnexpectedEOF},
		{"closed mid body", func(c net.Conn) { c.Write(append(hdr(20), 1, 2)) }, io.ErrUnexpectedEOF},
		{"closed before answering", func(net.Conn) {}, io.EOF},
		{"never answers", func(c net.Conn) {
			time.Sleep(time.Second)
			c.Write(hdr(12))
			c.Write([]byte{0xde, 0xad})
		}, os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFaultyTPM(t, tc.misbehave)
			c, err := tpmsock.Dial(f.path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Timeout = 200 * time.Millisecond
			cmd := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b}
			if rsp, err := c.Send(cmd); !errors.Is(err, tc.want) {
				t.Fatalf("first Send = %x, %v; want %v", rsp, err, tc.want)
			}
			rsp, err := c.Send(cmd)
			if err != nil || !bytes.Equal(rsp, goodResponse) {
				t.Fatalf("Send after the fault = %x, %v; want %x", rsp, err, goodResponse)
			}
			if n := len(f.conns); n != 2 {
				t.Fatalf("%d connections, want 2 (a new one after the fault)", n)
			}
		})
	}
}

// A second client of a busy swtpm is queued, not refused: its command
// times out with an error that says why.
func TestSecondClientTimesOut(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	first, err := tpmsock.Dial(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(first); err != nil {
		t.Fatal(err)
	}
	second, err := tpmsock.Dial(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.Timeout = 200 * time.Millisecond
	_, err = second.Send([]byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8})
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "another client") {
		t.Fatalf("second client: %v, want a deadline saying another client may hold swtpm", err)
	}
	first.Close()
	// Once the first client is gone the second is served, on a new connection.
	second.Timeout = 0
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(second); err != nil {
		t.Fatalf("second client after the first left: %v", err)
	}
}
