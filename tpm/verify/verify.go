// Package verify is the verifier of teastick's remote attestation (host
// side): it enrols a stick's attestation key through its EK certificate and
// credential activation, and checks a stick's evidence (quote, PCRs, event
// log) against reference measurements and the release manifest's actors,
// returning a Verdict that lists every check.
package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

// ErrEnrol means an enrolment failed.
var ErrEnrol = errors.New("verify: enrolment refused")

// Challenge is the credential the verifier sends a stick at enrolment.
type Challenge struct {
	CredentialBlob  []byte
	EncryptedSecret []byte
}

// PendingEnrolment is the verifier's state between challenge and answer.
type PendingEnrolment struct {
	secret   []byte
	akPublic []byte
}

// Enrol checks an enrolment request and makes a credential only the
// TPM holding the certified EK can activate, and only for the AK named:
//   - the EK certificate chains to roots and is an EK certificate by the
//     TCG EK Credential Profile (checkEKProfile: not a CA, keyEncipherment,
//     tcg-kp-EKCertificate when it has extended key usages, the TPM
//     manufacturer/model/version alternative name; errors wrap
//     ErrEKProfile);
//   - the certified key equals the EK public the stick sent;
//   - the AK is a restricted, fixedTPM ECC P-256 signing key.
func Enrol(req *attest.Enrolment, roots *x509.CertPool) (*Challenge, *PendingEnrolment, error) {
	if req == nil || roots == nil {
		return nil, nil, fmt.Errorf("%w: missing request or CA roots", ErrEnrol)
	}
	cert, err := x509.ParseCertificate(req.EKCert)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: EK certificate: %v", ErrEnrol, err)
	}
	// The profile check also clears the critical subject alternative name
	// (a directoryName Go does not process) for the chain check below.
	if err := checkEKProfile(cert); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrEnrol, err)
	}
	// EK certificates carry key usages Go does not know (the profile
	// check requires tcg-kp-EKCertificate when there are any).
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, fmt.Errorf("%w: EK certificate does not chain to the CA: %v", ErrEnrol, err)
	}
	ekPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](req.EKPublic)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: EK public: %v", ErrEnrol, err)
	}
	ekKey, err := tpm2.Pub(*ekPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: EK public: %v", ErrEnrol, err)
	}
	certKey, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !certKey.Equal(ekKey) {
		return nil, nil, fmt.Errorf("%w: EK certificate certifies another key", ErrEnrol)
	}
	if !bytes.Equal(tpm2.Marshal(*ekPub), tpm2.Marshal(attestEKWithUnique(ekPub))) {
		return nil, nil, fmt.Errorf("%w: EK not made from the standard template", ErrEnrol)
	}
	akPub, err := parseAK(req.AKPublic)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrEnrol, err)
	}
	name, err := tpm2.ObjectName(akPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: AK name: %v", ErrEnrol, err)
	}
	kem, err := tpm2.ImportEncapsulationKey(ekPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: EK: %v", ErrEnrol, err)
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return nil, nil, err
	}
	blob, enc, err := tpm2.CreateCredential(rand.Reader, kem, name.Buffer, secret)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: make credential: %v", ErrEnrol, err)
	}
	return &Challenge{CredentialBlob: blob, EncryptedSecret: enc},
		&PendingEnrolment{secret: secret, akPublic: bytes.Clone(req.AKPublic)}, nil
}

// attestEKWithUnique is the standard EK template with ek's unique field: an
// EK made from the template differs from it only there.
func attestEKWithUnique(ek *tpm2.TPMTPublic) tpm2.TPMTPublic {
	t := attest.EKTemplate
	t.Unique = ek.Unique
	return t
}

// Finish checks the secret the stick recovered and returns the AK public
// area (TPMT_PUBLIC) now trusted to be resident in the certified TPM.
func (p *PendingEnrolment) Finish(activated []byte) ([]byte, error) {
	if p == nil || subtle.ConstantTimeCompare(p.secret, activated) != 1 {
		return nil, fmt.Errorf("%w: credential activation returned the wrong secret", ErrEnrol)
	}
	return p.akPublic, nil
}

func parseAK(b []byte) (*tpm2.TPMTPublic, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, fmt.Errorf("AK public: %w", err)
	}
	a := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || pub.NameAlg != tpm2.TPMAlgSHA256 || !a.Restricted || !a.SignEncrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || a.Decrypt {
		return nil, errors.New("AK is not a restricted fixedTPM signing key")
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil || parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, errors.New("AK is not ECC P-256")
	}
	return pub, nil
}

