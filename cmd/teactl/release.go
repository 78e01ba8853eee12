package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/release"
)

// release build: images + draft -> signed manifest naming the images, and
// the bundle with the reference measurements.
func releaseBuild(e *env, args []string) error {
	fs := e.flags("release build", "DRAFT --stage0 ELF --stick ELF --image-version V --key KEYFILE -o DIR")
	stage0F := fs.String("stage0", "", "stage 0 ELF (make: build/boot-qemu.elf)")
	stickF := fs.String("stick", "", "stick ELF (make: build/stick-qemu.elf)")
	imageVersion := fs.String("image-version", "", "the version the stick image prints and reports (make VERSION=...)")
	board := fs.String("board", "", "the board the stick image reports (default: the board its build tag names)")
	keyFile := fs.String("key", "", "governance key file")
	out := fs.String("o", "", "bundle directory to create")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *stage0F == "" || *stickF == "" || *imageVersion == "" || *keyFile == "" || *out == "" {
		return usageErr("release build needs DRAFT, --stage0, --stick, --image-version, --key and -o")
	}
	m, err := readDraft(pos[0])
	if err != nil {
		return err
	}
	stage0, err := os.ReadFile(*stage0F)
	if err != nil {
		return ioErr(err)
	}
	stick, err := os.ReadFile(*stickF)
	if err != nil {
		return ioErr(err)
	}
	if *board == "" {
		if *board, err = release.BoardOf(stick); err != nil {
			return checkErr(err)
		}
		if *board == "" {
			return usageErr("release build needs --board: the stick image names no board in its build tags")
		}
	}
	s0, st := sha256.Sum256(stage0), sha256.Sum256(stick)
	m.Firmware = manifest.Firmware{Stage0: hex.EncodeToString(s0[:]), Stick: hex.EncodeToString(st[:])}
	k, err := loadKey(*keyFile)
	if err != nil {
		return err
	}
	signed, err := manifest.Sign(m, k)
	if err != nil {
		return checkErr(err)
	}
	ref, err := release.Make(stage0, stick, signed, *imageVersion, *board)
	if err != nil {
		return checkErr(err)
	}
	if w := ref.Weakened(); len(w) > 0 {
		fmt.Fprintf(e.stderr, "teactl: WARNING: the images were built with security-weakening tags %v: this release must never be flashed onto a stick\n", w)
	}
	if err := release.Write(*out, stage0, stick, signed, ref); err != nil {
		return ioErr(err)
	}
	e.result(ref, fmt.Sprintf("release %s: manifest version %d, %d actors, stick sha256:%s (%s %s/%s, tags %v)\n%s",
		*out, m.Version, len(m.Actors), ref.StickSHA256, ref.StickBuild.Toolchain, ref.StickBuild.GOOS, ref.StickBuild.GOARCH, ref.StickBuild.Tags, nativeLines(ref)))
	return nil
}

// release verify DIR: the bundle against the governance key alone.
func releaseVerify(e *env, args []string) error {
	fs := e.flags("release verify", "DIR --pub PUBKEY")
	pubArg := fs.String("pub", "", "governance public key: hex, or a key or public-key file")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *pubArg == "" {
		return usageErr("release verify needs DIR and --pub")
	}
	pub, err := loadPub(*pubArg)
	if err != nil {
		return err
	}
	ref, _, err := release.Verify(pos[0], pub)
	if err != nil {
		return releaseErr(err)
	}
	var pcrs []string
	for i := 0; i <= 8; i++ {
		if v, ok := ref.PCRs[fmt.Sprint(i)]; ok {
			pcrs = append(pcrs, fmt.Sprintf("  PCR %d %s\n", i, v))
		}
	}
	warn := ""
	if w := ref.Weakened(); len(w) > 0 {
		warn = fmt.Sprintf("WARNING: built with security-weakening tags %v: never flash this release\n", w)
		fmt.Fprint(e.stderr, "teactl: "+warn)
	}
	e.result(ref, fmt.Sprintf("release OK: manifest version %d signed by the governance key, images match it\nstick %s (%s), stage 0 %s\n%sexpected after boot:\n%s%s",
		ref.ManifestVersion, ref.StickSHA256, ref.ImageVersion, ref.Stage0SHA256, nativeLines(ref), strings.Join(pcrs, ""), warn))
	return nil
}

// releaseErr classifies a failed bundle check: a file that cannot be read
// is an I/O error, anything else a failed check.
func releaseErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return ioErr(err)
	}
	return checkErr(err)
}

// nativeLines lists the native table the stick image carries.
func nativeLines(ref *release.Reference) string {
	if len(ref.Native) == 0 {
		return "native actors compiled into the image: none\n"
	}
	var b strings.Builder
	b.WriteString("native actors compiled into the image (the stick runs them natively where the manifest marks them):\n")
	for _, n := range ref.Native {
		fmt.Fprintf(&b, "  %s %s\n", n.Name, n.CID)
	}
	return b.String()
}
