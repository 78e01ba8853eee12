package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

func testCID(t testing.TB, s string) cid.Cid {
	return nameCID(s)
}

// nameCID is the test CID of actor version s.
func nameCID(s string) cid.Cid {
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

var testGov = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// entry is the manifest entry of actor name at version cidOf (nameCID),
// granted log.
func entry(name, cidOf string) manifest.Actor {
	return manifest.Actor{Name: name, CID: nameCID(cidOf).String(), Grants: []string{"log"}}
}

// entries are the entries of actors each at its own name's CID.
func entries(names ...string) []manifest.Actor {
	var out []manifest.Actor
	for _, n := range names {
		out = append(out, entry(n, n))
	}
	return out
}

// testSigned signs a manifest of version with actors (canonical, as
// Sign writes it and a stick measures it).
func testSigned(version uint64, actors ...manifest.Actor) []byte {
	b, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: strings.Repeat("1", 64)}, Actors: actors}, testGov)
	if err != nil {
		panic(err)
	}
	return b
}

// stick is one provisioned swtpm booted the way stage 0 and the stick do.
type stick struct {
	sw    *swtpmtest.Server
	tpm   transport.TPM
	m     *measure.Measurer
	att   *attest.Attester
	roots *x509.CertPool
	ck    []byte            // channel key, measured with the result key
	rk    ed25519.PublicKey // result key
}

var (
	testConfig = []byte("box=10.0.0.2")
	// testManifest is the boot manifest the test sticks measure.
	testManifest = testSigned(1, entries("echo", "kv", "retried")...)
	// testStage0 is the stage 0 image the test sticks measure themselves
	// as.
	testStage0 = []byte("stage 0 image")
)

func bootStick(t testing.TB, caDir string, image []byte, actors ...string) *stick {
	t.Helper()
	return bootStickFrom(t, caDir, sha256.Sum256(testStage0), image, actors...)
}