// Reference is what a release publishes and the verifier expects.
type Reference struct {
	// Stage0 is the SHA-256 of the stage 0 image the release names
	// (manifest firmware.stage0, the bundle's boot.elf): PCR 0's first
	// event must be stage 0's own measurement of it (CheckStage0). Zero
	// (measure.NoStage0) expects the hosted stick, which no stage 0 loads.
	Stage0 [32]byte
	// Events are the expected events on PCRs 0..8 (the fixed part of the
	// boot), in log order, stage 0's own event aside; BootEvents builds
	// them.
	Events []eventlog.Event
	// Boot is the signed boot manifest file, the one Events measures
	// into PCR 8 (its signature is the caller's to check, as for
	// Upgrades). Every actor event on PCR 9, and every one on PCR 10
	// before the first upgrade, must be one of its entries: name, CID and
	// grants.
	Boot []byte
	// Upgrades are the signed manifest files the stick may have accepted
	// while serving, in the order it accepted them (increasing
	// versions). Each is measured into PCR 10, in its canonical form
	// (MeasuredManifest), before the actors it changes, and the log must
	// show them in this order (it may end before the last ones: a quote
	// taken before the stick measured them). From its event on, each
	// actor event on PCR 10 must be one of its entries.
	Upgrades [][]byte
	// Native is the release's native table: the actors whose
	// translation is compiled into the stick image the boot manifest
	// names (image/release reads it from that image; reference.json
	// "native"). An actor event saying EngineNative passes only for a
	// manifest entry marked native whose CID is in this table; nil
	// means the image holds none, so every native event fails.
	Native []NativeActor
}

// NativeActor is one entry of a release's native table.
type NativeActor struct {
	// Name is the actor the translation was made for (informational:
	// the stick finds a translation by CID alone).
	Name string
	// CID is the module that was translated.
	CID cid.Cid
}

// ActorEngine is how one actor event of the log says the actor ran.
type ActorEngine struct {
	PCR    uint32
	Event  int
	Name   string
	CID    string
	Engine measure.Engine
	// Note says why an actor the manifest marks native runs under
	// wazero ("" otherwise).
	Note string
}

// Stage0Event is stage 0's measurement of itself, the first event on PCR
// 0, as measure.MeasureStage0 extends it.
func Stage0Event(stage0 [32]byte) eventlog.Event {
	return eventlog.Event{PCR: measure.PCRStage0, Type: eventlog.EV_S_CRTM_CONTENTS, Digest: stage0}
}

// MeasuredManifest is what a stick measures for the signed manifest file
// b: its canonical form (manifest.CanonicalFile), so any spacing or key
// order of the outer wrapper gives the same event. Bytes that are not a
// manifest file, which no stick accepts and so none measures, are
// returned as they are.
func MeasuredManifest(b []byte) []byte {
	if c, err := manifest.CanonicalFile(b); err == nil {
		return c
	}
	return b
}

// BootEvents returns the events a correct boot logs on PCRs 0..8 after
// stage 0's own measurement (Stage0Event, checked as CheckStage0): the image
// (PCR 4), the hand-off separators (0-7), configuration, manifest (in its
// canonical form, MeasuredManifest, whatever file is given) and a
// separator (PCR 8), exactly as package measure extends them. The tagged
// events carry their data, so that a verifier names a configuration
// record (version and board) that differs (CheckConfig) rather than a
// digest.
func BootEvents(imageDigest [32]byte, config, signed []byte) []eventlog.Event {
	sep := sha256.Sum256(eventlog.Separator)
	ev := []eventlog.Event{{PCR: measure.PCRImage, Type: eventlog.EV_IPL, Digest: imageDigest}}
	for _, p := range measure.HandoffPCRs {
		ev = append(ev, eventlog.Event{PCR: p, Type: eventlog.EV_SEPARATOR, Digest: sep})
	}
	for _, t := range []struct {
		tag  uint32
		data []byte
	}{{eventlog.TagConfig, config}, {eventlog.TagManifest, MeasuredManifest(signed)}} {
		d := eventlog.Tagged(t.tag, t.data)
		ev = append(ev, eventlog.Event{PCR: measure.PCRConfig, Type: eventlog.EV_EVENT_TAG, Digest: sha256.Sum256(d), Data: d})
	}
	return append(ev, eventlog.Event{PCR: measure.PCRConfig, Type: eventlog.EV_SEPARATOR, Digest: sep})
}

