package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/tpmtest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// bootEvents is a boot as teastick logs it: the image (PCR 4), separators
// on 0-7, configuration and manifest (PCR 8), two actors (PCR 9) and a
// run-time upgrade (PCR 10).
func bootEvents() []Event {
	var ev []Event
	add := func(pcr uint32, typ EventType, digestOf, data []byte) {
		ev = append(ev, Event{PCR: pcr, Type: typ, Digest: sha256.Sum256(digestOf), Data: data})
	}
	add(4, EV_IPL, []byte("stick image bytes"), []byte("teastick stick image"))
	for pcr := uint32(0); pcr < 8; pcr++ {
		add(pcr, EV_SEPARATOR, Separator, Separator)
	}
	for _, t := range []struct {
		pcr uint32
		tag uint32
		v   string
	}{
		{8, TagConfig, "box=10.0.0.2"},
		{8, TagManifest, "manifest v1"},
		{9, TagActor, "echo"},
		{9, TagActor, "kv"},
		{8, 0, ""},
		{9, 0, ""},
		{10, TagActor, "echo v2"},
	} {
		if t.tag == 0 {
			add(t.pcr, EV_SEPARATOR, Separator, Separator)
			continue
		}
		d := Tagged(t.tag, []byte(t.v))
		add(t.pcr, EV_EVENT_TAG, d, d)
	}
	return ev
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (run with -update if intended)", path)
	}
}

func TestGolden(t *testing.T) {
	b := Encode(bootEvents())
	golden(t, "boot.eventlog", b)
	log, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Events) != len(bootEvents()) {
		t.Fatalf("%d events parsed", len(log.Events))
	}
	if !bytes.Equal(Encode(log.Events), b) {
		t.Fatal("parse then encode differs")
	}
}

// TestToolAndTPMAgree writes the boot log, has tpm2_eventlog parse and
// replay it, extends the same digests into a real TPM (swtpm, SHA-256 bank
// only) and checks the three agree.
func TestToolAndTPMAgree(t *testing.T) {
	events := bootEvents()
	tool := tpmtest.ToolPCRs(t, Encode(events))
	ours := Replay(events)

	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
	tpm := sw.OpenT(t)
	for _, e := range events {
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(e.PCR), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: e.Digest[:]}}},
		}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(tool) != len(ours) {
		t.Fatalf("tpm2_eventlog replays %d PCRs, we %d", len(tool), len(ours))
	}
	for pcr, want := range ours {
		if PCRs(tool)[pcr] != want {
			t.Errorf("PCR %d: tpm2_eventlog %x, replay %x", pcr, tool[pcr], want)
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr))}}}}.Execute(tpm)
		if err != nil {
			t.Fatal(err)
		}
		if got := rsp.PCRValues.Digests[0].Buffer; !bytes.Equal(got, want[:]) {
			t.Errorf("PCR %d: TPM %x, replay %x", pcr, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := Encode(bootEvents())
	hdr := len(Header())
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"header only is fine", Header(), nil},
		{"truncated header", good[:20], ErrMalformed},
		{"truncated event", good[:len(good)-1], ErrMalformed},
		{"wrong signature", mod(func(b []byte) []byte { b[32] = 'X'; return b }), ErrMalformed},
		{"header not EV_NO_ACTION", mod(func(b []byte) []byte { b[4] = 4; return b }), ErrMalformed},
		{"no SHA-256 in header", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[hdr-5:], 0x0004) // sha1
			return b
		}), ErrNoSHA256},
		{"two digests in an event", mod(func(b []byte) []byte { b[hdr+8] = 2; return b }), ErrMalformed},
		{"unknown digest algorithm", mod(func(b []byte) []byte { b[hdr+12] = 0x0c; return b }), ErrMalformed},
		{"PCR out of range", mod(func(b []byte) []byte { b[hdr] = 24; return b }), ErrMalformed},
		{"huge event data", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[hdr+46:], 0xffffffff)
			return b
		}), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParseMultiBank parses a log declaring SHA-1 and SHA-256 (as firmware
// on a four-bank TPM writes it) and keeps the SHA-256 digests.
func TestParseMultiBank(t *testing.T) {
	var spec []byte
	spec = append(spec, specIDSignature...)
	spec = append(spec, 0, 0, 0, 0, 0, 2, 0, 2)
	spec = binary.LittleEndian.AppendUint32(spec, 2)
	spec = append(spec, 0x04, 0, 20, 0, 0x0b, 0, 32, 0, 0)
	b := binary.LittleEndian.AppendUint32(nil, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(EV_NO_ACTION))
	b = append(b, make([]byte, 20)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(spec)))
	b = append(b, spec...)
	d := sha256.Sum256(Separator)
	b = binary.LittleEndian.AppendUint32(b, 7)
	b = binary.LittleEndian.AppendUint32(b, uint32(EV_SEPARATOR))
	b = binary.LittleEndian.AppendUint32(b, 2)
	b = append(b, 0x04, 0)
	b = append(b, make([]byte, 20)...)
	b = append(b, 0x0b, 0)
	b = append(b, d[:]...)
	b = binary.LittleEndian.AppendUint32(b, 4)
	b = append(b, Separator...)
	log, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Algs) != 2 || len(log.Events) != 1 || log.Events[0].Digest != d || log.Events[0].PCR != 7 {
		t.Fatalf("parsed %+v", log)
	}
}

func TestTagged(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"round trip", Tagged(TagActor, []byte("x")), true},
		{"empty payload", Tagged(TagConfig, nil), true},
		{"short", []byte{1, 2, 3}, false},
		{"size too large", Tagged(TagActor, []byte("xy"))[:9], false},
		{"trailing", append(Tagged(TagActor, []byte("xy")), 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseTagged(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseTagged = %v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Encode(bootEvents()))
	f.Add(Header())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		log, err := Parse(b)
		if err != nil {
			return
		}
		Replay(log.Events)
		if len(log.Algs) == 1 && bytes.HasPrefix(b, Header()[:32]) {
			if got := Encode(log.Events); len(got) > len(b) {
				t.Fatalf("re-encoding grew: %d > %d", len(got), len(b))
			}
		}
		for _, e := range log.Events {
			ParseTagged(e.Data)
		}
	})
}
