package tis

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmtest"
)

func newTIS(t *testing.T, m *tisModel) *TIS {
	t.Helper()
	d := &TIS{Regs: m, TimeoutScale: 0.05, CommandTimeout: 200 * time.Millisecond}
	if err := d.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	t.Run("swtpm socket", func(t *testing.T) {
		tpmtest.Run(t, func(t *testing.T) transport.TPM { return sw.OpenT(t) })
	})
	for _, burst := range []int{1, 7, 64, 4096} {
		t.Run("tis model burst "+itoa(burst), func(t *testing.T) {
			tpmtest.Run(t, func(t *testing.T) transport.TPM {
				m := newModel(sw.OpenT(t))
				m.burst = burst
				d := &TIS{Regs: m}
				if err := d.Init(); err != nil {
					t.Fatal(err)
				}
				return d
			})
		})
	}
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// zeroRegs reads all zeros (QEMU after the swtpm backend is gone) and
// onesRegs all ones (nothing decodes the address): fakes for "no TPM".
type zeroRegs struct{}

func (zeroRegs) Read8(uint32) uint8     { return 0 }
func (zeroRegs) Write8(uint32, uint8)   {}
func (zeroRegs) Read32(uint32) uint32   { return 0 }
func (zeroRegs) Write32(uint32, uint32) {}

type onesRegs struct{}

func (onesRegs) Read8(uint32) uint8     { return 0xff }
func (onesRegs) Write8(uint32, uint8)   {}
func (onesRegs) Read32(uint32) uint32   { return 0xffffffff }
func (onesRegs) Write32(uint32, uint32) {}

func TestNoTPM(t *testing.T) {
	for _, tc := range []struct {
		name string
		regs Registers
	}{
		{"registers read zero", zeroRegs{}},
		{"registers read ones", onesRegs{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&TIS{Regs: tc.regs}).Init()
			if !errors.Is(err, ErrNoTPM) {
				t.Fatalf("Init = %v, want ErrNoTPM", err)
			}
		})
	}
}

func TestSendBeforeInit(t *testing.T) {
	if _, err := (&TIS{Regs: zeroRegs{}}).Send(make([]byte, 10)); err == nil {
		t.Fatal("Send before Init succeeded")
	}
}

func getRandom() []byte {
	c := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8}
	return c
}

func TestFaults(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	for _, tc := range []struct {
		name    string
		setup   func(m *tisModel)
		initErr error
		want    error
		check   func(t *testing.T, m *tisModel)
	}{
		{name: "locality never granted", setup: func(m *tisModel) { m.neverGrant = true }, initErr: ErrTimeout},
		{name: "never ready", setup: func(m *tisModel) { m.neverReady = true }, want: ErrTimeout},
		{name: "burst count stuck at zero", setup: func(m *tisModel) { m.lieBurst = -4096 }, want: ErrTimeout},
		{name: "burst count larger than the command", setup: func(m *tisModel) { m.burst = 4; m.lieBurst = 64 }, want: ErrProtocol},
		{name: "stops answering mid command", setup: func(m *tisModel) { m.vanishAfter = 5 }, want: ErrNoTPM},
		{name: "never completes, cancelled", setup: func(m *tisModel) { m.neverDone = true }, want: ErrTimeout,
			check: func(t *testing.T, m *tisModel) {
				if m.cancels == 0 {
					t.Error("driver did not write commandCancel")
				}
			}},
		{name: "truncated response", setup: func(m *tisModel) {
			m.mangle = func(b []byte) []byte { return b[:len(b)-3] }
		}, want: ErrTruncated},
		{name: "response shorter than a header", setup: func(m *tisModel) {
			m.mangle = func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:6], 6); return b }
		}, want: ErrTruncated},
		{name: "oversized response", setup: func(m *tisModel) {
			m.mangle = func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:6], 1<<20); return b }
		}, want: ErrResponseTooLarge},
		{name: "trailing response bytes", setup: func(m *tisModel) {
			m.mangle = func(b []byte) []byte { return append(b, 0, 0, 0, 0) }
		}, want: ErrResponseTooLarge},
		{name: "healthy", setup: func(*tisModel) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModel(sw.OpenT(t))
			tc.setup(m)
			d := &TIS{Regs: m, TimeoutScale: 0.05, CommandTimeout: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
			err := d.Init()
			if tc.initErr != nil || err != nil {
				if !errors.Is(err, tc.initErr) || tc.initErr == nil {
					t.Fatalf("Init = %v, want %v", err, tc.initErr)
				}
				return
			}
			rsp, err := d.Send(getRandom())
			if tc.want == nil {
				if err != nil || len(rsp) != 20 {
					t.Fatalf("Send = %x, %v", rsp, err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("Send = %x, %v; want %v", rsp, err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestBadCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []byte
	}{
		{"empty", nil},
		{"short", []byte{0x80, 1, 0, 0}},
		{"size mismatch", []byte{0x80, 0x01, 0, 0, 0, 13, 0, 0, 0x01, 0x7b, 0, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTIS(t, newModel(nil))
			if _, err := d.Send(tc.cmd); !errors.Is(err, ErrCommandSize) {
				t.Fatalf("Send = %v, want ErrCommandSize", err)
			}
		})
	}
}

// replayTPM is a fake backend for fuzzing: it answers every command with
// fixed bytes.
type replayTPM []byte

func (r replayTPM) Send([]byte) ([]byte, error) { return r, nil }

// FuzzResponse feeds arbitrary response bytes through the FIFO: the driver
// must return them exactly when they are a well-sized response and an
// error otherwise, never panic.
func FuzzResponse(f *testing.F) {
	f.Add([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0})
	f.Add([]byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 1, 2})
	f.Add([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, rsp []byte) {
		d := &TIS{Regs: newModel(replayTPM(rsp)), TimeoutScale: 0.001, CommandTimeout: time.Millisecond,
			Log: slog.New(slog.DiscardHandler)}
		if err := d.Init(); err != nil {
			t.Fatal(err)
		}
		got, err := d.Send(getRandom())
		ok := len(rsp) >= 10 && int(binary.BigEndian.Uint32(rsp[2:6])) == len(rsp) && len(rsp) <= DefaultMaxResponse
		if ok != (err == nil) {
			t.Fatalf("response %x: err %v", rsp, err)
		}
		if ok && string(got) != string(rsp) {
			t.Fatalf("got %x want %x", got, rsp)
		}
	})
}
