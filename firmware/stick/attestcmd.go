package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

// governanceKey is the hex Ed25519 public key whose signatures the stick
// accepts on release manifests, set at build time (-X
// main.governanceKey=...; make GOVERNANCE_KEY=...). Without it the stick
// accepts no manifest.
var governanceKey string

// trust is the stick's measured state and the keys that prove it. Until an
// API exists (the stick's HTTP API), the operator console carries the
// manifest, enrolment and attestation exchanges as base64 lines.
type trust struct {
	tpm transport.TPM
	// m is nil when measured boot did not succeed; why says why.
	m   *measure.Measurer
	why error
	att *attest.Attester

	gov []ed25519.PublicKey

	// channel is the key that will protect the stick's API; attestations
	// bind its digest so a relay cannot pass off a genuine quote.
	channel    *ecdsa.PrivateKey
	channelDER []byte

	mu       sync.Mutex
	manifest *manifest.Manifest
}

// stickConfig is the configuration the stick measures into PCR 8.
func stickConfig(board string) []byte {
	return []byte("version=" + Version + "\nboard=" + board + "\n")
}

// imageDigest is the measurement of a stick image.
func imageDigest(image []byte) [32]byte { return sha256.Sum256(image) }

func parseGovernanceKey(s string) ([]ed25519.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("governance key %q is not a hex Ed25519 public key", s)
	}
	return []ed25519.PublicKey{b}, nil
}

func newTrust(tpm transport.TPM, m *measure.Measurer, why error, gov []ed25519.PublicKey) (*trust, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	t := &trust{tpm: tpm, m: m, why: why, gov: gov, channel: k, channelDER: der}
	if tpm != nil {
		t.att = &attest.Attester{TPM: tpm}
	}
	return t, nil
}

// ChannelKeyDigest is what the stick prints at boot: the SHA-256 of its
// channel key's PKIX DER.
func (t *trust) channelKeyDigest() [32]byte { return sha256.Sum256(t.channelDER) }

var errNotMeasured = errors.New("not measured")

func (t *trust) measured() error {
	if t.m == nil {
		return fmt.Errorf("%w: %v", errNotMeasured, t.why)
	}
	if err := t.m.Err(); err != nil {
		return fmt.Errorf("%w: %v", errNotMeasured, err)
	}
	return nil
}

// b64line writes "name: <base64 of v as JSON>".
func b64line(w io.Writer, name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(w, "%s: FAILED: %v\n", name, err)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", name, base64.StdEncoding.EncodeToString(b))
}

// challenge is what a verifier sends back at enrolment (verify.Challenge).
type challenge struct {
	CredentialBlob  []byte
	EncryptedSecret []byte
}

func (t *trust) commands() map[string]command {
	return map[string]command{
		"manifest": {help: "BASE64: accept a signed release manifest and measure it", run: t.cmdManifest},
		"enrol":    {help: "print the enrolment request (EK certificate, EK and AK public)", run: t.cmdEnrol},
		"activate": {help: "BASE64: answer the verifier's credential challenge", run: t.cmdActivate},
		"attest":   {help: "NONCE-HEX: quote the PCRs for this nonce, with the event log", run: t.cmdAttest},
	}
}

