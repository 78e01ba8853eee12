// Package qemu launches teastick images under QEMU: the one place that knows
// the machine's command line, used by `make qemu` (cmd/teastick-qemu) and by
// the boot tests.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teastick/teastick/image/bootimg"
)

// StickImageAddr is where QEMU places the stick image container for stage 0
// on the arm target (board/qemu/virt STICK_IMAGE_BASE), StickImageMax the
// most it may hold (STICK_IMAGE_MAX).
const (
	StickImageAddr = 0x70000000
	StickImageMax  = 0x10000000
)

// Stage0ImageAddr is where QEMU puts a copy of stage 0's own ELF file on the
// arm target (board/qemu/virt STAGE0_IMAGE_BASE): stage 0 checks it is the
// code that runs and measures it into PCR 0.
const Stage0ImageAddr = 0x6c000000

// Target is one machine the stick runs on under QEMU: a Makefile TARGET
// and its board.
type Target struct {
	// Name is the Makefile's TARGET.
	Name string
	// Board is the board's name as the stick reports and measures it.
	Board string
	// Binary is the QEMU system emulator, in Debian package Package.
	Binary, Package string
	// Machine are the arguments that choose and set up the machine,
	// including how a program's exit status becomes QEMU's.
	Machine []string
	// StickImageAddr and Stage0ImageAddr are where QEMU places the stick
	// image container and stage 0's own file (the board's
	// STICK_IMAGE_BASE and STAGE0_IMAGE_BASE); StickImageMax is the
	// most the container's slot holds (STICK_IMAGE_MAX).
	StickImageAddr, Stage0ImageAddr, StickImageMax uint64
	// TPMAddr is where tpm-tis-device appears (the board's TPM_BASE).
	TPMAddr uint64
	// Serial are the arguments that put the board's console on stdio
	// (default -serial stdio: the first serial port).
	Serial []string
	// NoVirtio says the machine has no virtio-mmio transports: no
	// entropy or network device is attached.
	NoVirtio bool
}

var (
	// ARM is QEMU's arm virt machine in the secure world with a
	// Cortex-A7 (the USB armory Mk II's core); semihosting gives the
	// exit status.
	ARM = Target{Name: "qemu", Board: "qemu-virt-arm", Binary: "qemu-system-arm", Package: "qemu-system-arm",
		Machine:        []string{"-machine", "virt,secure=on", "-cpu", "cortex-a7", "-semihosting-config", "enable=on,target=native"},
		StickImageAddr: StickImageAddr, StickImageMax: StickImageMax, Stage0ImageAddr: Stage0ImageAddr, TPMAddr: 0x0c000000}
	// RISCV64 is QEMU's riscv64 virt machine in machine mode without
	// firmware; the SiFive test device gives the exit status.
	RISCV64 = Target{Name: "qemu-riscv64", Board: "qemu-virt-riscv64", Binary: "qemu-system-riscv64", Package: "qemu-system-misc",
		Machine:        []string{"-machine", "virt", "-bios", "none"},
		StickImageAddr: 0xb0000000, StickImageMax: 0x0fe00000, Stage0ImageAddr: 0xac000000, TPMAddr: 0x04000000}
	// Targets are the machines the stick runs on.
	Targets = []Target{ARM, RISCV64}
	// USBArmory is the USB armory Mk II's image on QEMU's i.MX6UL
	// evaluation kit: the console is UART2 (the second serial port),
	// semihosting gives the exit status. The machine has no USB device
	// controller, RNGB or TPM, so the stick boots, says so and serves
	// nothing; it is not among Targets, whose tests need the network.
	// Stage 0 runs from the boot image's payload (-device loader), not
	// from an ELF.
	USBArmory = Target{Name: "usbarmory", Board: "usbarmory-mk2", Binary: "qemu-system-arm", Package: "qemu-system-arm",
		Machine: []string{"-machine", "mcimx6ul-evk", "-cpu", "cortex-a7", "-semihosting"},
		Serial:  []string{"-serial", "null", "-serial", "stdio"}, NoVirtio: true}
)

