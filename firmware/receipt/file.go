package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/verify"
)

// FileFormat is the version of File. Version 2 files (a receipt and a
// certification, no evidence) are refused, and so are version 3 files
// (evidence without the certified rollback counter).
const FileFormat = 4

// Errors of VerifyFile beyond the receipt's own.
var (
	ErrFormat      = errors.New("receipt: not a receipt file of format 4")
	ErrNoEvidence  = errors.New("receipt: no evidence of the boot that signed it")
	ErrManifests   = errors.New("receipt: the evidence's manifests are not the governance key's")
	ErrRelease     = errors.New("receipt: the stick did not boot the given release")
	ErrEvidence    = errors.New("receipt: the evidence does not verify")
	ErrActorUnseen = errors.New("receipt: the actor version it names was not measured in that boot")
	ErrCertified   = errors.New("receipt: the AK's certification is not of the measured result key in the same boot")
	ErrCounter     = errors.New("receipt: the rollback counter is not certified by the AK in the same boot")
	ErrRollback    = errors.New("receipt: the evidence's manifest is older than the TPM's rollback counter or the release")
)

// Evidence is what ties a receipt to a verified boot, offline: what a
// stick's attestation (POST /v1/attest) returned, and the nonce it
// answered.
type Evidence struct {
	// Nonce is the verifier's nonce the quote answered. Offline it only
	// recomputes the quote's qualifying data: it says nothing of when.
	Nonce []byte `json:"nonce"`
	// Attestation is the quote, its signature, the PCRs, the event log,
	// the AK public area and the channel key.
	Attestation *attest.Evidence `json:"attestation"`
	// Certification is the AK's certification of the result key, made in
	// the same boot.
	Certification *attest.Certification `json:"certification"`
	// RollbackCounter is the AK's certification of the TPM's rollback
	// counter (the attestation's rollback_counter), made in the same
	// boot: the manifest the stick served is not older than it.
	RollbackCounter *attest.NVCertification `json:"rollback_counter"`
	// Manifests are the signed manifests the stick accepted, boot first.
	Manifests [][]byte `json:"manifests"`
	// Config is the configuration record the stick measured into PCR 8
	// (core.ConfigRecord of its version and board), as it reported it.
	Config []byte `json:"config"`
}

// File is a receipt with its evidence: what `teactl actor invoke -o`
// writes and `teactl receipt verify` reads.
type File struct {
	Format   int       `json:"format"`
	Receipt  *Receipt  `json:"receipt"`
	Evidence *Evidence `json:"evidence"`
}

// Trust is what the verifier of a receipt brings.
type Trust struct {
	// AKPublic is the stick's enrolled AK (verify.PendingEnrolment.Finish).
	AKPublic []byte
	// Governance is the key whose manifests the stick follows.
	Governance ed25519.PublicKey
	// Release, when set, is the signed manifest the stick must have
	// booted (a release bundle's), and Config the configuration record of
	// that release (core.ConfigRecord of its image version and board);
	// without Config the evidence's is taken.
	Release, Config []byte
	// Native is the native table of the stick image the release names
	// (image/release.Reference.NativeActors): an actor the evidence
	// measured running natively passes only when its CID is listed.
	Native []verify.NativeActor
}

// Reference builds the reference measurements the evidence's manifests
// give: each must be signed by gov with increasing versions; the first
// (the boot manifest) names the stick image, which with config and the
// manifest itself makes PCRs 0-8 (verify.BootEvents, and its stage 0 digest
// PCR 0's first event) and whose entries the boot actors must be; the
// later ones are the upgrades, in order, each the manifest the actors
// measured after it must follow.
func Reference(manifests [][]byte, config []byte, gov ed25519.PublicKey) (*verify.Reference, []*manifest.Manifest, error) {
	if len(manifests) == 0 {
		return nil, nil, fmt.Errorf("%w: none", ErrManifests)
	}
	ref := &verify.Reference{}
	var ms []*manifest.Manifest
	for i, raw := range manifests {
		m, err := manifest.Verify(raw, gov)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: manifest %d: %w", ErrManifests, i+1, err)
		}
		if i > 0 && m.Version <= ms[i-1].Version {
			return nil, nil, fmt.Errorf("%w: version %d after %d", ErrManifests, m.Version, ms[i-1].Version)
		}
		ms = append(ms, m)
		if i > 0 {
			ref.Upgrades = append(ref.Upgrades, raw)
		}
	}
	d, err := hex.DecodeString(ms[0].Firmware.Stick)
	if err != nil || len(d) != 32 {
		return nil, nil, fmt.Errorf("%w: the boot manifest's stick digest is not SHA-256 hex", ErrManifests)
	}
	ref.Events = verify.BootEvents([32]byte(d), config, manifests[0])
	ref.Boot = manifests[0]
	// PCR 0: the stage 0 the boot manifest names.
	s0, err := hex.DecodeString(ms[0].Firmware.Stage0)
	if err != nil || len(s0) != 32 {
		return nil, nil, fmt.Errorf("%w: the boot manifest's stage 0 digest is not SHA-256 hex", ErrManifests)
	}
	ref.Stage0 = [32]byte(s0)
	return ref, ms, nil
}