// bootStickFrom boots a stick whose stage 0 measures itself as stage0.
func bootStickFrom(t testing.TB, caDir string, stage0 [32]byte, image []byte, actors ...string) *stick {
	t.Helper()
	s := manifestedStickFrom(t, caDir, stage0, image)
	for _, a := range actors {
		if err := s.m.MeasureActor(measure.PCRBootActors, measure.Actor{Name: a, CID: testCID(t, a), Capabilities: []string{"log"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.m.Separator(measure.PCRBootActors); err != nil {
		t.Fatal(err)
	}
	return s
}

// manifestedStick is a stick booted up to its manifest (PCR 8 closed),
// before any actor.
func manifestedStick(t testing.TB, caDir string, image []byte) *stick {
	t.Helper()
	return manifestedStickFrom(t, caDir, sha256.Sum256(testStage0), image)
}

// manifestedStickFrom is manifestedStick with stage 0 measuring itself as
// stage0.
func manifestedStickFrom(t testing.TB, caDir string, stage0 [32]byte, image []byte) *stick {
	t.Helper()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: caDir})
	tpm := sw.OpenT(t)
	s0, err := measure.New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s0.MeasureStage0(stage0, "teastick stage0 test"))
	must(s0.MeasureImage(image, "teastick test"))
	must(s0.Separator(measure.HandoffPCRs...))
	h, err := s0.Handoff()
	must(err)
	m, err := measure.Resume(tpm, h, nil)
	must(err)
	must(m.MeasureConfig(testConfig))
	ck := channelKey(t)
	rk, _, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	must(m.MeasureKeys(measure.Keys{Channel: ck, Result: rk}))
	must(m.MeasureManifest(testManifest))
	must(m.Separator(measure.PCRConfig))
	bundle, err := sw.CABundle()
	must(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("no CA certificates")
	}
	att := &attest.Attester{TPM: tpm}
	t.Cleanup(func() { att.Close() })
	return &stick{sw: sw, tpm: tpm, m: m, att: att, roots: roots, ck: ck, rk: rk}
}

// enrol runs the enrolment protocol and returns the trusted AK.
func enrol(t testing.TB, s *stick) []byte {
	t.Helper()
	req, err := s.att.Enrol()
	if err != nil {
		t.Fatal(err)
	}
	ch, pending, err := Enrol(req, s.roots)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.att.ActivateCredential(ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := pending.Finish(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ak
}

func channelKey(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// reference is the reference of a test stick whose boot manifest names
// actors (each at its own name's CID), then takes upgrades. Its PCR 8
// events are testManifest's, which the test sticks measure, whatever
// actors: a test can so check the actor events alone.
func reference(image []byte, actors []string, upgrades ...[]byte) *Reference {
	return &Reference{Stage0: sha256.Sum256(testStage0), Events: BootEvents(sha256.Sum256(image), testConfig, testManifest),
		Boot: testSigned(1, entries(actors...)...), Upgrades: upgrades}
}

func TestEnrolment(t *testing.T) {
	ca := t.TempDir()
	s := bootStick(t, ca, []byte("image"))
	other := bootStick(t, t.TempDir(), []byte("image"))
	req, err := s.att.Enrol()
	if err != nil {
		t.Fatal(err)
	}
	otherReq, err := other.att.Enrol()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		req   *attest.Enrolment
		roots *x509.CertPool
		ok    bool
	}{
		{"genuine", req, s.roots, true},
		{"EK certificate from an unknown CA", otherReq, s.roots, false},
		{"EK public of another TPM", &attest.Enrolment{EKCert: req.EKCert, EKPublic: otherReq.EKPublic, AKPublic: req.AKPublic}, s.roots, false},
		{"AK not a restricted key", &attest.Enrolment{EKCert: req.EKCert, EKPublic: req.EKPublic, AKPublic: req.EKPublic}, s.roots, false},
		{"missing EK certificate", &attest.Enrolment{EKPublic: req.EKPublic, AKPublic: req.AKPublic}, s.roots, false},
		{"missing roots", req, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Enrol(tc.req, tc.roots)
			if (err == nil) != tc.ok {
				t.Fatalf("Enrol = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("credential for an AK in another TPM", func(t *testing.T) {
		// The stick claims other's AK: the credential is bound to that
		// name, and activating it needs that key loaded in this TPM.
		forged := &attest.Enrolment{EKCert: req.EKCert, EKPublic: req.EKPublic, AKPublic: otherReq.AKPublic}
		ch, pending, err := Enrol(forged, s.roots)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := s.att.ActivateCredential(ch.CredentialBlob, ch.EncryptedSecret)
		if err == nil {
			if _, err := pending.Finish(secret); err == nil {
				t.Fatal("enrolled an AK that is not in the TPM")
			}
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, pending, err := Enrol(req, s.roots)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pending.Finish(make([]byte, 32)); err == nil {
			t.Fatal("accepted a wrong secret")
		}
	})
}

func failedNames(v *Verdict) []string {
	var n []string
	for _, c := range v.Failed() {
		n = append(n, c.String())
	}
	return n
}

func TestVerify(t *testing.T) {
	ca := t.TempDir()
	image := []byte("stick image")
	s := bootStick(t, ca, image, "echo", "kv")
	// A run-time upgrade after the stick started serving: the manifest,
	// then the actor it changes.
	v2 := testSigned(2, entry("echo", "echo v2"), entry("kv", "kv"))
	if err := s.m.MeasureUpgrade(v2); err != nil {
		t.Fatal(err)
	}
	if err := s.m.MeasureActor(measure.PCRRuntime, measure.Actor{Name: "echo", CID: testCID(t, "echo v2"), Capabilities: []string{"log"}}); err != nil {
		t.Fatal(err)
	}
	ak := enrol(t, s)
	ck := s.ck
	nonce := []byte("nonce-0123456789")
	ev, err := s.att.Attest(nonce, ck, s.m.Log(), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: reference(image, []string{"echo", "kv"}, v2)}

	// Evidence from a second stick under the same CA, and a stick whose
	// image differs by one byte.
	other := bootStick(t, ca, image, "echo", "kv")
	otherAK := enrol(t, other)
	otherEv, err := other.att.Attest(nonce, ck, other.m.Log(), other.m.PCRs())
	if err != nil {
		t.Fatal(err)
	}
	changed := append(bytes.Clone(image[:len(image)-1]), image[len(image)-1]^1)
	bad := bootStick(t, ca, changed, "echo", "kv")
	badAK := enrol(t, bad)
	badEv, err := bad.att.Attest(nonce, ck, bad.m.Log(), bad.m.PCRs())
	if err != nil {
		t.Fatal(err)
	}
	oldEv, err := s.att.Attest([]byte("old nonce"), ck, s.m.Log(), s.m.PCRs())
	if err != nil {
		t.Fatal(err)
	}

	log, err := eventlog.Parse(ev.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	withLog := func(f func([]eventlog.Event) []eventlog.Event) *attest.Evidence {
		e := *ev
		e.EventLog = eventlog.Encode(f(append([]eventlog.Event(nil), log.Events...)))
		return &e
	}
	type loc struct{ pcr, event int }
	for _, tc := range []struct {
		name string
		ev   *attest.Evidence
		exp  Expect
		want map[string]loc // failed checks that must appear, with PCR/event (-2: any)
		say  []string       // what the failed checks' details must say
	}{
		{name: "genuine", ev: ev, exp: good},
		{name: "tampered event digest", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			e[10].Digest[0] ^= 1 // PCR 8 config
			return e
		}), exp: good, want: map[string]loc{CheckReplay: {8, 13}, CheckReference: {8, 10}}},
		{name: "tampered actor data", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			e[14].Data = bytes.Clone(e[14].Data)
			e[14].Data[len(e[14].Data)-1] ^= 1
			return e
		}), exp: good, want: map[string]loc{CheckActor: {9, 14}}},
		{name: "reordered events", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			e[10], e[12] = e[12], e[10]
			return e
		}), exp: good, want: map[string]loc{CheckReplay: {8, 13}, CheckReference: {8, 10}}},
		{name: "event dropped", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			return append(e[:14], e[15:]...)
		}), exp: good, want: map[string]loc{CheckReplay: {9, 15}}},
		{name: "keys event data swapped for another key", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			other, _, _ := ed25519.GenerateKey(rand.Reader)
			enc, _ := measure.Keys{Channel: ck, Result: other}.MarshalBinary()
			e[11].Data = eventlog.Tagged(eventlog.TagKeys, enc)
			return e
		}), exp: good, want: map[string]loc{CheckKeys: {9, 11}}},
		{name: "keys event dropped", ev: withLog(func(e []eventlog.Event) []eventlog.Event {
			return append(e[:11], e[12:]...)
		}), exp: good, want: map[string]loc{CheckReplay: {9, -2}, CheckKeys: {9, 13}}},
		{name: "replayed old nonce", ev: oldEv, exp: good, want: map[string]loc{CheckQualifying: {-1, -1}}},
		{name: "relayed to another channel key", ev: ev, exp: Expect{AKPublic: ak, Nonce: nonce, ChannelKey: channelKey(t), Reference: good.Reference},
			want: map[string]loc{CheckQualifying: {-1, -1}}},
		{name: "quote from another TPM", ev: otherEv, exp: good, want: map[string]loc{CheckAKTrusted: {-1, -1}, CheckSignature: {-1, -1}}},
		{name: "wrong AK enrolled", ev: ev, exp: Expect{AKPublic: otherAK, Nonce: nonce, ChannelKey: ck, Reference: good.Reference},
			want: map[string]loc{CheckAKTrusted: {-1, -1}, CheckSignature: {-1, -1}}},
		{name: "AK swapped in evidence", ev: func() *attest.Evidence { e := *ev; e.AKPublic = otherAK; return &e }(), exp: good,
			want: map[string]loc{CheckAKTrusted: {-1, -1}}},
		{name: "image changed by one byte", ev: badEv, exp: Expect{AKPublic: badAK, Nonce: nonce, ChannelKey: ck, Reference: good.Reference},
			want: map[string]loc{CheckReference: {4, 1}}},
		{name: "another board's configuration record", ev: ev, exp: Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: func() *Reference {
			r := reference(image, []string{"echo", "kv"}, v2)
			r.Events = BootEvents(sha256.Sum256(image), []byte("box=10.0.0.2\nboard=other"), testManifest)
			return r
		}()}, want: map[string]loc{CheckConfig: {8, 10}}, say: []string{`measured "box=10.0.0.2"`, `reference "box=10.0.0.2\nboard=other"`}},
		{name: "boot actor not in manifest", ev: ev, exp: Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: reference(image, []string{"echo"}, v2)},
			want: map[string]loc{CheckActor: {9, 15}}},
		{name: "run-time upgrade not in manifest", ev: ev, exp: Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: reference(image, []string{"echo", "kv"})},
			want: map[string]loc{CheckActor: {10, 17}}},
		{name: "run-time event hidden from the log", ev: withLog(func(e []eventlog.Event) []eventlog.Event { return e[:18] }), exp: good,
			want: map[string]loc{CheckReplay: {10, 17}}},
		{name: "run-time events hidden from the log", ev: withLog(func(e []eventlog.Event) []eventlog.Event { return e[:17] }), exp: good,
			want: map[string]loc{CheckReplay: {10, -1}}},
		{name: "PCR values forged", ev: func() *attest.Evidence {
			e := *ev
			e.PCRs = maps.Clone(ev.PCRs)
			e.PCRs[4] = make([]byte, 32)
			return &e
		}(), exp: good, want: map[string]loc{CheckPCRDigest: {-1, -1}}},
		{name: "missing nonce", ev: ev, exp: Expect{AKPublic: ak, ChannelKey: ck, Reference: good.Reference},
			want: map[string]loc{CheckInputs: {-1, -1}, CheckQualifying: {-1, -1}}},
		{name: "missing reference", ev: ev, exp: Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck},
			want: map[string]loc{CheckInputs: {-1, -1}, CheckStage0: {-1, -1}, CheckReference: {-2, -2}, CheckActor: {-1, -1}}},
		{name: "missing log", ev: func() *attest.Evidence { e := *ev; e.EventLog = nil; return &e }(), exp: good,
			want: map[string]loc{CheckInputs: {-1, -1}, CheckLogParse: {-1, -1}, CheckReplay: {-2, -2}}},
		{name: "no evidence", ev: nil, exp: good,
			want: map[string]loc{CheckInputs: {-1, -1}, CheckSignature: {-1, -1}, CheckAKTrusted: {-1, -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Verify(tc.ev, tc.exp)
			if tc.want == nil {
				if !v.OK() {
					t.Fatalf("verdict fails:\n%s", v)
				}
				if v.Keys == nil || !v.Keys.Result.Equal(s.rk) || !bytes.Equal(v.Keys.Channel, ck) {
					t.Fatalf("verdict names keys %+v, want the measured ones", v.Keys)
				}
				return
			}
			if v.OK() {
				t.Fatalf("verdict passes:\n%s", v)
			}
			t.Logf("verdict:\n%s", v)
			for name, l := range tc.want {
				found := false
				for _, c := range v.Failed() {
					if c.Name == name && (l.pcr == -2 || c.PCR == l.pcr) && (l.event == -2 || c.Event == l.event) {
						found = true
					}
				}
				if !found {
					t.Errorf("no failed check %q at PCR %d event %d in:\n%s", name, l.pcr, l.event, v)
				}
			}
			for _, say := range tc.say {
				if !strings.Contains(v.String(), say) {
					t.Errorf("the verdict does not say %s:\n%s", say, v)
				}
			}
		})
	}
}

