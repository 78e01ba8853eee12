// Package release makes and checks release bundles: the images a stick
// runs, the signed manifest naming them, and the reference measurements a
// verifier expects from a stick booting them.
//
// A bundle is a directory:
//
//	boot.elf        stage 0
//	stick.elf       the stick image stage 0 measures
//	manifest.json   the signed release manifest (image/manifest), naming both
//	                images by SHA-256 and the actors
//	reference.json  Reference: the measurements, the toolchain, build tags
//	networkd/       the box's systemd-networkd files for the stick's USB
//	                link (netstack/boxlink.NetworkdFiles), listed with their
//	                SHA-256 in reference.json's box_files
//
// The reference measurements are a function of the images, the manifest
// and the stick's configuration record (its version and board): PCR 0
// begins with stage 0's measurement of itself, the SHA-256 of boot.elf
// (EV_S_CRTM_CONTENTS, tpm/verify.Stage0Event), PCR 4 holds the stick
// image's digest, PCRs 0-7 the hand-off separators, PCR 8 the
// configuration, the manifest in its canonical form (manifest.CanonicalFile:
// any spacing of the file's outer wrapper measures the same) and a
// separator (tpm/verify.BootEvents, the code the verifier uses). Signing the manifest therefore signs them, and
// Verify needs only the governance public key: it checks the signature,
// the images against the manifest's digests, and recomputes
// reference.json.
package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/nativetable"
	"github.com/teastick/teastick/netstack/boxlink"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/verify"
)

// Schema names the reference format.
const Schema = "teastick/release/v1"

// File names in a bundle.
const (
	Stage0File    = "boot.elf"
	StickFile     = "stick.elf"
	ManifestFile  = "manifest.json"
	ReferenceFile = "reference.json"
)

// WeakeningTags are build tags that make an image unfit for a stick:
// nomeasure measures nothing (benchmarks only).
var WeakeningTags = []string{"nomeasure"}

// ErrBundle: the bundle does not verify.
var ErrBundle = errors.New("release: bundle does not verify")

// Event is one expected event-log entry.
type Event struct {
	PCR    uint32 `json:"pcr"`
	Type   string `json:"type"`
	Digest string `json:"sha256"`
}

// Build records how an image was built, from its Go build information.
type Build struct {
	Toolchain string   `json:"toolchain"`
	GOOS      string   `json:"goos"`
	GOARCH    string   `json:"goarch"`
	GOARM     string   `json:"goarm,omitempty"`
	Tags      []string `json:"tags"`
	// Weakened lists the security-weakening tags the image was built
	// with: such a release must never be flashed.
	Weakened []string `json:"weakened,omitempty"`
}

// Reference is reference.json.
type Reference struct {
	Schema string `json:"schema"`
	// ManifestVersion and ManifestSHA256 name the manifest the events end
	// with; the digest is of its canonical form (manifest.CanonicalFile,
	// what the stick measures), not of the file's bytes.
	ManifestVersion uint64 `json:"manifest_version"`
	ManifestSHA256  string `json:"manifest_sha256"`
	Stage0SHA256    string `json:"stage0_sha256"`
	StickSHA256     string `json:"stick_sha256"`
	// ImageVersion and Board are the stick's configuration record.
	ImageVersion string `json:"image_version"`
	Board        string `json:"board"`
	Stage0Build  Build  `json:"stage0_build"`
	StickBuild   Build  `json:"stick_build"`
	// Events are the boot's expected events on PCRs 0-8, stage 0's
	// measurement of itself (PCR 0, EV_S_CRTM_CONTENTS, stage0_sha256)
	// first; PCRs their values (hex SHA-256 bank) before any actor is
	// measured.
	Events []Event           `json:"events"`
	PCRs   map[string]string `json:"pcrs"`
	// BoxFiles are the files for the box the bundle carries (path in the
	// bundle -> hex SHA-256): the systemd-networkd files of the USB link.
	// They are this code's (netstack/boxlink), so Verify recomputes them
	// like the measurements and checks the files against them.
	BoxFiles map[string]string `json:"box_files"`

	// Native is the stick image's native table: the actors translated
	// at release time and compiled into it (name and CID, sorted by
	// CID), read from the image itself (image/nativetable.Find). Absent
	// when the image holds none. A verifier accepts an actor event
	// saying the actor ran natively only for a CID listed here
	// (tpm/verify.Reference.Native).
	Native []nativetable.Entry `json:"native,omitempty"`
}

