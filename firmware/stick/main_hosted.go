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
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs"
	actorruntime "github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/tpmsock"
)

var start = time.Now()

const hostedBoard = "linux-hosted"

// measureSelf does what stage 0 does for the stick image, with this
// program's executable as the image, then what the stick does: measure its
// configuration. No stage 0 loads the hosted stick (the host's operating
// system does), so PCR 0 begins with measure.NoStage0, the all-zero
// digest its manifests name as stage 0: a verifier that expects a real
// stage 0 refuses it.
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
	if err := m.MeasureStage0(measure.NoStage0, "teastick hosted stick: no stage 0"); err != nil {
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
	box := flag.String("box", "", "the box's IPFS gateway (e.g. http://127.0.0.1:8080): where actors come from")
	boxAPI := flag.String("box-api", "", "the box's IPFS RPC API (e.g. http://127.0.0.1:5001): where actors put blocks")
	listen := flag.String("listen", "127.0.0.1:8443", "address of the HTTPS API (empty: no API)")
	manifestFile := flag.String("manifest", "", "signed release manifest to boot (file)")
	manifestCID := flag.String("manifest-cid", "", "signed release manifest to boot, fetched by CID from the box")
	verbose := flag.Bool("verbose", false, "start with the console's verbose view (a heartbeat every second, debug lines); the console's verbose command switches it")
	ramMiB := flag.Uint64("ram-mib", ipfs.StickRAM>>20, "RAM the hosted stick sets its fetch limits by, in MiB (the stick has 512)")
	flag.Parse()

	uptime := func() time.Duration { return time.Since(start) }
	writeBanner(os.Stdout, Version, BoardInfo{
		Board:   hostedBoard,
		CPU:     runtime.GOARCH,
		Entropy: "host (getrandom)",
		Uptime:  uptime(),
	})
	writeNative(os.Stdout)

	var (
		dev transport.TPM
		m   *measure.Measurer
		why error
	)
	if *tpmPath == "" {
		why = errors.New("no TPM (start the hosted stick with -tpm)")
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", why)
	} else if d, err := tpmsock.Dial(*tpmPath); err != nil {
		why = err
		fmt.Printf("tpm: NOT MEASURED: %v: serving no actors\n", err)
	} else {
		dev = d // safe for the Measurer's and the Attester's goroutines
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
	v := newView()
	if *verbose {
		v.set(true)
	}
	var cl *ipfs.Client
	cfg := core.Config{Version: Version, Board: hostedBoard, TPM: dev, Measurer: m, NotMeasured: why,
		Governance: gov, Log: os.Stdout, LogLevel: &v.level, Uptime: uptime}
	if *box != "" {
		lim := ipfs.LimitsForRAM(*ramMiB << 20)
		fmt.Printf("ipfs: fetch limits: file %d MiB, held besides it %d MiB, %d nodes (from %d MiB of RAM)\n",
			lim.MaxBytes>>20, lim.Window>>20, lim.MaxNodes, *ramMiB)
		cl = &ipfs.Client{Gateway: *box, API: *boxAPI, Timeout: time.Minute, Limits: lim}
		benchFetch = cl.Fetch
		cfg.Fetch = cl.Fetch
		cfg.Actors = actorruntime.Config{Files: cl, Blocks: cl}
	}
	s, err := core.New(cfg)
	if err != nil {
		fmt.Printf("channel: FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("channel: key sha256:%x\n", s.ChannelDigest())
	if *listen != "" {
		if err := serveAPI(s, *listen); err != nil {
			fmt.Printf("api: FAILED: %v\n", err)
			os.Exit(1)
		}
	}

	cmds := consoleCommands(s)
	for name, c := range registered {
		cmds[name] = c
	}
	cmds["verbose"] = v.command()
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
	go bootManifest(s, *manifestFile, *manifestCID, cl)
	n, _ := strconv.Atoi(exitAfter)
	heartbeat(os.Stdout, n, time.Second, v, uptime)
}

// serveAPI serves the stick's API over TLS with the channel key.
func serveAPI(s *core.Stick, addr string) error {
	tlsCfg, err := channel.ServerConfig(s.ChannelKey())
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := s.Server(apiHandler(s.Handler()))
	go srv.Serve(tls.NewListener(l, tlsCfg))
	fmt.Printf("api: https://%s (channel key sha256:%x)\n", l.Addr(), s.ChannelDigest())
	return nil
}

// bootManifest boots the first manifest from a file or by CID; without
// either the stick waits for one (POST /v1/manifest or the console).
func bootManifest(s *core.Stick, file, c string, cl *ipfs.Client) {
	var raw []byte
	var err error
	switch {
	case file != "":
		raw, err = os.ReadFile(file)
	case c != "":
		if cl == nil {
			err = errors.New("-manifest-cid needs -box")
			break
		}
		var id cid.Cid
		if id, err = cid.Decode(c); err == nil {
			raw, err = cl.Fetch(context.Background(), id)
		}
	default:
		fmt.Println("manifest: none yet: waiting for one (POST /v1/manifest)")
		return
	}
	if err == nil {
		err = s.Boot(context.Background(), raw)
	}
	if err != nil {
		fmt.Printf("manifest: refused: %v\n", err)
	}
}