func (t *trust) cmdManifest(w io.Writer, args []string) {
	if len(args) != 1 {
		fmt.Fprintln(w, "manifest: usage: manifest BASE64")
		return
	}
	if err := t.measured(); err != nil {
		fmt.Fprintf(w, "manifest: refused: %v\n", err)
		return
	}
	if len(t.gov) == 0 {
		fmt.Fprintln(w, "manifest: refused: this image has no governance key built in")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(args[0])
	if err != nil {
		fmt.Fprintf(w, "manifest: refused: not base64: %v\n", err)
		return
	}
	m, err := manifest.Verify(raw, t.gov...)
	if err != nil {
		fmt.Fprintf(w, "manifest: refused: %v\n", err)
		return
	}
	if running, ok := t.imageDigest(); !ok || hex.EncodeToString(running[:]) != m.Firmware.Stick {
		fmt.Fprintf(w, "manifest: refused: this stick runs image sha256:%x, the manifest allows sha256:%s\n", running, m.Firmware.Stick)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.manifest != nil {
		if err := manifest.CheckUpgrade(t.manifest, m); err != nil {
			fmt.Fprintf(w, "manifest: refused: %v\n", err)
			return
		}
		fmt.Fprintln(w, "manifest: refused: upgrades while serving come through the stick's API, which is not built yet")
		return
	}
	if err := t.m.MeasureManifest(raw); err != nil {
		fmt.Fprintf(w, "manifest: FAILED: %v\n", err)
		return
	}
	if err := t.m.Separator(measure.PCRConfig); err != nil {
		fmt.Fprintf(w, "manifest: FAILED: %v\n", err)
		return
	}
	t.manifest = m
	fmt.Fprintf(w, "manifest: accepted version %d (%d actors), measured into PCR %d\n", m.Version, len(m.Actors), measure.PCRConfig)
	// Boot actors are measured into PCR 9 as they load; this image has no
	// actor runtime yet, so none loads and none is measured.
	for _, a := range m.Actors {
		fmt.Fprintf(w, "manifest: actor %s (%s) not served: this image has no actor runtime yet\n", a.Name, a.CID)
	}
	if err := t.m.Separator(measure.PCRBootActors); err != nil {
		fmt.Fprintf(w, "manifest: FAILED: %v\n", err)
		return
	}
	fmt.Fprintf(w, "manifest: boot measurements closed (separator on PCR %d)\n", measure.PCRBootActors)
}

// manifestVersion is the running manifest's version, 0 before one.
func (t *trust) manifestVersion() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.manifest == nil {
		return 0
	}
	return t.manifest.Version
}

// imageDigest is the stick image digest stage 0 measured (the EV_IPL event
// on PCR 4).
func (t *trust) imageDigest() (d [32]byte, ok bool) {
	for _, e := range t.m.Events() {
		if e.PCR == measure.PCRImage && e.Type == eventlog.EV_IPL {
			return e.Digest, true
		}
	}
	return d, false
}

func (t *trust) cmdEnrol(w io.Writer, _ []string) {
	if t.att == nil {
		fmt.Fprintln(w, "enrol: refused: no TPM")
		return
	}
	req, err := t.att.Enrol()
	if err != nil {
		fmt.Fprintf(w, "enrol: FAILED: %v\n", err)
		return
	}
	b64line(w, "enrol", req)
}

func (t *trust) cmdActivate(w io.Writer, args []string) {
	if t.att == nil {
		fmt.Fprintln(w, "activate: refused: no TPM")
		return
	}
	var c challenge
	raw, err := base64.StdEncoding.DecodeString(firstArg(args))
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil || len(args) != 1 {
		fmt.Fprintf(w, "activate: usage: activate BASE64 (%v)\n", err)
		return
	}
	secret, err := t.att.ActivateCredential(c.CredentialBlob, c.EncryptedSecret)
	if err != nil {
		fmt.Fprintf(w, "activate: FAILED: %v\n", err)
		return
	}
	fmt.Fprintf(w, "activate: %s\n", base64.StdEncoding.EncodeToString(secret))
}

func (t *trust) cmdAttest(w io.Writer, args []string) {
	nonce, err := hex.DecodeString(firstArg(args))
	if err != nil || len(args) != 1 || len(nonce) < 8 || len(nonce) > 64 {
		fmt.Fprintln(w, "attest: usage: attest NONCE-HEX (8 to 64 bytes)")
		return
	}
	if err := t.measured(); err != nil {
		fmt.Fprintf(w, "attest: refused: %v\n", err)
		return
	}
	ev, err := t.att.Attest(nonce, t.channelDER, t.m.Log(), t.m.PCRs())
	if err != nil {
		fmt.Fprintf(w, "attest: FAILED: %v\n", err)
		return
	}
	b64line(w, "attest", ev)
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
