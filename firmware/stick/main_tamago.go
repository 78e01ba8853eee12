//go:build tamago && arm

// Command stick is the teastick firmware: the unikernel the stick boots.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/usbarmory/tamago/arm"

	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/qemu/virt"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/tis"
)

func main() {
	uptime := func() time.Duration { return time.Duration(virt.ARM.GetTime()) }

	var devs []string
	for _, d := range virt.Devices() {
		devs = append(devs, fmt.Sprintf("%s@%#x(slot %d, v%d)", d.Name(), d.Base, d.Slot, d.Version))
	}
	ramStart, ramEnd := runtime.MemRegion()
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:    virt.Name,
		CPU:      "cortex-a7",
		RAMStart: uint64(ramStart),
		RAMSize:  uint64(ramEnd - ramStart),
		Entropy:  fmt.Sprintf("virtio-rng (slot %d) -> chacha20 drbg", virt.EntropySlot()),
		Devices:  devs,
		Uptime:   uptime(),
	})

	if late, ok := virt.CheckInterrupts(10*time.Millisecond, time.Second); ok {
		fmt.Printf("irq: timer interrupt %d us after its deadline\n", late.Microseconds())
	} else {
		fmt.Println("irq: FAILED: no timer interrupt within 1 s")
	}
	tpmDev, measurer, why := bringUpTPM()
	gov, err := parseGovernanceKey(governanceKey)
	if err != nil {
		fmt.Printf("manifest: %v: accepting no manifest\n", err)
	}
	tr, err := newTrust(tpmDev, measurer, why, gov)
	if err != nil {
		fmt.Printf("channel: FAILED: %v\n", err)
		virt.Exit(1)
	}
	fmt.Printf("channel: key sha256:%x\n", tr.channelKeyDigest())
	checkLink()

	cmds := tr.commands()
	for name, c := range map[string]command{
		"uptime": {help: "time since reset", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: uptime %d ms\n", uptime().Milliseconds())
		}},
		"status": {help: "version, board and devices", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: teastick %s on %s, %d devices, %d entropy reseed failures\n",
				Version, virt.Name, len(devs), virt.ReseedFailures)
		}},
		"halt": {help: "stop the stick (under QEMU: exit with status 0)", run: func(w io.Writer, _ []string) {
			fmt.Fprintln(w, "halt: stopping")
			virt.Exit(0)
		}},
	} {
		cmds[name] = c
	}
	go console(virt.UART0, os.Stdout, cmds)

	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, uptime)
	if n > 0 {
		fmt.Println("teastick: test build, exiting")
		virt.Exit(0)
	}
}

// QEMU user networking's addresses for the guest and its gateway.
var (
	qemuGuest   = netip.MustParseAddr("10.0.2.15")
	qemuGateway = netip.MustParseAddr("10.0.2.2")
)

// checkLink brings up the network device and checks the link with an ARP
// probe of the gateway.
func checkLink() {
	nic, dev, err := virt.OpenNet()
	if errors.Is(err, virt.ErrNoNet) {
		fmt.Println("net: no network device")
		return
	}
	if err != nil {
		fmt.Printf("net: virtio-net in slot %d: %v\n", dev.Slot, err)
		return
	}
	mac := nic.MAC()
	fmt.Printf("net: virtio-net slot %d mac %s link %s\n", dev.Slot, net.HardwareAddr(mac[:]), map[bool]string{true: "up", false: "down"}[nic.LinkUp()])
	hw, err := arpProbe(nic, mac, qemuGuest, qemuGateway, 2*time.Second)
	if err != nil {
		fmt.Printf("net: gateway %s: %v\n", qemuGateway, err)
		return
	}
	fmt.Printf("net: gateway %s is at %s\n", qemuGateway, net.HardwareAddr(hw[:]))
}

// checkTPM resumes measured boot from stage 0's hand-off: the event log
// must replay to the TPM's PCRs. Then it measures the stick's
// configuration into PCR 8. Any failure leaves the stick unmeasured, which
// it says: it will serve no actors.
func checkTPM(t *tis.TIS) (*measure.Measurer, error) {
	virt.ARM.ConfigureMMU(virt.HANDOFF_BASE, virt.HANDOFF_BASE+virt.HANDOFF_SIZE, 0, arm.MemoryRegion|arm.TTE_EXECUTE_NEVER)
	area := unsafe.Slice((*byte)(mmio.Pointer(virt.HANDOFF_BASE)), virt.HANDOFF_SIZE)
	n, err := measure.HandoffSize(area)
	if err != nil {
		return nil, fmt.Errorf("no measured-boot hand-off from stage 0: %w", err)
	}
	m, err := measure.Resume(t, area[:n], nil)
	if err != nil {
		return nil, err
	}
	if err := m.MeasureConfig(stickConfig(virt.Name)); err != nil {
		return nil, err
	}
	return m, nil
}

// bringUpTPM finds the TPM and resumes measured boot; it returns the TPM
// (nil without one), the Measurer (nil when not measured) and why not.
func bringUpTPM() (transport.TPM, *measure.Measurer, error) {
	id, err := virt.ProbeTPM()
	if err != nil {
		fmt.Printf("tpm: %v\n", err)
		return nil, nil, err
	}
	fmt.Printf("tpm: TIS at %#x did_vid %#08x\n", virt.TPM_BASE, id)
	t := &tis.TIS{Regs: virt.TPM}
	if err := t.Init(); err != nil {
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", err)
		return nil, nil, err
	}
	if !measurement {
		fmt.Println("tpm: WARNING: measurement disabled (nomeasure build, for benchmarks only): serving no actors")
		return t, nil, errors.New("measurement disabled in this build")
	}
	m, err := checkTPM(t)
	if err != nil {
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", err)
		return t, nil, err
	}
	pcrs := m.PCRs()
	fmt.Printf("tpm: measured boot: %d events replay to the TPM's PCRs\n", len(m.Events()))
	fmt.Printf("tpm: PCR %d sha256 %x\n", measure.PCRImage, pcrs[measure.PCRImage])
	fmt.Printf("tpm: PCR %d sha256 %x\n", measure.PCRConfig, pcrs[measure.PCRConfig])
	return t, m, nil
}