// TargetNamed returns the target whose Makefile TARGET is name.
func TargetNamed(name string) (Target, error) {
	for _, t := range Targets {
		if t.Name == name {
			return t, nil
		}
	}
	return Target{}, fmt.Errorf("qemu: no target %q (have qemu, qemu-riscv64)", name)
}

// BoxAddr is where the stick finds its box's IPFS gateway under QEMU.
const BoxAddr = "10.0.2.100:8080"

// WrapStick writes the stick ELF at elfPath into a container in dir and
// returns the container's path.
func WrapStick(elfPath, dir string) (string, error) {
	b, err := os.ReadFile(elfPath)
	if err != nil {
		return "", fmt.Errorf("qemu: stick image: %w", err)
	}
	out := filepath.Join(dir, "stick.img")
	if err := os.WriteFile(out, bootimg.Wrap(b), 0o644); err != nil {
		return "", fmt.Errorf("qemu: stick image container: %w", err)
	}
	return out, nil
}

// Machine describes one QEMU run of a stick image.
type Machine struct {
	// Target is the machine (default ARM).
	Target *Target
	// Binary is the QEMU system emulator (default: the target's).
	Binary string
	// Kernel is the ELF image given to -kernel: stage 0, or the stick
	// itself when booted without measurement ("": none, Extra loads the
	// machine's memory and sets its start address).
	Kernel string
	// StickImage is a stick image container (image/bootimg) that QEMU puts
	// at StickImageAddr for stage 0 to load.
	StickImage string
	// Stage0Image is the file QEMU puts at Stage0ImageAddr when StickImage
	// is set (Kernel is then stage 0): by default Kernel itself, the copy
	// stage 0 measures itself by.
	Stage0Image string
	// MemoryMiB is the guest RAM (default 1024; the stick's runtime uses
	// the first 512 MiB).
	MemoryMiB int
	// NoRNG leaves out the virtio entropy device (the stick must refuse to
	// boot).
	NoRNG bool
	// NoNet leaves out the network device. With it, the stick's link is
	// QEMU user networking with restrict=on: nothing leaves the guest
	// except what forwarding rules allow.
	NoNet bool
	// NetSocket, when set ("127.0.0.1:PORT"), connects the stick's NIC to
	// a TCP listener there instead of user networking (QEMU's socket
	// netdev: each frame as a 4-byte big-endian length and the bytes): a
	// test plays the box's side of the link frame by frame.
	NetSocket string
	// HTTPPort, when not zero, forwards 127.0.0.1:HTTPPort on the host to
	// the stick's HTTP port (80): the only way into the guest.
	HTTPPort int
	// BoxGateway, when set (host:port on the host's loopback), is reachable
	// from the stick at BoxAddr (guestfwd): the IPFS node's gateway. Each
	// connection the stick opens to BoxAddr gets its own socat relay to
	// BoxGateway (guestfwd's cmd: form), so the stick may fetch several
	// actors at once and one stalled response holds only its own
	// connection.
	BoxGateway string
	// LegacyVirtio keeps QEMU's default legacy (version 1) virtio-mmio
	// transport (the plain command line), which the stick drives through
	// the legacy interface; without it the machine's devices are
	// version 2.
	LegacyVirtio bool
	// TPM, when set and started, is attached as the machine's TIS TPM.
	TPM *SWTPM
	// Input is typed into the stick's console (its serial port): as soon
	// as the console shows a line containing InputAfter, or at start when
	// InputAfter is empty.
	Input      string
	InputAfter string
	// Interact, when set, sees every console line as it arrives and
	// returns what to type in answer ("" for nothing): a conversation with
	// the stick's operator console.
	Interact func(line string) string
	// Session, when set, runs in its own goroutine once the console shows
	// a line containing InputAfter (at start when it is empty), with a
	// function that types into the console: a test that talks to the
	// stick's API while it runs, and types "halt" when done.
	Session func(typeIn func(string))
	// Extra arguments appended to the command line.
	Extra []string
}