// NativeActors returns the native table as the verifier takes it.
func (r *Reference) NativeActors() []verify.NativeActor {
	var out []verify.NativeActor
	for _, e := range r.Native {
		c, err := cid.Decode(e.CID)
		if err != nil {
			continue // Make and Verify only give canonical CIDs
		}
		out = append(out, verify.NativeActor{Name: e.Name, CID: c})
	}
	return out
}

// Boards maps each board's build tag (the Makefile's TARGET table,
// board/target) to the name that board reports and measures in its
// configuration record.
var Boards = map[string]string{
	"qemu_virt_arm":     "qemu-virt-arm",
	"qemu_virt_riscv64": "qemu-virt-riscv64",
	"usbarmory_mk2":     "usbarmory-mk2",
}

// Board returns the board the build's tags name, or "" when none does
// (the hosted stick).
func (b Build) Board() string {
	for _, t := range b.Tags {
		if name, ok := Boards[t]; ok {
			return name
		}
	}
	return ""
}

// BoardOf returns the board the stick image was built for ("" for an image
// built without a board tag, such as the hosted stick).
func BoardOf(stick []byte) (string, error) {
	b, err := buildOf("the stick image", stick)
	if err != nil {
		return "", err
	}
	return b.Board(), nil
}

// Weakened reports the weakening tags of both images.
func (r *Reference) Weakened() []string {
	return append(slices.Clone(r.Stage0Build.Weakened), r.StickBuild.Weakened...)
}

func buildOf(name string, elf []byte) (Build, error) {
	info, err := buildinfo.Read(bytes.NewReader(elf))
	if err != nil {
		return Build{}, fmt.Errorf("release: %s carries no Go build information: %w", name, err)
	}
	b := Build{Toolchain: info.GoVersion, Tags: []string{}}
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS":
			b.GOOS = s.Value
		case "GOARCH":
			b.GOARCH = s.Value
		case "GOARM":
			b.GOARM = s.Value
		case "-tags":
			for _, t := range strings.FieldsFunc(s.Value, func(r rune) bool { return r == ',' || r == ' ' }) {
				b.Tags = append(b.Tags, t)
				if slices.Contains(WeakeningTags, t) {
					b.Weakened = append(b.Weakened, t)
				}
			}
		}
	}
	return b, nil
}

