package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmtest"
)

func testCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// boot runs stage 0 and the stick's measurements against one TPM.
func boot(t *testing.T, tpm transport.TPM, image []byte) *Measurer {
	t.Helper()
	s0, err := New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s0.MeasureImage(image, "teastick test"); err != nil {
		t.Fatal(err)
	}
	if err := s0.Separator(HandoffPCRs...); err != nil {
		t.Fatal(err)
	}
	h, err := s0.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resume(tpm, h, nil)
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	steps := []func() error{
		func() error { return m.MeasureConfig([]byte("box=10.0.0.2")) },
		func() error { return m.MeasureManifest([]byte("manifest")) },
		func() error { return m.Separator(PCRConfig) },
		func() error {
			return m.MeasureActor(PCRBootActors, Actor{Name: "echo", CID: testCID(t, "echo"), Capabilities: []string{"log"}})
		},
		func() error { return m.Separator(PCRBootActors) },
		func() error {
			return m.MeasureActor(PCRRuntime, Actor{Name: "echo", CID: testCID(t, "echo v2"), Capabilities: []string{"log", "kv"}})
		},
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return m
}

func TestBoot(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	m := boot(t, tpm, []byte("image"))
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Parse(m.Log())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(log.Events); got != 1+8+6 {
		t.Fatalf("%d events", got)
	}
	pcrs, err := ReadPCRs(tpm, PlanPCRs())
	if err != nil {
		t.Fatal(err)
	}
	replay := eventlog.Replay(log.Events)
	kept := m.PCRs()
	tool := tpmtest.ToolPCRs(t, m.Log())
	for _, p := range PlanPCRs() {
		if pcrs[p] != replay[p] || kept[p] != pcrs[p] || tool[p] != pcrs[p] {
			t.Errorf("PCR %d: TPM %x replay %x Measurer %x tpm2_eventlog %x", p, pcrs[p], replay[p], kept[p], tool[p])
		}
	}
	if want := sha256.Sum256(append(make([]byte, 32), func() []byte { d := sha256.Sum256([]byte("image")); return d[:] }()...)); replay[PCRImage] == want {
		t.Error("PCR 4 has no separator after the image")
	}
}

func TestResumeRejects(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	s0, err := New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s0.MeasureImage([]byte("image"), "x"); err != nil {
		t.Fatal(err)
	}
	good, err := s0.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	forged := func(events []eventlog.Event) []byte { return EncodeHandoff(eventlog.Encode(events)) }
	other := s0.Events()
	other[0].Digest = sha256.Sum256([]byte("imagf"))
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"good", good, nil},
		{"image digest changed", forged(other), ErrReplay},
		{"event dropped", forged(nil), ErrReplay},
		{"checksum wrong", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(), ErrHandoff},
		{"truncated", good[:len(good)-1], ErrHandoff},
		{"no magic", append([]byte("XXXX"), good[4:]...), ErrHandoff},
		{"not a log", EncodeHandoff([]byte("hello")), eventlog.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resume(tpm, tc.in, nil)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Resume = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFreshTPMHasUnexplainedBanks(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{})
	if _, err := New(sw.OpenT(t), nil); !errors.Is(err, ErrBanks) {
		t.Fatalf("New on a four-bank TPM = %v, want ErrBanks", err)
	}
}

// flakyTPM is a fault-injection fake: it fails every TPM2_PCR_Extend after
// the first ok ones, passing everything else to a real TPM.
type flakyTPM struct {
	transport.TPM
	ok int
}

func (f *flakyTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && binary.BigEndian.Uint32(cmd[6:]) == uint32(tpm2.TPMCCPCRExtend) {
		if f.ok == 0 {
			return nil, errors.New("flakyTPM: bus error")
		}
		f.ok--
	}
	return f.TPM.Send(cmd)
}

func TestFailClosed(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	f := &flakyTPM{TPM: sw.OpenT(t), ok: 1}
	m, err := New(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.MeasureImage([]byte("image"), "x"); err != nil {
		t.Fatal(err)
	}
	if err := m.Separator(HandoffPCRs...); err == nil {
		t.Fatal("extend through a failing TPM succeeded")
	}
	f.ok = 100
	for name, err := range map[string]error{
		"separator after failure": m.Separator(5),
		"config after failure":    m.MeasureConfig(nil),
		"verify after failure":    m.Verify(),
	} {
		if err == nil {
			t.Errorf("%s succeeded", name)
		}
	}
	if _, err := m.Handoff(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Handoff = %v, want ErrFailed", err)
	}
	if n := len(m.Events()); n != 1 {
		t.Fatalf("%d events logged, want only the one the TPM took", n)
	}
}

func TestPCROutsidePlan(t *testing.T) {
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	m, err := New(sw.OpenT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"PCR 16", m.Extend(16, eventlog.EV_IPL, [32]byte{}, nil)},
		{"PCR 23", m.Extend(23, eventlog.EV_IPL, [32]byte{}, nil)},
		{"actor on PCR 8", m.MeasureActor(8, Actor{Name: "a", CID: testCID(t, "a")})},
	} {
		if !errors.Is(tc.err, ErrPCR) {
			t.Errorf("%s: %v, want ErrPCR", tc.name, tc.err)
		}
	}
}

func TestActorEncoding(t *testing.T) {
	c := testCID(t, "x")
	for _, tc := range []struct {
		name string
		a    Actor
		ok   bool
	}{
		{"plain", Actor{Name: "echo", CID: c, Capabilities: []string{"log", "kv"}}, true},
		{"no capabilities", Actor{Name: "echo", CID: c}, true},
		{"no name", Actor{CID: c}, false},
		{"no CID", Actor{Name: "echo"}, false},
		{"empty capability", Actor{Name: "echo", CID: c, Capabilities: []string{""}}, false},
		{"native", Actor{Name: "echo", CID: c, Capabilities: []string{"log"}, Engine: EngineNative}, true},
		{"unknown engine", Actor{Name: "echo", CID: c, Engine: 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.a.MarshalBinary()
			if (err == nil) != tc.ok {
				t.Fatalf("MarshalBinary = %v", err)
			}
			if err != nil {
				return
			}
			var got Actor
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.a.Name || !got.CID.Equals(tc.a.CID) || len(got.Capabilities) != len(tc.a.Capabilities) || got.Engine != tc.a.Engine {
				t.Fatalf("round trip %+v -> %+v", tc.a, got)
			}
		})
	}
	a, _ := Actor{Name: "e", CID: c, Capabilities: []string{"b", "a", "a"}}.MarshalBinary()
	b, _ := Actor{Name: "e", CID: c, Capabilities: []string{"a", "b"}}.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("encoding depends on capability order or duplicates")
	}
}

