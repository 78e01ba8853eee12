//go:build tamago && stage0

// Command boot is stage 0: the small loader QEMU starts with -kernel. It
// measures itself into PCR 0 first (the copy of its own ELF file QEMU
// placed in memory, once checked to be the code that runs), then finds the
// stick image container QEMU placed in memory, checks it, measures it into
// PCR 4, loads its ELF segments into the stick's RAM and jumps to it.
//
// Build with the stage0 tag (the Makefile does), which moves its own runtime
// above the stick's RAM.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"unsafe"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/target"
	"github.com/teastick/teastick/image/bootimg"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/tis"
)

// Version is stamped at build time.
var Version = "dev"

// Exit statuses of a failed stage 0 (the boot stops; under QEMU they become
// QEMU's exit status).
const (
	exitNoImage  = 4
	exitBadImage = 5
)

func fatal(code int32, format string, args ...any) {
	fmt.Printf("stage0: FATAL: "+format+"\n", args...)
	target.Board.Exit(code)
}

func window(addr, size uint64) []byte {
	return unsafe.Slice((*byte)(mmio.Pointer(uintptr(addr))), size)
}

// openTPM finds the board's TPM and brings up its TIS interface.
func openTPM() (*tis.TIS, error) {
	regs, _, _, err := target.Board.TPM()
	if err != nil {
		return nil, err
	}
	t := &tis.TIS{Regs: regs}
	if err := t.Init(); err != nil {
		return nil, err
	}
	return t, nil
}

// startTPM only starts the TPM: what a boot without measurement still does,
// since the stick uses the TPM for its keys.
func startTPM() error {
	t, err := openTPM()
	if err != nil {
		return err
	}
	return measure.Startup(t)
}

// measureSelf starts the TPM and measures stage 0 itself into PCR 0, before
// anything of the stick is read (PFP 3.3.4.1: the S-CRTM measures its own
// contents first): the SHA-256 of stage 0's own ELF file, the file the
// release manifest names, once measure.CheckStage0 found that the file's
// code and read-only data are the ones running.
func measureSelf(mem board.Memory) (*measure.Measurer, error) {
	t, err := openTPM()
	if err != nil {
		return nil, err
	}
	m, err := measure.New(t, nil)
	if err != nil {
		return nil, err
	}
	file, err := measure.Stage0File(window(mem.Stage0ImageBase, mem.Stage0ImageMax))
	if err == nil {
		err = measure.CheckStage0(file, runningRegions())
	}
	if err != nil {
		// Cap PCR 0 with an error separator (PFP 10.4.1, EV_SEPARATOR
		// 0x00000001) so that nothing later can give it a genuine value.
		errSep := []byte{1, 0, 0, 0}
		m.Extend(measure.PCRStage0, eventlog.EV_SEPARATOR, sha256.Sum256(errSep), errSep)
		return nil, fmt.Errorf("stage 0 image at %#x: %w", mem.Stage0ImageBase, err)
	}
	digest := sha256.Sum256(file)
	if err := m.MeasureStage0(digest, "teastick stage0 "+Version); err != nil {
		return nil, err
	}
	fmt.Printf("stage0: measured itself into PCR %d: %d bytes sha256:%x\n", measure.PCRStage0, len(file), digest)
	return m, nil
}

// measureStick extends the stick image's digest into PCR 4 with its event,
// closes the pre-OS PCRs with separators and returns the hand-off block
// for the stick.
func measureStick(m *measure.Measurer, digest [32]byte) ([]byte, error) {
	// bootimg.Open already hashed the image (and checked the container's
	// digest against it): extend that digest rather than hash 4 MiB twice.
	if err := m.Extend(measure.PCRImage, eventlog.EV_IPL, digest, []byte("teastick stick "+Version)); err != nil {
		return nil, err
	}
	if err := m.Separator(measure.HandoffPCRs...); err != nil {
		return nil, err
	}
	return m.Handoff()
}

func main() {
	fmt.Printf("teastick stage0 %s\n", Version)

	// The stick's RAM and the image windows lie outside stage 0's runtime
	// RAM, which the board may map as device memory: map them as normal
	// memory so that copies may be unaligned and cached.
	mem := target.Board.Memory()
	target.Board.MapMemory(mem.RAMStart, mem.RAMStart+mem.RAMSize, true)
	target.Board.MapMemory(mem.HandoffBase, mem.HandoffBase+mem.HandoffSize, false)
	target.Board.MapMemory(mem.StickImageBase, mem.StickImageBase+mem.StickImageMax, false)
	target.Board.MapMemory(mem.Stage0ImageBase, mem.Stage0ImageBase+mem.Stage0ImageMax, false)

	// Stage 0 measures itself before it touches the stick image.
	var (
		m   *measure.Measurer
		why error
	)
	if !measurement {
		fmt.Println("stage0: WARNING: measurement disabled (nomeasure build, for benchmarks only)")
		if err := startTPM(); err != nil {
			fmt.Printf("stage0: TPM: %v\n", err)
		}
	} else if m, why = measureSelf(mem); why != nil {
		m = nil
	}

	payload, digest, err := bootimg.Open(window(mem.StickImageBase, mem.StickImageMax), int(mem.StickImageMax-bootimg.HeaderSize))
	if err != nil {
		fatal(exitNoImage, "no stick image at %#x: %v", mem.StickImageBase, err)
	}
	plan, err := bootimg.NewPlanFor(mem.Machine, payload, mem.LoadStart, mem.LoadEnd())
	if err != nil {
		fatal(exitBadImage, "stick image rejected: %v", err)
	}
	fmt.Printf("stage0: stick image %d bytes sha256:%x\n", len(payload), digest)

	// The hand-off area is cleared first: a stick that finds no block was
	// not measured, whatever an earlier boot left there.
	handoff := window(mem.HandoffBase, mem.HandoffSize)
	clear(handoff[:measure.HandoffHeaderSize])
	if !measurement {
		// nothing measured: said above
	} else if why != nil {
		fmt.Printf("stage0: NOT MEASURED: %v: the stick will serve no actors\n", why)
	} else if block, err := measureStick(m, digest); err != nil {
		fmt.Printf("stage0: NOT MEASURED: %v: the stick will serve no actors\n", err)
	} else if len(block) > len(handoff) {
		fmt.Printf("stage0: NOT MEASURED: hand-off block of %d bytes exceeds %d\n", len(block), len(handoff))
	} else {
		copy(handoff, block)
		fmt.Printf("stage0: measured the stick into PCR %d, separators on PCRs 0-7, %d-byte event log handed over\n",
			measure.PCRImage, len(block)-measure.HandoffHeaderSize)
	}

	for _, s := range plan.Segments {
		dst := window(s.Addr, uint64(len(s.File))+s.Zero)
		n := copy(dst, s.File)
		clear(dst[n:])
	}
	fmt.Printf("stage0: loaded %d segments, starting the stick at %#x\n", len(plan.Segments), plan.Entry)
	os.Stdout.Sync()
	target.Board.Jump(plan.Entry, mem.HandoffBase)
}