// Make computes the reference for the images and the signed manifest,
// which must name them. imageVersion and board are the stick's
// configuration record (what its status reports).
func Make(stage0, stick, signed []byte, imageVersion, board string) (*Reference, error) {
	m, _, _, err := manifest.Parse(signed)
	if err != nil {
		return nil, err
	}
	s0, st := sha256.Sum256(stage0), sha256.Sum256(stick)
	if m.Firmware.Stage0 != hex.EncodeToString(s0[:]) {
		return nil, fmt.Errorf("%w: stage 0 hashes to %x, the manifest names %s", ErrBundle, s0, m.Firmware.Stage0)
	}
	if m.Firmware.Stick != hex.EncodeToString(st[:]) {
		return nil, fmt.Errorf("%w: the stick image hashes to %x, the manifest names %s", ErrBundle, st, m.Firmware.Stick)
	}
	if imageVersion == "" || board == "" {
		return nil, errors.New("release: the image version and board are needed (the stick's configuration record)")
	}
	r := &Reference{Schema: Schema, ManifestVersion: m.Version, Stage0SHA256: m.Firmware.Stage0, StickSHA256: m.Firmware.Stick,
		ImageVersion: imageVersion, Board: board, PCRs: map[string]string{}}
	// the manifest as the stick measures it, whatever its file's wrapper
	ms := sha256.Sum256(verify.MeasuredManifest(signed))
	r.ManifestSHA256 = hex.EncodeToString(ms[:])
	if r.Stage0Build, err = buildOf("stage 0", stage0); err != nil {
		return nil, err
	}
	if r.StickBuild, err = buildOf("the stick image", stick); err != nil {
		return nil, err
	}
	for _, b := range []Build{r.Stage0Build, r.StickBuild} {
		if tagged := b.Board(); tagged != "" && tagged != board {
			return nil, fmt.Errorf("%w: the images were built for board %s, the reference would name %s", ErrBundle, tagged, board)
		}
	}
	if r.Stage0Build.GOOS == "tamago" {
		// Stage 0 finds its own file in memory by its ELF headers
		// (measure.Stage0File): they must span the whole file, or it
		// would measure another digest than the manifest's.
		if f, err := measure.Stage0File(stage0); err != nil || len(f) != len(stage0) {
			return nil, fmt.Errorf("%w: stage 0's ELF headers do not span its %d bytes (%v): it could not measure itself", ErrBundle, len(stage0), err)
		}
	}
	// The native table the image carries, against the manifest: every
	// entry the manifest marks native must have its translation in the
	// image, or the release would promise speed the stick cannot give.
	if r.Native, err = nativetable.Find(stick); err != nil {
		return nil, fmt.Errorf("%w: the stick image: %w", ErrBundle, err)
	}
	if len(r.Native) == 0 {
		r.Native = nil
	}
	for _, a := range m.Native() {
		if !slices.ContainsFunc(r.Native, func(e nativetable.Entry) bool { return e.CID == a.CID }) {
			return nil, fmt.Errorf("%w: the manifest marks actor %q (%s) native, but the stick image holds no translation of that CID (build it with make release, which translates every actor marked native)", ErrBundle, a.Name, a.CID)
		}
	}
	events := append([]eventlog.Event{verify.Stage0Event(s0)}, verify.BootEvents(st, core.ConfigRecord(imageVersion, board), signed)...)
	for _, e := range events {
		r.Events = append(r.Events, Event{PCR: e.PCR, Type: e.Type.String(), Digest: hex.EncodeToString(e.Digest[:])})
	}
	for pcr, v := range eventlog.Replay(events) {
		r.PCRs[fmt.Sprint(pcr)] = hex.EncodeToString(v[:])
	}
	r.BoxFiles = map[string]string{}
	for _, f := range boxlink.NetworkdFiles() {
		d := sha256.Sum256(f.Content)
		r.BoxFiles[f.Name] = hex.EncodeToString(d[:])
	}
	return r, nil
}

// Write makes the bundle in dir (created; it must not exist, so a bundle
// is never half overwritten).
func Write(dir string, stage0, stick, signed []byte, r *Reference) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("release: %w (a bundle is never overwritten)", err)
	}
	ref, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{Stage0File: stage0, StickFile: stick, ManifestFile: signed, ReferenceFile: append(ref, '\n')}
	for _, f := range boxlink.NetworkdFiles() {
		files[f.Name] = f.Content
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Verify checks the bundle in dir against the governance key alone and
// returns its reference and signed manifest.
func Verify(dir string, gov ed25519.PublicKey) (*Reference, []byte, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		return b, nil
	}
	signed, err := read(ManifestFile)
	if err != nil {
		return nil, nil, err
	}
	if _, err := manifest.Verify(signed, gov); err != nil {
		return nil, nil, err
	}
	stage0, err := read(Stage0File)
	if err != nil {
		return nil, nil, err
	}
	stick, err := read(StickFile)
	if err != nil {
		return nil, nil, err
	}
	raw, err := read(ReferenceFile)
	if err != nil {
		return nil, nil, err
	}
	var got Reference
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || got.Schema != Schema {
		return nil, nil, fmt.Errorf("%w: %s is not a %s reference", ErrBundle, ReferenceFile, Schema)
	}
	want, err := Make(stage0, stick, signed, got.ImageVersion, got.Board)
	if err != nil {
		return nil, nil, err
	}
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(&got)
	if !bytes.Equal(a, b) {
		return nil, nil, fmt.Errorf("%w: %s differs from the measurements the images and manifest give (or from the box files this teactl ships)", ErrBundle, ReferenceFile)
	}
	for name, sum := range want.BoxFiles {
		f, err := read(filepath.FromSlash(name))
		if err != nil {
			return nil, nil, err
		}
		if d := sha256.Sum256(f); hex.EncodeToString(d[:]) != sum {
			return nil, nil, fmt.Errorf("%w: %s hashes to %x, %s lists %s", ErrBundle, name, d, ReferenceFile, sum)
		}
	}
	return want, signed, nil
}