// TestCheckQuote has tpm2_checkquote (tpm2-tools) verify a quote
// independently: AK as PEM, the TPMS_ATTEST message, the TPMT_SIGNATURE,
// the PCR values and the qualifying data.
func TestCheckQuote(t *testing.T) {
	if _, err := exec.LookPath("tpm2_checkquote"); err != nil {
		t.Fatalf("tpm2_checkquote not found (Debian package tpm2-tools; `make tpm-prep`): %v", err)
	}
	s := bootStick(t, "", []byte("image"), "echo")
	ck := channelKey(t)
	nonce := []byte("checkquote nonce")
	ev, err := s.att.Attest(nonce, ck, s.m.Log(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](ev.AKPublic)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tpm2.Pub(*pub)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	for _, p := range measure.PlanPCRs() {
		values = append(values, ev.PCRs[p])
	}
	pcrs := serializedPCRs(measure.PlanPCRs(), values)
	files := map[string][]byte{
		"ak.pem":    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"quote.msg": ev.Quote,
		"quote.sig": ev.Signature,
		"pcrs.bin":  pcrs,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(qual []byte, pcrFile string) error {
		cmd := exec.Command("tpm2_checkquote", "-u", "ak.pem", "-m", "quote.msg", "-s", "quote.sig",
			"-f", pcrFile, "-g", "sha256", "-q", hex.EncodeToString(qual))
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	values[4] = bytes.Clone(values[4])
	values[4][0] ^= 1
	bad := serializedPCRs(measure.PlanPCRs(), values)
	if err := os.WriteFile(filepath.Join(dir, "bad.bin"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		qual []byte
		pcrs string
		ok   bool
	}{
		{"genuine", attest.QualifyingData(nonce, ck), "pcrs.bin", true},
		{"other nonce", attest.QualifyingData([]byte("other"), ck), "pcrs.bin", false},
		{"PCR 4 changed", attest.QualifyingData(nonce, ck), "bad.bin", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.qual, tc.pcrs)
			if (err == nil) != tc.ok {
				t.Fatalf("tpm2_checkquote: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// serializedPCRs is tpm2-tools' "serialized" PCR file (what tpm2_quote -o
// writes by default): the in-memory C structures TPML_PCR_SELECTION (16
// TPMS_PCR_SELECTION of 8 bytes with padding), a uint32 count, then count
// TPML_DIGEST of up to 8 TPM2B_DIGEST (2 + 64 bytes) each, little-endian.
func serializedPCRs(pcrs []uint32, values [][]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 1)
	sel := make([]byte, 8)
	binary.LittleEndian.PutUint16(sel, uint16(tpm2.TPMAlgSHA256))
	sel[2] = 3
	for _, p := range pcrs {
		sel[3+p/8] |= 1 << (p % 8)
	}
	b = append(b, sel...)
	b = append(b, make([]byte, 15*8)...)
	n := (len(values) + 7) / 8
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for i := 0; i < n; i++ {
		chunk := values[i*8 : min(i*8+8, len(values))]
		b = binary.LittleEndian.AppendUint32(b, uint32(len(chunk)))
		for j := 0; j < 8; j++ {
			d := make([]byte, 66)
			if j < len(chunk) {
				binary.LittleEndian.PutUint16(d, uint16(len(chunk[j])))
				copy(d[2:], chunk[j])
			}
			b = append(b, d...)
		}
	}
	return b
}

// TestVerifyKeys: a quote names the keys of its boot only if the stick
// measured exactly one keys event, first on PCR 9, before the separator.
// The attacks are the ones an attacker with the TPM can mount: extend
// their own keys event after the genuine stick's, measure keys late, or
// not at all.
func TestVerifyKeys(t *testing.T) {
	ca := t.TempDir()
	image := []byte("stick image")
	own, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("nonce-keys-0123")
	for _, tc := range []struct {
		name string
		// after runs on the booted stick; it returns the channel key the
		// evidence carries.
		after  func(t *testing.T, s *stick) []byte
		reboot func(t *testing.T) *stick // instead of bootStick
		fail   string
		pcr    int
	}{
		{name: "genuine", after: func(t *testing.T, s *stick) []byte { return s.ck }},
		{name: "own keys event extended after the separator", after: func(t *testing.T, s *stick) []byte {
			if err := s.m.MeasureKeys(measure.Keys{Channel: s.ck, Result: own}); err != nil {
				t.Fatal(err)
			}
			return s.ck
		}, fail: CheckActor, pcr: 9},
		{name: "own keys event extended into PCR 10", after: func(t *testing.T, s *stick) []byte {
			if err := s.m.Extend(measure.PCRRuntime, eventlog.EV_EVENT_TAG, sha256.Sum256(keysData(t, s.ck, own)), keysData(t, s.ck, own)); err != nil {
				t.Fatal(err)
			}
			return s.ck
		}, fail: CheckActor, pcr: 10},
		{name: "evidence names another channel key than the measured one", after: func(t *testing.T, s *stick) []byte {
			return channelKey(t)
		}, fail: CheckKeys, pcr: 9},
		{name: "no keys event", reboot: func(t *testing.T) *stick {
			return bootSequence(t, ca, image, nil, false)
		}, fail: CheckKeys, pcr: 9},
		{name: "keys measured after an actor", reboot: func(t *testing.T) *stick {
			return bootSequence(t, ca, image, []string{"echo"}, true)
		}, fail: CheckKeys, pcr: 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *stick
			ck := []byte(nil)
			if tc.reboot != nil {
				s = tc.reboot(t)
				ck = s.ck
			} else {
				s = bootStick(t, ca, image, "echo")
				ck = tc.after(t, s)
			}
			ak := enrol(t, s)
			ev, err := s.att.Attest(nonce, ck, s.m.Log(), nil)
			if err != nil {
				t.Fatal(err)
			}
			v := Verify(ev, Expect{AKPublic: ak, Nonce: nonce, ChannelKey: ck, Reference: reference(image, []string{"echo"})})
			if tc.fail == "" {
				if !v.OK() || v.Keys == nil || !v.Keys.Result.Equal(s.rk) {
					t.Fatalf("verdict (keys %+v):\n%s", v.Keys, v)
				}
				return
			}
			if v.OK() {
				t.Fatalf("verdict passes:\n%s", v)
			}
			found := false
			for _, c := range v.Failed() {
				found = found || c.Name == tc.fail && c.PCR == tc.pcr
			}
			if !found {
				t.Fatalf("no failed %q on PCR %d:\n%s", tc.fail, tc.pcr, v)
			}
			if v.Keys != nil && v.Keys.Result.Equal(own) {
				t.Fatal("the verdict names the attacker's key")
			}
			t.Logf("verdict:\n%s", v)
		})
	}
}

func keysData(t *testing.T, ck []byte, rk ed25519.PublicKey) []byte {
	enc, err := measure.Keys{Channel: ck, Result: rk}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return eventlog.Tagged(eventlog.TagKeys, enc)
}

// bootSequence boots like bootStick but measures the keys after the
// actors (late) or not at all.
func bootSequence(t *testing.T, caDir string, image []byte, actors []string, late bool) *stick {
	t.Helper()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: caDir})
	tpm := sw.OpenT(t)
	m, err := measure.New(tpm, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck := channelKey(t)
	rk, _, _ := ed25519.GenerateKey(rand.Reader)
	steps := []func() error{
		func() error { return m.MeasureImage(image, "teastick test") },
		func() error { return m.Separator(measure.HandoffPCRs...) },
		func() error { return m.MeasureConfig(testConfig) },
		func() error { return m.MeasureManifest(testManifest) },
		func() error { return m.Separator(measure.PCRConfig) },
	}
	for _, a := range actors {
		steps = append(steps, func() error {
			return m.MeasureActor(measure.PCRBootActors, measure.Actor{Name: a, CID: testCID(t, a), Capabilities: []string{"log"}})
		})
	}
	if late {
		steps = append(steps, func() error { return m.MeasureKeys(measure.Keys{Channel: ck, Result: rk}) })
	}
	steps = append(steps, func() error { return m.Separator(measure.PCRBootActors) })
	for _, f := range steps {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	bundle, err := sw.CABundle()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	att := &attest.Attester{TPM: tpm}
	t.Cleanup(func() { att.Close() })
	return &stick{sw: sw, tpm: tpm, m: m, att: att, roots: roots, ck: ck, rk: rk}
}
