//go:build tamago

// Command stick is the teastick firmware: the unikernel the stick boots.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ipfs/go-cid"
	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
	"github.com/teastick/teastick/board/target"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/netstack"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs"
	actorruntime "github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/tis"
)

// hw is the board this build's TARGET names (board/target).
var hw = target.Board

func main() {
	uptime := hw.Uptime
	hw.Indicate(board.Booting)

	var devs []string
	for _, d := range hw.Devices() {
		devs = append(devs, d.String())
	}
	ramStart, ramEnd := runtime.MemRegion()
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:    hw.Name(),
		CPU:      hw.CPU(),
		RAMStart: uint64(ramStart),
		RAMSize:  uint64(ramEnd - ramStart),
		Entropy:  hw.Entropy(),
		Devices:  devs,
		Uptime:   uptime(),
	})
	writeNative(os.Stdout)

	if irqs, ok := hw.(board.Interrupts); !ok {
		fmt.Println("irq: none: this board polls its devices")
	} else if late, ok := irqs.CheckInterrupts(10*time.Millisecond, time.Second); ok {
		fmt.Printf("irq: timer interrupt %d us after its deadline\n", late.Microseconds())
	} else {
		fmt.Println("irq: FAILED: no timer interrupt within 1 s")
	}
	tpmDev, measurer, why := bringUpTPM()
	gov, err := parseGovernanceKey(governanceKey)
	if err != nil {
		fmt.Printf("manifest: %v: accepting no manifest\n", err)
	}
	// wazero's interpreter: it has no compiler for 32-bit ARM. The box is
	// reachable once the network is up; until then fetches fail.
	// Fetch limits derive from the RAM the runtime has.
	boxLimits = ipfs.LimitsForRAM(uint64(ramEnd - ramStart))
	fmt.Printf("ipfs: fetch limits: file %d MiB, held besides it %d MiB, %d nodes (from %d MiB of RAM)\n",
		boxLimits.MaxBytes>>20, boxLimits.Window>>20, boxLimits.MaxNodes, (ramEnd-ramStart)>>20)
	box := &ipfs.Client{Gateway: boxGateway, CAR: true, Timeout: time.Minute, Limits: boxLimits}
	benchFetch = box.Fetch
	v := newView()
	st, err := core.New(core.Config{Version: Version, Board: hw.Name(), TPM: tpmDev, Measurer: measurer, NotMeasured: why,
		Governance: gov, Actors: actorruntime.Config{Files: box, Blocks: box}, Fetch: box.Fetch,
		LoadParallel: loadParallel, CompileParallel: 1, Log: os.Stdout, LogLevel: &v.level, Uptime: uptime})
	if err != nil {
		fmt.Printf("channel: FAILED: %v\n", err)
		hw.Indicate(board.Failed)
		hw.Exit(1)
	}
	fmt.Printf("channel: key sha256:%x\n", st.ChannelDigest())
	tlsCfg, err := channel.ServerConfig(st.ChannelKey())
	if err != nil {
		fmt.Printf("channel: FAILED: %v\n", err)
		hw.Indicate(board.Failed)
		hw.Exit(1)
	}
	if !startNetwork(tlsCfg, st.Server(apiHandler(st.Handler()))) {
		hw.Indicate(board.Failed)
	} else if why != nil {
		hw.Indicate(board.Quarantine)
	} else {
		hw.Indicate(board.Serving)
	}
	fmt.Println("manifest: none yet: waiting for one (POST /v1/manifest or the console's manifest command)")

	cmds := consoleCommands(st)
	for name, c := range registered {
		cmds[name] = c
	}
	for name, c := range cmdsExtra {
		cmds[name] = c
	}
	cmds["verbose"] = v.command()
	for name, c := range map[string]command{
		"uptime": {help: "time since reset", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: uptime %d ms\n", uptime().Milliseconds())
		}},
		"status": {help: "version, board and devices", run: func(w io.Writer, _ []string) {
			fmt.Fprintf(w, "console: teastick %s on %s, %d devices, %d entropy reseed failures\n",
				Version, hw.Name(), len(devs), hw.ReseedFailures())
		}},
		"halt": {help: "stop the stick (under QEMU: exit with status 0)", run: func(w io.Writer, _ []string) {
			fmt.Fprintln(w, "halt: stopping")
			hw.Exit(0)
		}},
	} {
		cmds[name] = c
	}
	go console(hw.Console(), os.Stdout, cmds)

	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, v, uptime)
	if n > 0 {
		fmt.Println("teastick: test build, exiting")
		hw.Exit(0)
	}
}

// netMode is how the stick gets its address: static (QEMU user
// networking's 10.0.2.15/24) unless built with -X main.netMode=dhcp
// (make NET=dhcp).
var netMode string

// boxGateway is the box's IPFS gateway on the board's link (under QEMU as
// it forwards it, qemu.BoxAddr; on the USB armory the box's end of the USB
// link).
var boxGateway = hw.Link().BoxGateway

