// Package tpmsock talks to a TPM behind a Unix stream socket in raw TPM
// byte format, a command in and a response out: swtpm's `--server
// type=unixio`. The hosted stick uses it for its TPM and the tests for
// theirs.
//
// One connection is kept open. swtpm serves one connection at a time with
// a short listen queue, so a client that dials for every command (go-tpm's
// linuxudstpm does) gets EAGAIN from connect when swtpm is slower to drain
// closed connections than the client is to open new ones; on a loaded
// host that failed TPM commands at random.
//
// A command that fails on the wire is not sent again: the TPM may have
// executed it (a PCR extend twice is a different PCR). The connection is
// dropped instead, so a late response cannot be taken for the next
// command's, and the next command dials anew.
package tpmsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// MaxResponse bounds the response size a Conn accepts. TPM 2.0's largest
// responses (a quote, NV reads, a certificate chunk) stay well below it.
const MaxResponse = 4096

// DefaultTimeout bounds one command's round trip unless Conn.Timeout says
// otherwise. swtpm creates an RSA-2048 primary key in well under a second;
// a minute means the simulator is gone or wedged.
const DefaultTimeout = time.Minute

// DialWait bounds how long Dial, and Send when it has to dial again, wait
// for room on the TPM's listen queue.
const DialWait = 10 * time.Second

// ErrNotSocket is returned by Dial when the path is not a Unix socket.
var ErrNotSocket = errors.New("tpmsock: not a Unix socket")

// ErrResponse is returned by Send for a response whose header announces a
// size below the header's or above MaxResponse.
var ErrResponse = errors.New("tpmsock: malformed response")

// Conn is a transport.TPM over a Unix stream socket. Its methods may be
// called from several goroutines; commands are sent one at a time.
type Conn struct {
	// Timeout bounds each command's round trip (DefaultTimeout when zero).
	// A command that runs out of it fails with os.ErrDeadlineExceeded.
	Timeout time.Duration

	path string

	mu     sync.Mutex
	c      net.Conn // nil after a failure, until the next Send dials
	closed bool
}

var _ transport.TPMCloser = (*Conn)(nil)

// Dial connects to the TPM socket at path.
func Dial(path string) (*Conn, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tpmsock: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotSocket, path, fi.Mode().Type())
	}
	c, err := dial(path)
	if err != nil {
		return nil, err
	}
	return &Conn{path: path, c: c}, nil
}

// dial connects, retrying EAGAIN (a full listen queue: Go's connect does
// not block on Unix sockets) until DialWait passes.
func dial(path string) (net.Conn, error) {
	deadline := time.Now().Add(DialWait)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return nil, fmt.Errorf("tpmsock: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Send implements transport.TPM: it writes cmd and reads one response,
// header first (10 bytes), then the rest its size field announces.
func (c *Conn) Send(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	if c.c == nil {
		nc, err := dial(c.path)
		if err != nil {
			return nil, err
		}
		c.c = nc
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.c.SetDeadline(time.Now().Add(timeout))
	rsp, err := exchange(c.c, cmd)
	if err != nil {
		c.c.Close()
		c.c = nil
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// swtpm takes a second client's connection onto its queue
			// and leaves it there: a silent TPM is most often that.
			err = fmt.Errorf("%w (no answer in %v; swtpm serves one connection at a time: is another client connected?)", err, timeout)
		}
	}
	return rsp, err
}

func exchange(c net.Conn, cmd []byte) ([]byte, error) {
	if _, err := c.Write(cmd); err != nil {
		return nil, fmt.Errorf("tpmsock: send: %w", err)
	}
	var hdr [10]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, fmt.Errorf("tpmsock: response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < uint32(len(hdr)) || size > MaxResponse {
		return nil, fmt.Errorf("%w: size %d", ErrResponse, size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(c, rsp[len(hdr):]); err != nil {
		return nil, fmt.Errorf("tpmsock: response body: %w", err)
	}
	return rsp, nil
}

// Close implements transport.TPMCloser. Sends after Close fail.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}
