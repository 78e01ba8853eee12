package qemu

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/verify"
)

// ConsoleVerifier is a verifier talking to a stick through its operator
// console: it hands the stick a signed manifest, enrols its TPM (EK
// certificate chained to Roots, credential activation for the AK), asks for
// a quote on Nonce and verifies it against Reference, with the AK's
// certification of the rollback counter the stick prints before it
// (verify.Verdict.CheckRollback: same AK and boot, Manifest's version not
// below the counter). The same evidence is
// also checked against a replayed nonce (Stale must fail). Feed it every
// console line; it returns what to type.
//
// It serves the QEMU tests of the console and the hosted stick's console
// tests; the API tests use firmware/core/client.
type ConsoleVerifier struct {
	Manifest  []byte
	Roots     *x509.CertPool
	Reference *verify.Reference
	Nonce     []byte

	Verdict, Stale *verify.Verdict
	Problems       []string
	// Halted is set once the verifier asked the stick to halt.
	Halted bool

	channelDigest string
	pending       *verify.PendingEnrolment
	akPublic      []byte
	counter       *attest.NVCertification
}

func (c *ConsoleVerifier) fail(format string, args ...any) string {
	c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	return c.halt()
}

func (c *ConsoleVerifier) halt() string {
	c.Halted = true
	return "halt\n"
}

func decodeLine(line, prefix string, v any) error {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, prefix))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// Line takes one console line and returns the answer to type, or "".
func (c *ConsoleVerifier) Line(line string) string {
	switch {
	case strings.Contains(line, "FAILED") || strings.Contains(line, "refused") || strings.Contains(line, "NOT MEASURED"):
		return c.fail("stick: %s", line)
	case strings.HasPrefix(line, "channel: key sha256:"):
		c.channelDigest = strings.TrimPrefix(line, "channel: key sha256:")
		return "manifest " + base64.StdEncoding.EncodeToString(c.Manifest) + "\n"
	case strings.HasPrefix(line, "READY:"):
		return "enrol\n"
	case strings.HasPrefix(line, "enrol: "):
		var req attest.Enrolment
		if err := decodeLine(line, "enrol: ", &req); err != nil {
			return c.fail("enrol: %v", err)
		}
		ch, p, err := verify.Enrol(&req, c.Roots)
		if err != nil {
			return c.fail("verify.Enrol: %v", err)
		}
		c.pending = p
		js, _ := json.Marshal(ch)
		return "activate " + base64.StdEncoding.EncodeToString(js) + "\n"
	case strings.HasPrefix(line, "activate: "):
		secret, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "activate: "))
		if err != nil {
			return c.fail("activate: %v", err)
		}
		if c.pending == nil {
			return c.fail("activate answer before enrolment")
		}
		if c.akPublic, err = c.pending.Finish(secret); err != nil {
			return c.fail("enrolment: %v", err)
		}
		return "attest " + hex.EncodeToString(c.Nonce) + "\n"
	case strings.HasPrefix(line, "attest-counter: "):
		// "attest-counter: VALUE BASE64" (or "none (why)"): the
		// value is the stick's word; the certification is checked.
		if f := strings.Fields(line); len(f) == 3 {
			c.counter = new(attest.NVCertification)
			if err := decodeLine(f[2], "", c.counter); err != nil {
				return c.fail("attest-counter: %v", err)
			}
		}
		return ""
	case strings.HasPrefix(line, "attest: "):
		var ev attest.Evidence
		if err := decodeLine(line, "attest: ", &ev); err != nil {
			return c.fail("attest: %v", err)
		}
		if d := sha256.Sum256(ev.ChannelKey); hex.EncodeToString(d[:]) != c.channelDigest {
			return c.fail("evidence carries channel key %x, the stick announced %s", d, c.channelDigest)
		}
		exp := verify.Expect{AKPublic: c.akPublic, Nonce: c.Nonce, ChannelKey: ev.ChannelKey, Reference: c.Reference}
		c.Verdict = verify.Verify(&ev, exp)
		served, _, _, err := manifest.Parse(c.Manifest)
		if err != nil {
			return c.fail("the manifest given: %v", err)
		}
		c.Verdict.CheckRollback(c.akPublic, c.counter, ev.ChannelKey, ev.Quote, served.Version, 0)
		exp.Nonce = []byte("an older nonce, replayed")
		c.Stale = verify.Verify(&ev, exp)
		return c.halt()
	}
	return ""
}