// configRecord returns the configuration record a PCR 8 event carries,
// when it is one whose data hashes to its digest.
func configRecord(e eventlog.Event) ([]byte, bool) {
	if e.PCR != measure.PCRConfig || e.Type != eventlog.EV_EVENT_TAG || sha256.Sum256(e.Data) != e.Digest {
		return nil, false
	}
	tag, payload, err := eventlog.ParseTagged(e.Data)
	if err != nil || tag != eventlog.TagConfig {
		return nil, false
	}
	return payload, true
}

// Expect is what one verification needs; every field is required.
type Expect struct {
	// AKPublic is the enrolled AK (from PendingEnrolment.Finish).
	AKPublic []byte
	// Nonce is the nonce the verifier sent for this attestation.
	Nonce []byte
	// ChannelKey is the PKIX DER of the channel key the verifier sees on
	// its connection to the stick.
	ChannelKey []byte
	// Reference holds the release's reference measurements.
	Reference *Reference
}

// Check is one verification step.
type Check struct {
	Name   string
	Pass   bool
	Detail string
	// PCR and Event locate a failure: -1 when not about one PCR or event
	// (Event is the index in the log's TCG_PCR_EVENT2 entries).
	PCR   int
	Event int
}

func (c Check) String() string {
	s := "ok  "
	if !c.Pass {
		s = "FAIL"
	}
	s += " " + c.Name
	if c.PCR >= 0 {
		s += fmt.Sprintf(" [PCR %d", c.PCR)
		if c.Event >= 0 {
			s += fmt.Sprintf(" event %d", c.Event)
		}
		s += "]"
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Verdict is the result of a verification: every check, passed or not.
type Verdict struct {
	Checks []Check
	// Keys are the channel and result keys measured by the boot the
	// quote attests (the keys event on PCR 9); nil unless CheckKeys
	// passed. Only when OK are they the keys of a verified boot.
	Keys *measure.Keys
	// BootOpen: the quote was taken before the stick closed PCR 9, while
	// it still loaded boot actors (those it served were checked).
	BootOpen bool
	// RollbackCounter is the TPM's rollback counter CheckRollback found
	// certified (0 when it found none).
	RollbackCounter uint64
	// Engines lists, for each actor event of PCRs 9 and 10 that passed
	// CheckActor, how the stick ran that actor (PCR 9 tells which boot
	// actors ran natively, PCR 10 which later ones).
	Engines []ActorEngine
}

// OK reports whether every check passed (and there were checks).
func (v *Verdict) OK() bool {
	if len(v.Checks) == 0 {
		return false
	}
	for _, c := range v.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// Failed returns the failed checks.
func (v *Verdict) Failed() []Check {
	var f []Check
	for _, c := range v.Checks {
		if !c.Pass {
			f = append(f, c)
		}
	}
	return f
}

func (v *Verdict) String() string {
	var b strings.Builder
	for _, c := range v.Checks {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (v *Verdict) add(name string, pass bool, pcr, event int, format string, args ...any) bool {
	v.Checks = append(v.Checks, Check{Name: name, Pass: pass, PCR: pcr, Event: event, Detail: fmt.Sprintf(format, args...)})
	return pass
}

// Check names.
const (
	CheckInputs       = "inputs present"
	CheckAKTrusted    = "AK is the enrolled AK"
	CheckSignature    = "quote signature"
	CheckQuoteForm    = "quote structure"
	CheckQualifying   = "nonce and channel key"
	CheckSelection    = "PCR selection and banks"
	CheckPCRDigest    = "PCR values match the quote"
	CheckLogParse     = "event log parses"
	CheckReplay       = "event log replays to the PCRs"
	CheckStage0       = "stage 0 measurement (PCR 0)"
	CheckReference    = "reference measurement"
	CheckConfig       = "configuration record (PCR 8): version and board"
	CheckActor        = "actor allowed by the manifest"
	CheckEngine       = "actor engine allowed by the manifest and the image"
	CheckPlan         = "events within the PCR plan"
	CheckBootFinished = "boot actors closed by one separator"
	CheckKeys         = "keys measured once before serving"
)

// Verify checks evidence against exp. It never stops early: every check
// runs (a check whose inputs are missing or unusable fails) and the
// verdict lists them all. Besides the quote, the log and the reference,
// it requires the stick's keys event (measure.MeasureKeys) as the first
// and only keys event, first on PCR 9, naming the channel key the quote
// binds; the verdict's Keys are then the boot's channel and result keys.
func Verify(ev *attest.Evidence, exp Expect) *Verdict {
	v := &Verdict{}
	if ev == nil {
		ev = &attest.Evidence{}
	}
	var missing []string
	for name, b := range map[string][]byte{"evidence AK": ev.AKPublic, "quote": ev.Quote, "signature": ev.Signature,
		"event log": ev.EventLog, "channel key": ev.ChannelKey, "enrolled AK": exp.AKPublic, "nonce": exp.Nonce, "expected channel key": exp.ChannelKey} {
		if len(b) == 0 {
			missing = append(missing, name)
		}
	}
	if exp.Reference == nil {
		missing = append(missing, "reference")
		v.add(CheckStage0, false, -1, -1, "no reference stage 0")
		v.add(CheckReference, false, -1, -1, "no reference measurements")
		v.add(CheckActor, false, -1, -1, "no manifest actors")
		v.add(CheckEngine, false, -1, -1, "no manifest actors nor native table")
	}
	slices.Sort(missing)
	v.add(CheckInputs, len(missing) == 0, -1, -1, "%s", strings.Join(missing, ", "))

	// AK trust and signature.
	v.add(CheckAKTrusted, len(exp.AKPublic) > 0 && bytes.Equal(ev.AKPublic, exp.AKPublic), -1, -1, "")
	var attestMsg *tpm2.TPMSAttest
	sigOK := false
	if ak, err := parseAK(exp.AKPublic); err != nil {
		v.add(CheckSignature, false, -1, -1, "enrolled AK: %v", err)
	} else if err := checkSignature(ak, ev.Quote, ev.Signature); err != nil {
		v.add(CheckSignature, false, -1, -1, "%v", err)
	} else {
		sigOK = v.add(CheckSignature, true, -1, -1, "")
	}
	var quote *tpm2.TPMSQuoteInfo
	if a, err := tpm2.Unmarshal[tpm2.TPMSAttest](ev.Quote); err != nil {
		v.add(CheckQuoteForm, false, -1, -1, "%v", err)
	} else if a.Magic != tpm2.TPMGeneratedValue || a.Type != tpm2.TPMSTAttestQuote {
		v.add(CheckQuoteForm, false, -1, -1, "magic %#x type %#x", a.Magic, a.Type)
	} else if q, err := a.Attested.Quote(); err != nil {
		v.add(CheckQuoteForm, false, -1, -1, "%v", err)
	} else {
		attestMsg, quote = a, q
		v.add(CheckQuoteForm, sigOK, -1, -1, "")
	}

	// Freshness and channel binding.
	if attestMsg == nil || len(exp.Nonce) == 0 || len(exp.ChannelKey) == 0 {
		v.add(CheckQualifying, false, -1, -1, "no quote, nonce or channel key")
	} else {
		want := attest.QualifyingData(exp.Nonce, exp.ChannelKey)
		if bytes.Equal(attestMsg.ExtraData.Buffer, want) && bytes.Equal(ev.ChannelKey, exp.ChannelKey) {
			v.add(CheckQualifying, true, -1, -1, "")
		} else {
			v.add(CheckQualifying, false, -1, -1, "quote extraData %x, want SHA-256(nonce || SHA-256(channel key)) %x", attestMsg.ExtraData.Buffer, want)
		}
	}

	// PCR selection: SHA-256 PCRs 0..MaxPCR and no other bank.
	plan := measure.PlanPCRs()
	if quote == nil {
		v.add(CheckSelection, false, -1, -1, "no quote")
	} else {
		v.add(CheckSelection, selectionIsPlan(quote.PCRSelect, plan), -1, -1, "quote selects %s, want sha256:0-%d only", fmtSelection(quote.PCRSelect), measure.MaxPCR)
	}

	// PCR values the stick reports must hash to the quoted digest.
	pcrs := eventlog.PCRs{}
	pcrsOK := len(ev.PCRs) == len(plan)
	h := sha256.New()
	for _, p := range plan {
		val := ev.PCRs[p]
		if len(val) != sha256.Size {
			pcrsOK = false
			continue
		}
		pcrs[p] = [sha256.Size]byte(val)
		h.Write(val)
	}
	pcrsOK = pcrsOK && quote != nil && bytes.Equal(h.Sum(nil), quote.PCRDigest.Buffer)
	v.add(CheckPCRDigest, pcrsOK, -1, -1, "")

	// The log.
	log, err := eventlog.Parse(ev.EventLog)
	if err == nil && (len(log.Algs) != 1 || log.Algs[0].ID != eventlog.TPM_ALG_SHA256) {
		err = fmt.Errorf("log declares banks %v: only SHA-256 is quoted, others would be unexplained", log.Algs)
	}
	if err != nil {
		v.add(CheckLogParse, false, -1, -1, "%v", err)
		log = &eventlog.Log{}
	} else {
		v.add(CheckLogParse, true, -1, -1, "%d events", len(log.Events))
	}
	events := log.Events

	// Replay, per PCR, naming the last event on a PCR that does not match.
	replay := eventlog.Replay(events)
	replayOK := pcrsOK && err == nil
	for _, p := range plan {
		if !pcrsOK || replay[p] == pcrs[p] {
			continue
		}
		replayOK = false
		last := -1
		for i, e := range events {
			if e.PCR == p {
				last = i
			}
		}
		v.add(CheckReplay, false, int(p), last, "log replays to %x, quoted PCR is %x", replay[p], pcrs[p])
	}
	if replayOK {
		v.add(CheckReplay, true, -1, -1, "")
	} else if !pcrsOK || err != nil {
		v.add(CheckReplay, false, -1, -1, "no authenticated PCR values or no log to replay")
	}

	// Plan: events only on PCRs 0..MaxPCR, never 16 or 23.
	planOK := true
	for i, e := range events {
		if e.PCR > measure.MaxPCR {
			planOK = v.add(CheckPlan, false, int(e.PCR), i, "%v outside the PCR plan", e.Type)
		}
	}
	if planOK {
		v.add(CheckPlan, true, -1, -1, "")
	}

	// Stage 0: PCR 0's first event is stage 0's measurement of itself
	// (PFP 3.3.4.1: the S-CRTM measures its own contents first), and it
	// is the release's stage 0.
	stage0At := -1
	for i, e := range events {
		if e.PCR == measure.PCRStage0 {
			if e.Type == eventlog.EV_S_CRTM_CONTENTS {
				stage0At = i
			}
			break
		}
	}
	if exp.Reference != nil {
		checkStage0(v, events, stage0At, exp.Reference.Stage0)
	}

	// Reference measurements for PCRs 0..8, event by event, stage 0's
	// own event aside.
	var ref []eventlog.Event
	if exp.Reference != nil {
		ref = exp.Reference.Events
	}
	refOK := exp.Reference != nil
	for p := uint32(0); p <= measure.PCRConfig; p++ {
		var got []int
		for i, e := range events {
			if e.PCR == p && i != stage0At {
				got = append(got, i)
			}
		}
		var want []eventlog.Event
		for _, e := range ref {
			if e.PCR == p && !(p == measure.PCRStage0 && e.Type == eventlog.EV_S_CRTM_CONTENTS) {
				want = append(want, e)
			}
		}
		for k := 0; k < max(len(got), len(want)); k++ {
			switch {
			case k >= len(want):
				refOK = v.add(CheckReference, false, int(p), got[k], "unexpected %v %x", events[got[k]].Type, events[got[k]].Digest)
			case k >= len(got):
				refOK = v.add(CheckReference, false, int(p), -1, "missing %v %x (reference event %d on this PCR)", want[k].Type, want[k].Digest, k)
			case events[got[k]].Type != want[k].Type || events[got[k]].Digest != want[k].Digest:
				e := events[got[k]]
				if measured, ok := configRecord(e); ok {
					// Name what differs: another board or version is the
					// likeliest cause, and a verifier must tell which.
					expected := fmt.Sprintf("sha256:%x", want[k].Digest)
					if r, ok := configRecord(want[k]); ok {
						expected = fmt.Sprintf("%q", r)
					}
					refOK = v.add(CheckConfig, false, int(p), got[k], "the stick measured %q, the reference %s", measured, expected)
					continue
				}
				refOK = v.add(CheckReference, false, int(p), got[k], "%v %x, reference %v %x", e.Type, e.Digest, want[k].Type, want[k].Digest)
			}
		}
	}
	if refOK {
		v.add(CheckReference, true, -1, -1, "PCRs 0-%d", measure.PCRConfig)
	}

	// Keys: the first event on PCR 9, and only there, is the keys event
	// (measure.MeasureKeys); the channel key it names is the one the
	// quote binds. Another keys event anywhere (an attacker extending
	// their own key after the stick did) fails here or as an actor.
	var keys *measure.Keys
	first9 := slices.IndexFunc(events, func(e eventlog.Event) bool { return e.PCR == measure.PCRBootActors })
	if first9 < 0 {
		v.add(CheckKeys, false, measure.PCRBootActors, -1, "no keys event")
	} else if k, msg := keysEvent(events[first9]); msg != "" {
		v.add(CheckKeys, false, measure.PCRBootActors, first9, "first event on PCR %d: %s", measure.PCRBootActors, msg)
	} else if !bytes.Equal(k.Channel, ev.ChannelKey) {
		v.add(CheckKeys, false, measure.PCRBootActors, first9, "measured channel key sha256:%x, evidence names sha256:%x", sha256.Sum256(k.Channel), sha256.Sum256(ev.ChannelKey))
	} else {
		keys = k
		v.add(CheckKeys, true, measure.PCRBootActors, first9, "result key %x", []byte(k.Result))
	}
	if keys != nil && replayOK {
		v.Keys = keys
	}

	// Actors on PCRs 9 and 10, in any order among themselves (a stick
	// measures each actor as it comes up), each one an entry (name, CID
	// and grants) of the manifest in force when it was measured: the
	// boot manifest for PCR 9 and until the first upgrade event on PCR
	// 10, then each upgrade in turn (chain). PCR 9 holds the first try of
	// each boot actor and is closed by one separator once every boot
	// actor had it; before that the stick may already serve the actors
	// measured so far. PCR 10 has no separator.
	actorOK, engineOK, sep9 := exp.Reference != nil, exp.Reference != nil, 0
	ch := newChain(exp.Reference)
	for i, e := range events {
		if e.PCR != measure.PCRBootActors && e.PCR != measure.PCRRuntime {
			continue
		}
		if i == first9 {
			continue // the keys event, checked above
		}
		if e.Type == eventlog.EV_SEPARATOR && e.PCR == measure.PCRBootActors && e.Digest == sha256.Sum256(eventlog.Separator) {
			if sep9++; sep9 > 1 {
				v.add(CheckBootFinished, false, int(e.PCR), i, "a second separator on PCR %d", e.PCR)
			}
			continue
		}
		if e.PCR == measure.PCRBootActors && sep9 > 0 {
			actorOK = v.add(CheckActor, false, int(e.PCR), i, "boot actor measured after the separator")
			continue
		}
		a, want, msg := ch.step(e)
		if msg != "" {
			actorOK = v.add(CheckActor, false, int(e.PCR), i, "%s", msg)
			continue
		}
		if a == nil {
			continue // a manifest upgrade
		}
		ae, msg := ch.engine(a, want)
		if msg != "" {
			engineOK = v.add(CheckEngine, false, int(e.PCR), i, "%s", msg)
			continue
		}
		ae.PCR, ae.Event = e.PCR, i
		v.Engines = append(v.Engines, ae)
	}
	if actorOK {
		v.add(CheckActor, true, -1, -1, "")
	}
	if engineOK {
		v.add(CheckEngine, true, -1, -1, "%s", engineSummary(v.Engines))
	}
	switch sep9 {
	case 0:
		// A quote taken while boot actors still load: what it shows
		// was checked above; the verdict says the boot is not over.
		v.BootOpen = true
		v.add(CheckBootFinished, true, measure.PCRBootActors, -1, "PCR %d still open: the stick was still loading boot actors", measure.PCRBootActors)
	case 1:
		v.add(CheckBootFinished, true, -1, -1, "")
	}
	return v
}

// keysEvent decodes the keys event e, or says why it is not one.
func keysEvent(e eventlog.Event) (*measure.Keys, string) {
	if e.Type != eventlog.EV_EVENT_TAG {
		return nil, fmt.Sprintf("%v is not a keys event", e.Type)
	}
	if sha256.Sum256(e.Data) != e.Digest {
		return nil, "event data does not hash to the extended digest"
	}
	tag, payload, err := eventlog.ParseTagged(e.Data)
	if err != nil || tag != eventlog.TagKeys {
		return nil, fmt.Sprintf("not a tagged keys event (tag %#x, %v)", tag, err)
	}
	var k measure.Keys
	if err := k.UnmarshalBinary(payload); err != nil {
		return nil, err.Error()
	}
	return &k, ""
}

// checkStage0 adds CheckStage0: the event at stage0At (-1: PCR 0's first
// event is not EV_S_CRTM_CONTENTS) must carry the reference's stage 0.
func checkStage0(v *Verdict, events []eventlog.Event, stage0At int, want [32]byte) {
	what := fmt.Sprintf("stage 0 sha256:%x", want)
	if want == measure.NoStage0 {
		what = "no stage 0 (the hosted stick: all-zero digest)"
	}
	if stage0At < 0 {
		first := "no event"
		for _, e := range events {
			if e.PCR == measure.PCRStage0 {
				first = e.Type.String()
				break
			}
		}
		v.add(CheckStage0, false, measure.PCRStage0, -1, "stage 0 did not measure itself: PCR 0 begins with %s, want %v of %s", first, eventlog.EV_S_CRTM_CONTENTS, what)
		return
	}
	got := events[stage0At].Digest
	if got != want {
		v.add(CheckStage0, false, measure.PCRStage0, stage0At, "the stick booted from stage 0 sha256:%x (%q), the release names %s", got, events[stage0At].Data[:min(len(events[stage0At].Data), 64)], what)
		return
	}
	v.add(CheckStage0, true, -1, -1, "%s", what)
}

// chain follows the manifests in force along the log: the boot
// manifest, then each upgrade as its event on PCR 10 comes.
type chain struct {
	ref  *Reference
	boot *manifest.Manifest
	cur  *manifest.Manifest
	next int // index in ref.Upgrades of the next upgrade allowed
	err  string
}

func newChain(ref *Reference) *chain {
	c := &chain{ref: ref}
	switch {
	case ref == nil:
		c.err = "no reference"
	case len(ref.Boot) == 0:
		c.err = "the reference names no boot manifest"
	default:
		m, _, _, err := manifest.Parse(ref.Boot)
		if err != nil {
			c.err = fmt.Sprintf("the reference's boot manifest: %v", err)
		}
		c.boot, c.cur = m, m
	}
	return c
}

// step checks one event on PCR 9 or 10 (not the keys event nor PCR 9's
// separator) and says what is wrong with it, or "". For an actor event
// that passes it returns the actor and the manifest entry it follows
// (nil for a manifest upgrade).
func (c *chain) step(e eventlog.Event) (*measure.Actor, manifest.Actor, string) {
	fail := func(format string, args ...any) (*measure.Actor, manifest.Actor, string) {
		return nil, manifest.Actor{}, fmt.Sprintf(format, args...)
	}
	if e.Type != eventlog.EV_EVENT_TAG {
		return fail("%v is not an actor event", e.Type)
	}
	if sha256.Sum256(e.Data) != e.Digest {
		return fail("event data does not hash to the extended digest")
	}
	tag, payload, err := eventlog.ParseTagged(e.Data)
	if err == nil && tag == eventlog.TagManifest && e.PCR == measure.PCRRuntime {
		return nil, manifest.Actor{}, c.upgrade(payload)
	}
	if err != nil || tag != eventlog.TagActor {
		return fail("not a tagged actor event (tag %#x, %v)", tag, err)
	}
	var a measure.Actor
	if err := a.UnmarshalBinary(payload); err != nil {
		return fail("%s", err.Error())
	}
	m := c.cur
	if e.PCR == measure.PCRBootActors {
		m = c.boot // a boot actor's first try
	}
	if m == nil {
		return fail("actor %q CID %s: %s", a.Name, a.CID, c.err)
	}
	want, ok := m.Actor(a.Name)
	if !ok {
		return fail("actor %q CID %s is not in manifest version %d, in force when it was measured", a.Name, a.CID, m.Version)
	}
	if wc, err := cid.Decode(want.CID); err != nil || !wc.Equals(a.CID) {
		return fail("actor %q CID %s, manifest version %d (in force when it was measured) names %s", a.Name, a.CID, m.Version, want.CID)
	}
	if !slices.Equal(a.Capabilities, want.Grants) {
		return fail("actor %q measured with grants [%s], manifest version %d (in force when it was measured) grants [%s]",
			a.Name, strings.Join(a.Capabilities, ","), m.Version, strings.Join(want.Grants, ","))
	}
	return &a, want, ""
}

// engine checks the engine an actor event names against the manifest
// entry it follows and the release's native table: native only for an
// entry marked native whose CID the image holds a translation of. Wazero
// is always allowed (it runs the module's own bytes, the CID's); for an
// entry marked native the returned note says why it did not run natively.
func (c *chain) engine(a *measure.Actor, want manifest.Actor) (ActorEngine, string) {
	ae := ActorEngine{Name: a.Name, CID: a.CID.String(), Engine: a.Engine}
	compiled := c.ref != nil && slices.ContainsFunc(c.ref.Native, func(n NativeActor) bool { return n.CID.Equals(a.CID) })
	switch a.Engine {
	case measure.EngineNative:
		if !want.Native {
			return ae, fmt.Sprintf("actor %q CID %s measured running natively, but the manifest entry it follows does not mark it native", a.Name, a.CID)
		}
		if !compiled {
			return ae, fmt.Sprintf("actor %q CID %s measured running natively, but the release's native table (the image's translations) does not hold that CID", a.Name, a.CID)
		}
	case measure.EngineWasm:
		switch {
		case want.Native && !compiled:
			ae.Note = "marked native, not compiled into this image: runs in wazero until a release that translates it"
		case want.Native:
			ae.Note = "marked native and compiled into this image, yet measured under wazero"
		}
	default:
		return ae, fmt.Sprintf("actor %q: unknown engine %v", a.Name, a.Engine)
	}
	return ae, ""
}

// engineSummary names the actors that ran natively and those marked
// native that did not.
func engineSummary(es []ActorEngine) string {
	var native, notes []string
	for _, e := range es {
		switch {
		case e.Engine == measure.EngineNative:
			native = append(native, fmt.Sprintf("%s (PCR %d)", e.Name, e.PCR))
		case e.Note != "":
			notes = append(notes, fmt.Sprintf("%s %s (PCR %d): %s", e.Name, e.CID, e.PCR, e.Note))
		}
	}
	s := "native: none"
	if len(native) > 0 {
		s = "native: " + strings.Join(native, ", ")
	}
	if len(notes) > 0 {
		s += "; " + strings.Join(notes, "; ")
	}
	return s
}

// upgrade checks a manifest event on PCR 10 (its canonical file) and
// makes that manifest the one in force.
func (c *chain) upgrade(measured []byte) string {
	if c.ref == nil {
		return fmt.Sprintf("manifest upgrade (sha256:%x) is not in the reference", sha256.Sum256(measured))
	}
	at := slices.IndexFunc(c.ref.Upgrades, func(m []byte) bool { return bytes.Equal(MeasuredManifest(m), measured) })
	switch {
	case at < 0:
		return fmt.Sprintf("manifest upgrade (sha256:%x) is not in the reference", sha256.Sum256(measured))
	case at != c.next:
		return fmt.Sprintf("manifest upgrade %d of the reference measured where upgrade %d comes", at+1, c.next+1)
	}
	c.next++
	m, _, _, err := manifest.Parse(c.ref.Upgrades[at])
	if err != nil {
		c.cur, c.err = nil, fmt.Sprintf("the reference's upgrade %d: %v", at+1, err)
		return c.err
	}
	prev := c.cur
	c.cur = m
	if prev != nil && m.Version <= prev.Version {
		return fmt.Sprintf("manifest upgrade to version %d after version %d", m.Version, prev.Version)
	}
	return ""
}

func selectionIsPlan(sel tpm2.TPMLPCRSelection, plan []uint32) bool {
	if len(sel.PCRSelections) != 1 || sel.PCRSelections[0].Hash != tpm2.TPMAlgSHA256 {
		return false
	}
	idx := make([]uint, len(plan))
	for i, p := range plan {
		idx[i] = uint(p)
	}
	want := tpm2.PCClientCompatible.PCRs(idx...)
	got := sel.PCRSelections[0].PCRSelect
	for len(got) > len(want) && got[len(got)-1] == 0 {
		got = got[:len(got)-1]
	}
	for len(want) > len(got) && want[len(want)-1] == 0 {
		want = want[:len(want)-1]
	}
	return bytes.Equal(got, want)
}

func fmtSelection(sel tpm2.TPMLPCRSelection) string {
	var parts []string
	for _, s := range sel.PCRSelections {
		var idx []string
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					idx = append(idx, fmt.Sprint(i*8+bit))
				}
			}
		}
		parts = append(parts, fmt.Sprintf("alg %#x:%s", uint16(s.Hash), strings.Join(idx, ",")))
	}
	return strings.Join(parts, " ")
}

func checkSignature(ak *tpm2.TPMTPublic, msg, sigBytes []byte) error {
	key, err := tpm2.Pub(*ak)
	if err != nil {
		return err
	}
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("AK is not ECDSA")
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](sigBytes)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	e, err := sig.Signature.ECDSA()
	if err != nil || sig.SigAlg != tpm2.TPMAlgECDSA || e.Hash != tpm2.TPMAlgSHA256 {
		return errors.New("signature is not ECDSA/SHA-256")
	}
	d := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer)
	if !ecdsa.Verify(pub, d[:], r, s) {
		return errors.New("signature does not verify with the enrolled AK")
	}
	return nil
}