// target returns the machine's target (ARM unless set).
func (m Machine) target() Target {
	if m.Target != nil {
		return *m.Target
	}
	return ARM
}

// Args returns QEMU's arguments: the target's machine (by default the arm
// virt machine in the secure world with a Cortex-A7, the USB armory Mk
// II's core, semihosting for the exit status), no graphics or monitor,
// serial console on stdio and virtio-mmio version 2 devices.
func (m Machine) Args() []string {
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	args := append([]string{}, m.target().Machine...)
	serial := m.target().Serial
	if serial == nil {
		serial = []string{"-serial", "stdio"}
	}
	args = append(args, "-m", strconv.Itoa(mem)+"M", "-nographic", "-monitor", "none")
	args = append(args, serial...)
	args = append(args, "-no-reboot")
	virtio := !m.target().NoVirtio
	if !m.LegacyVirtio && virtio {
		args = append(args, "-global", "virtio-mmio.force-legacy=false")
	}
	if !m.NoRNG && virtio {
		args = append(args, "-device", "virtio-rng-device")
	}
	if !virtio {
		// no network device on this machine
	} else if !m.NoNet && m.NetSocket != "" {
		args = append(args, "-netdev", "socket,id=net0,connect="+m.NetSocket, "-device", "virtio-net-device,netdev=net0")
	} else if !m.NoNet {
		netdev := "user,id=net0,restrict=on"
		if m.HTTPPort != 0 {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-10.0.2.15:80", m.HTTPPort)
		}
		if m.BoxGateway != "" {
			// guestfwd to a tcp: chardev is one stream, connected once
			// at start; cmd: spawns the relay per guest connection.
			netdev += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s", BoxAddr, boxRelay(m.BoxGateway))
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-device,netdev=net0")
	}
	if m.TPM != nil {
		args = append(args, m.TPM.Args()...)
	}
	if m.Kernel != "" {
		args = append(args, "-kernel", m.Kernel)
	}
	if m.StickImage != "" {
		args = append(args, "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(m.StickImage), m.target().StickImageAddr))
		self := m.Stage0Image
		if self == "" {
			self = m.Kernel
		}
		args = append(args, "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", qemuEscape(self), m.target().Stage0ImageAddr))
	}
	return append(args, m.Extra...)
}

func (m Machine) binary() string {
	if m.Binary != "" {
		return m.Binary
	}
	return m.target().Binary
}

// Command returns the QEMU command for the machine.
// boxRelay is the command QEMU runs for each connection the stick opens
// to BoxAddr: socat joining the connection (its standard input and output)
// to the gateway.
func boxRelay(gateway string) string {
	return "socat - TCP:" + gateway
}

// ErrImageTooLarge means a stick image container exceeds its target's
// slot: QEMU would load it over what follows (on riscv64, its devicetree)
// and stage 0 would refuse it.
var ErrImageTooLarge = errors.New("qemu: stick image container larger than the target's slot")

// CheckImages checks the stick image container fits the target's slot
// (StickImageMax), before QEMU places it there.
func (m Machine) CheckImages() error {
	max := m.target().StickImageMax
	if m.StickImage == "" || max == 0 {
		return nil
	}
	fi, err := os.Stat(m.StickImage)
	if err != nil {
		return fmt.Errorf("qemu: stick image container: %w", err)
	}
	if uint64(fi.Size()) > max {
		return fmt.Errorf("%w: %s is %d bytes, the %s slot at %#x holds %d", ErrImageTooLarge,
			m.StickImage, fi.Size(), m.target().Name, m.target().StickImageAddr, max)
	}
	return nil
}

// CheckTools says which program the machine needs besides QEMU is missing:
// socat, which relays the stick's connections to the box.
func (m Machine) CheckTools() error {
	if m.BoxGateway == "" || m.NoNet || m.NetSocket != "" {
		return nil
	}
	if _, err := exec.LookPath("socat"); err != nil {
		return fmt.Errorf("qemu: socat not found: it relays the stick's connections to the box (Debian package socat; `make deps` installs it): %w", err)
	}
	return nil
}

func (m Machine) Command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, m.binary(), m.Args()...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// ErrTimeout is returned when the machine did not stop in time.
var ErrTimeout = errors.New("qemu: machine did not exit in time")

// Result is the outcome of a finished run.
type Result struct {
	// Console is everything the stick printed, with CR LF turned into LF.
	Console string
	// ExitCode is QEMU's exit status: the stick's semihosting exit code.
	ExitCode int
	// Lines holds the console lines with the time each arrived, measured
	// from QEMU's start.
	Lines []Line
}

// Line is one console line and when it arrived.
type Line struct {
	Text string
	At   time.Duration
}

// Find returns the first console line containing s.
func (r *Result) Find(s string) (Line, bool) {
	for _, l := range r.Lines {
		if strings.Contains(l.Text, s) {
			return l, true
		}
	}
	return Line{}, false
}

// Run boots the machine, copies the console to tee (if not nil) and waits
// for QEMU to exit or for timeout.
func (m Machine) Run(ctx context.Context, timeout time.Duration, tee io.Writer) (*Result, error) {
	if _, err := exec.LookPath(m.binary()); err != nil {
		return nil, fmt.Errorf("qemu: %s not found (Debian package %s; `make deps` installs it): %w", m.binary(), m.target().Package, err)
	}
	if err := m.CheckTools(); err != nil {
		return nil, err
	}
	if err := m.CheckImages(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := m.Command(ctx)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var stdin io.WriteCloser
	if m.Input != "" || m.Interact != nil || m.Session != nil {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: start: %w", err)
	}
	typed := false
	var stdinMu sync.Mutex
	typeIn := func(s string) {
		stdinMu.Lock()
		defer stdinMu.Unlock()
		io.WriteString(stdin, s)
	}
	typeInput := func() {
		if stdin != nil && !typed && (m.Input != "" || m.Session != nil) {
			if m.Input != "" {
				typeIn(m.Input)
			}
			if m.Session != nil {
				go m.Session(typeIn)
			}
			typed = true // the pipe stays open: closing it would end QEMU's stdio chardev
		}
	}
	if m.InputAfter == "" {
		typeInput()
	}
	res := &Result{}
	var mu sync.Mutex
	var console strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			text := strings.TrimRight(sc.Text(), "\r")
			mu.Lock()
			res.Lines = append(res.Lines, Line{Text: text, At: time.Since(start)})
			console.WriteString(text + "\n")
			mu.Unlock()
			if tee != nil {
				fmt.Fprintln(tee, text)
			}
			if m.InputAfter != "" && strings.Contains(text, m.InputAfter) {
				typeInput()
			}
			if m.Interact != nil {
				if answer := m.Interact(text); answer != "" {
					typeIn(answer)
				}
			}
		}
	}()
	<-done
	werr := cmd.Wait()
	res.Console = console.String()
	if ctx.Err() == context.DeadlineExceeded {
		return res, fmt.Errorf("%w after %v; console:\n%s", ErrTimeout, timeout, res.Console)
	}
	var exitErr *exec.ExitError
	switch {
	case werr == nil:
		res.ExitCode = 0
	case errors.As(werr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		return res, fmt.Errorf("qemu: %w (stderr: %s)", werr, stderr.String())
	}
	if stderr.Len() > 0 && res.ExitCode != 0 && len(res.Lines) == 0 {
		return res, fmt.Errorf("qemu: exited %d before the stick printed anything: %s", res.ExitCode, stderr.String())
	}
	return res, nil
}

// qemuEscape doubles commas, QEMU's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// FreePort returns a TCP port free on the host's loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