// loadParallel is how many actors the stick loads at once: two, so that
// one actor whose blocks the box stalls does not hold back the others
// (each load has its own connection to the box), and no more, because each
// load holds its module and a compiled copy, tens of MiB for a Go actor.
// They compile one at a time (CompileParallel 1): a compile holds the one
// core, and an initializer beside it would spend its deadline waiting.
const loadParallel = 2

// boxLimits bound fetches from the box: derived from the stick's RAM.
var boxLimits = ipfs.DefaultLimits

// cmdsExtra are console commands that exist once the network is up.
var cmdsExtra = map[string]command{}

// fetchCmd fetches a CID from the box, verifying every block.
func fetchCmd(w io.Writer, args []string) {
	if len(args) != 1 {
		fmt.Fprintln(w, "fetch: usage: fetch CID")
		return
	}
	c, err := cid.Decode(args[0])
	if err != nil {
		fmt.Fprintf(w, "fetch: bad CID: %v\n", err)
		return
	}
	cl := &ipfs.Client{Gateway: boxGateway, CAR: true, Timeout: time.Minute, Limits: boxLimits}
	start := time.Now()
	b, err := cl.Fetch(context.Background(), c)
	if err != nil {
		fmt.Fprintf(w, "fetch: FAILED: %v\n", err)
		return
	}
	fmt.Fprintf(w, "fetch: %s %d bytes sha256:%x in %d ms\n", c, len(b), sha256.Sum256(b), time.Since(start).Milliseconds())
}

// startNetwork brings up virtio-net, the TCP/IP stack, the net package on
// top of it, and the stick's HTTPS API, whose TLS key is the channel key
// attestation binds. It reports whether the API listens.
func startNetwork(tlsCfg *tls.Config, srv *http.Server) (serving bool) {
	nic, dev, err := hw.OpenNet()
	if errors.Is(err, board.ErrNoNet) {
		fmt.Println("net: no network device")
		if !errors.Is(board.ErrNoNet, err) {
			fmt.Printf("net: %v\n", err)
		}
		return
	}
	if err != nil {
		fmt.Printf("net: %s: %v\n", dev.NIC(), err)
		return
	}
	mac := nic.MAC()
	link := hw.Link()
	cfg := netstack.Config{Address: link.Address, Gateway: link.Gateway}
	if netMode == "dhcp" {
		cfg = netstack.Config{}
	}
	st, err := netstack.New(nic, cfg)
	if err != nil {
		fmt.Printf("net: FAILED: %v\n", err)
		return
	}
	go st.Run(context.Background())
	if netMode == "dhcp" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		lease, err := st.DHCP(ctx)
		cancel()
		if err != nil {
			fmt.Printf("net: FAILED: %v\n", err)
			return
		}
		cfg.Address, cfg.Gateway = lease.Address, lease.Gateway
		gw := "no gateway"
		if lease.Gateway.IsValid() {
			gw = "via " + lease.Gateway.String()
		}
		fmt.Printf("net: dhcp lease %v %s from %v for %v\n", lease.Address, gw, lease.Server, lease.Duration)
	}
	net.SocketFunc = st.Socket
	l, err := net.Listen("tcp", ":80")
	if err != nil {
		fmt.Printf("net: FAILED: listen: %v\n", err)
		return
	}
	go srv.Serve(tls.NewListener(l, tlsCfg))
	cmdsExtra["fetch"] = command{help: "CID: fetch and verify content from the box's IPFS gateway (" + boxGateway + ")", run: fetchCmd}
	route := "no gateway"
	if cfg.Gateway.IsValid() {
		route = "via " + cfg.Gateway.String()
	}
	fmt.Printf("net: %s mac %s, %v %s, https on :80\n", dev.NIC(), net.HardwareAddr(mac[:]), cfg.Address, route)
	return true
}

// checkTPM resumes measured boot from stage 0's hand-off: the event log
// must replay to the TPM's PCRs. Then it measures the stick's
// configuration into PCR 8. Any failure leaves the stick unmeasured, which
// it says: it will serve no actors.
func checkTPM(t *tis.TIS) (*measure.Measurer, error) {
	mem := hw.Memory()
	hw.MapMemory(mem.HandoffBase, mem.HandoffBase+mem.HandoffSize, false)
	area := unsafe.Slice((*byte)(mmio.Pointer(uintptr(mem.HandoffBase))), mem.HandoffSize)
	n, err := measure.HandoffSize(area)
	if err != nil {
		return nil, fmt.Errorf("no measured-boot hand-off from stage 0: %w", err)
	}
	m, err := measure.Resume(t, area[:n], nil)
	if err != nil {
		return nil, err
	}
	if err := m.MeasureConfig(stickConfig(hw.Name())); err != nil {
		return nil, err
	}
	return m, nil
}

// bringUpTPM finds the TPM and resumes measured boot; it returns the TPM
// (nil without one), the Measurer (nil when not measured) and why not.
func bringUpTPM() (transport.TPM, *measure.Measurer, error) {
	regs, base, id, err := hw.TPM()
	if err != nil {
		fmt.Printf("tpm: %v\n", err)
		return nil, nil, err
	}
	fmt.Printf("tpm: TIS at %#x did_vid %#08x\n", base, id)
	t := &tis.TIS{Regs: regs}
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