// TestActorEngineEncoding: an actor under wazero encodes as version 1,
// byte for byte what was measured before engines were recorded (so old
// events still decode, as EngineWasm); a native one as version 2 with the
// engine last; anything else version 2 could say is refused.
func TestActorEngineEncoding(t *testing.T) {
	c := testCID(t, "x")
	wasm, err := Actor{Name: "echo", CID: c, Capabilities: []string{"log"}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The version 1 encoding, written out by hand.
	v1 := []byte{1, 0, 4, 'e', 'c', 'h', 'o'}
	v1 = binary.BigEndian.AppendUint16(v1, uint16(len(c.Bytes())))
	v1 = append(v1, c.Bytes()...)
	v1 = append(v1, 0, 1, 0, 3, 'l', 'o', 'g')
	if !bytes.Equal(wasm, v1) {
		t.Fatalf("EngineWasm encodes as %x, version 1 is %x", wasm, v1)
	}
	native, err := Actor{Name: "echo", CID: c, Capabilities: []string{"log"}, Engine: EngineNative}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{2}, v1[1:]...)
	want = append(want, byte(EngineNative))
	if !bytes.Equal(native, want) {
		t.Fatalf("EngineNative encodes as %x, want %x", native, want)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"version 2 naming EngineWasm", append(append([]byte{2}, v1[1:]...), 0)},
		{"version 2 naming an unknown engine", append(append([]byte{2}, v1[1:]...), 9)},
		{"version 2 without an engine", append([]byte{2}, v1[1:]...)},
		{"version 1 with an engine", append(v1[:len(v1):len(v1)], 1)},
		{"version 3", append([]byte{3}, native[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := new(Actor).UnmarshalBinary(tc.b); !errors.Is(err, ErrActor) {
				t.Fatalf("UnmarshalBinary = %v, want ErrActor", err)
			}
		})
	}
}

func FuzzActor(f *testing.F) {
	b, _ := Actor{Name: "echo", CID: testCID(f, "x"), Capabilities: []string{"kv", "log"}}.MarshalBinary()
	f.Add(b)
	b, _ = Actor{Name: "echo", CID: testCID(f, "x"), Capabilities: []string{"kv", "log"}, Engine: EngineNative}.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Actor
		if a.UnmarshalBinary(b) != nil {
			return
		}
		again, err := a.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %x is not canonical: %x, %v", b, again, err)
		}
	})
}

func FuzzHandoff(f *testing.F) {
	f.Add(EncodeHandoff(eventlog.Header()))
	f.Add([]byte("TSEL"))
	f.Fuzz(func(t *testing.T, b []byte) {
		log, err := ParseHandoff(b)
		if err != nil {
			return
		}
		if crc32.ChecksumIEEE(log) != binary.LittleEndian.Uint32(b[12:]) {
			t.Fatal("checksum not checked")
		}
		if !bytes.Equal(EncodeHandoff(log), b[:HandoffHeaderSize+len(log)]) {
			t.Fatal("not canonical")
		}
	})
}