// VerifyFile checks a receipt offline against the stick's enrolled AK and
// the governance key, and returns the verdict on its evidence. In order:
//   - the file is of format FileFormat and carries evidence;
//   - the manifests are the governance key's (and the first is
//     tr.Release when given), which gives the reference (Reference);
//   - the attestation verifies against it (verify.Verify: the enrolled
//     AK signed a quote whose log replays to the PCRs, matches the
//     release's reference, has only allowed actors, and measured exactly
//     one keys event first on PCR 9, naming the channel key the quote
//     binds);
//   - the receipt's signature verifies with the result key of that keys
//     event;
//   - the AK's certification names that key and comes from the same boot;
//   - the TPM's rollback counter is certified by the same AK in the same
//     boot (verify.Verdict.CheckRollback, as `teactl stick attest`), and
//     the evidence's latest manifest, the one the stick served, is not
//     older than it, nor than tr.Release. The receipt's own manifest
//     version is not held to the counter: an old version whose grants a
//     newer manifest keeps serves on, its receipts naming its own
//     manifest (RATIONALE.md, "Grants follow the manifest");
//   - the receipt's manifest version is one of the manifests', that
//     manifest names the receipt's actor at the receipt's CID, and that
//     entry (name, CID and grants) was measured in that boot (the
//     verdict checked that each actor event follows the manifest in
//     force when it was measured).
//
// A receipt signed by any other key, even one the same AK certified,
// fails; so does one whose evidence is another boot's (another result key)
// or another stick's (another AK).
func VerifyFile(f *File, tr Trust) (*verify.Verdict, error) {
	if f == nil || f.Format != FileFormat {
		got := 0
		if f != nil {
			got = f.Format
		}
		return nil, fmt.Errorf("%w (format %d)", ErrFormat, got)
	}
	if f.Receipt == nil {
		return nil, fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	ev := f.Evidence
	if ev == nil || ev.Attestation == nil {
		return nil, ErrNoEvidence
	}
	if len(ev.Manifests) > 0 && tr.Release != nil && !bytes.Equal(verify.MeasuredManifest(ev.Manifests[0]), verify.MeasuredManifest(tr.Release)) {
		return nil, ErrRelease
	}
	config := tr.Config
	if config == nil {
		config = ev.Config
	}
	ref, ms, err := Reference(ev.Manifests, config, tr.Governance)
	if err != nil {
		return nil, err
	}
	ref.Native = tr.Native
	v := verify.Verify(ev.Attestation, verify.Expect{AKPublic: tr.AKPublic, Nonce: ev.Nonce, ChannelKey: ev.Attestation.ChannelKey, Reference: ref})
	if !v.OK() || v.Keys == nil {
		var failed []string
		for _, c := range v.Failed() {
			failed = append(failed, c.String())
		}
		return v, fmt.Errorf("%w: %s", ErrEvidence, strings.Join(failed, "; "))
	}
	if err := Verify(f.Receipt, v.Keys.Result); err != nil {
		return v, fmt.Errorf("%w (the result key measured in the evidence's boot is %x)", err, []byte(v.Keys.Result))
	}
	key, certInfo, err := verify.CertifiedKey(tr.AKPublic, ev.Certification, Qualifying())
	if err != nil {
		return v, fmt.Errorf("%w: %w", ErrCertified, err)
	}
	q, err := tpm2.Unmarshal[tpm2.TPMSAttest](ev.Attestation.Quote)
	if err != nil || !key.Equal(v.Keys.Result) || !verify.SameBoot(q, certInfo) {
		return v, ErrCertified
	}
	var min uint64
	if tr.Release != nil {
		m, err := manifest.Verify(tr.Release, tr.Governance)
		if err != nil {
			return v, fmt.Errorf("%w: %w", ErrRelease, err)
		}
		min = m.Version
	}
	served := ms[len(ms)-1].Version
	v.CheckRollback(tr.AKPublic, ev.RollbackCounter, ev.Attestation.ChannelKey, ev.Attestation.Quote, served, min)
	for _, c := range v.Failed() {
		switch c.Name {
		case verify.CheckCounter:
			return v, fmt.Errorf("%w: %s", ErrCounter, c.Detail)
		case verify.CheckRollback:
			return v, fmt.Errorf("%w: %s", ErrRollback, c.Detail)
		}
	}
	var named *manifest.Manifest
	for _, m := range ms {
		if m.Version == f.Receipt.ManifestVersion {
			named = m
		}
	}
	if named == nil {
		return v, fmt.Errorf("%w: manifest version %d is none of the evidence's", ErrActorUnseen, f.Receipt.ManifestVersion)
	}
	entry, ok := named.Actor(f.Receipt.Actor)
	if !ok || !sameCID(entry.CID, f.Receipt.CID) {
		return v, fmt.Errorf("%w: manifest version %d does not name %s at %s", ErrActorUnseen, named.Version, f.Receipt.Actor, f.Receipt.CID)
	}
	if err := measuredActor(ev.Attestation.EventLog, f.Receipt, entry.Grants); err != nil {
		return v, err
	}
	return v, nil
}

// sameCID reports whether two CID strings name the same CID.
func sameCID(a, b string) bool {
	ca, err := cid.Decode(a)
	if err != nil {
		return false
	}
	cb, err := cid.Decode(b)
	return err == nil && ca.Equals(cb)
}

// measuredActor checks that the log (already verified) has an actor event
// on PCR 9 or 10 for r's actor name and CID, with grants.
func measuredActor(raw []byte, r *Receipt, grants []string) error {
	log, err := eventlog.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	for _, e := range log.Events {
		if e.PCR != measure.PCRBootActors && e.PCR != measure.PCRRuntime {
			continue
		}
		tag, payload, err := eventlog.ParseTagged(e.Data)
		if err != nil || tag != eventlog.TagActor {
			continue
		}
		var a measure.Actor
		if a.UnmarshalBinary(payload) == nil && a.Name == r.Actor && sameCID(a.CID.String(), r.CID) && slices.Equal(a.Capabilities, grants) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %s with grants [%s]", ErrActorUnseen, r.Actor, r.CID, strings.Join(grants, ","))
}
