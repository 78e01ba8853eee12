// Command teastick-qemu boots a stick image under QEMU with the console on
// this terminal: what `make qemu` runs.
//
//	teastick-qemu -stage0 build/boot-qemu.elf -stick build/stick-qemu.elf
//	teastick-qemu -kernel build/stick-qemu.elf   (the stick alone)
//	teastick-qemu -target qemu-riscv64           (the riscv64 virt machine)
//
// QEMU gets the target's machine (qemu: the arm virt machine, secure
// world, Cortex-A7; qemu-riscv64: the riscv64 virt machine), a virtio entropy
// device, virtio-net on user networking (restrict=on), the exit status
// device (semihosting on arm, the SiFive test device on riscv64: the
// stick's exit status becomes this command's), a software TPM whose state
// is kept per stick, and an offline kubo node on loopback as the box: the
// stick reaches its gateway at 10.0.2.100:8080, the host reaches the
// stick's API at https://127.0.0.1:8480. Everything stops with QEMU. Press
// Ctrl-A X to stop QEMU.
//
// With -governance-key (a teactl key file whose public key the image has
// built in; `make qemu` makes a development one), the launcher also
// builds the example actors (runtime/examples, GOOS=wasip1), publishes
// them to the box, signs a manifest naming them, and hands it to the
// stick over its API once the API answers, so the stick comes up READY
// with echo, notary and wordcount. With -native the manifest marks them
// native: an image built with `make qemu NATIVE=1` (which translated the
// same modules, built into -actors) serves them natively.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/qemu"
)

func main() {
	targetName := flag.String("target", qemu.ARM.Name, "the Makefile TARGET whose machine to boot: qemu (arm virt) or qemu-riscv64 (riscv64 virt)")
	kernel := flag.String("kernel", "", "boot this ELF directly (the stick without stage 0)")
	stage0 := flag.String("stage0", "", "stage 0 image (ELF; default build/boot-TARGET.elf)")
	stick := flag.String("stick", "", "stick image (ELF), loaded and measured by stage 0 (default build/stick-TARGET.elf)")
	mem := flag.Int("m", 1024, "guest RAM in MiB")
	tpmState := flag.String("tpm-state", "build/tpm", "software TPM state directory, one per stick (provisioned on first use; for a target other than qemu, DIR-TARGET); empty: no TPM")
	kuboRepo := flag.String("kubo-repo", "build/kubo", "repository of the IPFS node standing in for the box (offline, loopback; created on first use); empty: no box")
	httpPort := flag.Int("http-port", 8480, "host loopback port forwarded to the stick's HTTP port; 0: none")
	govKey := flag.String("governance-key", "", "teactl key file: publish the example actors and post a manifest signed with it (needs the box and -http-port)")
	dry := flag.Bool("n", false, "print the QEMU command line and exit")
	actorsDir := flag.String("actors", "", "directory of the built example actors (NAME.wasm) to publish; built there when absent (default: a temporary directory)")
	native := flag.Bool("native", false, "mark the example actors native in the manifest (a stick image built with make qemu NATIVE=1 serves them natively)")
	buildActors := flag.String("build-actors", "", "build the example actors into this directory and exit (make native-examples)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: teastick-qemu [-stage0 ELF -stick ELF | -kernel ELF] [-m MiB] [-n] [-- extra QEMU args]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	if *buildActors != "" {
		if err := buildExamples(context.Background(), *buildActors); err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		return
	}
	target, err := qemu.TargetNamed(*targetName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
		os.Exit(2)
	}
	if *stage0 == "" {
		*stage0 = "build/boot-" + target.Name + ".elf"
	}
	if *stick == "" {
		*stick = "build/stick-" + target.Name + ".elf"
	}
	if *tpmState != "" && target.Name != qemu.ARM.Name {
		*tpmState += "-" + target.Name
	}
	m := qemu.Machine{Target: &target, Kernel: *kernel, MemoryMiB: *mem, HTTPPort: *httpPort, Extra: flag.Args()}
	if *kernel == "" {
		for _, p := range []string{*stage0, *stick} {
			if _, err := os.Stat(p); err != nil {
				fmt.Fprintf(os.Stderr, "teastick-qemu: %v (build the images with `make`)\n", err)
				os.Exit(2)
			}
		}
		dir, err := os.MkdirTemp("", "teastick-qemu-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		m.Kernel = *stage0
		if m.StickImage, err = qemu.WrapStick(*stick, dir); err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
	} else if _, err := os.Stat(*kernel); err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v (build the images with `make`)\n", err)
		os.Exit(2)
	}
	if *dry {
		if *tpmState != "" {
			m.TPM = &qemu.SWTPM{Dir: *tpmState}
		}
		fmt.Println(target.Binary + " " + strings.Join(m.Args(), " "))
		if m.StickImage != "" {
			os.RemoveAll(filepath.Dir(m.StickImage))
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *tpmState != "" {
		dir, err := filepath.Abs(*tpmState)
		if err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "teastick-qemu: software TPM state in %s\n", dir)
		tpm := &qemu.SWTPM{Dir: dir, Provision: true}
		if err := tpm.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
			os.Exit(1)
		}
		defer tpm.Stop()
		m.TPM = tpm
	}
	if *kuboRepo != "" {
		repo, err := filepath.Abs(*kuboRepo)
		if err == nil {
			err = os.MkdirAll(repo, 0o755)
		}
		var node *kubotest.Node
		if err == nil {
			node, err = kubotest.Run(ctx, repo)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: IPFS node: %v\n", err)
			os.Exit(1)
		}
		defer node.Stop()
		m.BoxGateway = strings.TrimPrefix(node.Gateway, "http://")
		fmt.Fprintf(os.Stderr, "teastick-qemu: IPFS node (the box): RPC %s, gateway %s, seen by the stick at %s\n", node.API, node.Gateway, qemu.BoxAddr)
		if *govKey != "" && *httpPort != 0 && *kernel == "" {
			signed, err := exampleManifest(ctx, node, *govKey, *stage0, *stick, *actorsDir, *native)
			if err != nil {
				fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
				os.Exit(1)
			}
			go postManifest(ctx, fmt.Sprintf("https://127.0.0.1:%d", *httpPort), signed)
		}
	}
	if *httpPort != 0 {
		fmt.Fprintf(os.Stderr, "teastick-qemu: the stick's API: https://127.0.0.1:%d/v1/status (TLS with the stick's channel key: pin it, or curl -k)\n", *httpPort)
	}
	if err := m.CheckTools(); err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
		os.Exit(1)
	}
	if err := m.CheckImages(); err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
		os.Exit(1)
	}
	cmd := m.Command(ctx)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "teastick-qemu: booting %s (Ctrl-A X quits)\n", m.Kernel)
	err = cmd.Run()
	if m.StickImage != "" {
		os.RemoveAll(filepath.Dir(m.StickImage))
	}
	if m.TPM != nil {
		m.TPM.Stop()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		os.Exit(exitErr.ExitCode())
	default:
		fmt.Fprintf(os.Stderr, "teastick-qemu: %v\n", err)
		os.Exit(1)
	}
}
