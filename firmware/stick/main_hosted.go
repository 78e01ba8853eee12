//go:build !tamago

// Command stick is the teastick firmware. Built for Linux it is the hosted
// stick: the same core with the host's clock, entropy and console, and a
// software TPM (swtpm) over its Unix socket standing in for the stick's. It
// measures itself the way stage 0 measures the stick image, so a verifier
// checks it with the same code.
//
//	stick -tpm /path/to/swtpm.sock -governance-key HEX
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/teastick/teastick/netstack/ipfs"
	actorruntime "github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

var start = time.Now()

const hostedBoard = "linux-hosted"

// measureSelf does what stage 0 does for the stick image, with this
// program's executable as the image, then what the stick does: measure its
// configuration.
func measureSelf(tpm transport.TPM) (*measure.Measurer, [32]byte, error) {
	var digest [32]byte
	exe, err := os.Executable()
	if err != nil {
		return nil, digest, err
	}
	image, err := os.ReadFile(exe)
	if err != nil {
		return nil, digest, err
	}
	digest = imageDigest(image)
	m, err := measure.New(tpm, nil)
	if err != nil {
		return nil, digest, err
	}
	if err := m.Extend(measure.PCRImage, eventlog.EV_IPL, digest, []byte("teastick hosted stick "+Version)); err != nil {
		return nil, digest, err
	}
	if err := m.Separator(measure.HandoffPCRs...); err != nil {
		return nil, digest, err
	}
	if err := m.MeasureConfig(stickConfig(hostedBoard)); err != nil {
		return nil, digest, err
	}
	return m, digest, nil
}

func main() {
	tpmPath := flag.String("tpm", "", "Unix socket of the software TPM (swtpm socket --server type=unixio,path=...)")
	gk := flag.String("governance-key", governanceKey, "hex Ed25519 public key whose manifests the stick accepts")
	box := flag.String("box", "", "the box's IPFS gateway (e.g. http://127.0.0.1:8080): enables the actor commands")
	flag.Parse()

	uptime := func() time.Duration { return time.Since(start) }
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:   hostedBoard,
		CPU:     runtime.GOARCH,
		Entropy: "host (getrandom)",
		Uptime:  uptime(),
	})

	var (
		dev transport.TPM
		m   *measure.Measurer
		why error
	)
	if *tpmPath == "" {
		why = errors.New("no TPM (start the hosted stick with -tpm)")
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", why)
	} else if d, err := linuxudstpm.Open(*tpmPath); err != nil {
		why = err
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", err)
	} else {
		dev = d
		var digest [32]byte
		if m, digest, why = measureSelf(dev); why != nil {
			m = nil
			fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", why)
		} else {
			pcrs := m.PCRs()
			fmt.Printf("tpm: measured %s sha256:%x\n", hostedBoard, digest)
			fmt.Printf("tpm: measured boot: %d events\n", len(m.Events()))
			fmt.Printf("tpm: PCR %d sha256 %x\n", measure.PCRImage, pcrs[measure.PCRImage])
		}
	}
	gov, err := parseGovernanceKey(*gk)
	if err != nil {
		fmt.Printf("manifest: %v: accepting no manifest\n", err)
	}
	tr, err := newTrust(dev, m, why, gov)
	if err != nil {
		fmt.Printf("channel: FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("channel: key sha256:%x\n", tr.channelKeyDigest())

	cmds := tr.commands()
	if *box != "" {
		cl := &ipfs.Client{Gateway: *box, Timeout: time.Minute}
		rt := actorruntime.New(actorruntime.Config{Files: cl, Blocks: cl})
		for name, c := range (&actors{rt: rt, t: tr, fetch: cl.Fetch}).commands() {
			cmds[name] = c
		}
	}
	for name, c := range registered {
		cmds[name] = c
	}
	cmds["uptime"] = command{help: "time since start", run: func(w io.Writer, _ []string) {
		fmt.Fprintf(w, "console: uptime %d ms\n", uptime().Milliseconds())
	}}
	cmds["status"] = command{help: "version and board", run: func(w io.Writer, _ []string) {
		fmt.Fprintf(w, "console: teastick %s on %s\n", Version, hostedBoard)
	}}
	cmds["halt"] = command{help: "stop the stick", run: func(w io.Writer, _ []string) {
		fmt.Fprintln(w, "halt: stopping")
		os.Exit(0)
	}}
	go console(os.Stdin, os.Stdout, cmds)
	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, uptime)
}
