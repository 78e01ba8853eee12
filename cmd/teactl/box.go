package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/netstack/boxlink"
)

// box setup: what the box needs to talk to its stick over USB, printed
// (the default) or applied to the box's kubo.
func boxSetup(e *env, args []string) error {
	fs := e.flags("box setup", "[--print] [--apply [--ipfs PATH]] [--networkd-dir DIR]")
	fs.Bool("print", true, "print the networkd files and the commands (the default)")
	apply := fs.Bool("apply", false, "run the `ipfs config` commands with --ipfs (its repository: $IPFS_PATH or ~/.ipfs); restart the daemon afterwards")
	ipfsBin := fs.String("ipfs", "ipfs", "the kubo binary --apply runs")
	netDir := fs.String("networkd-dir", "", "also write the networkd files into DIR (e.g. /etc/systemd/network)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("box setup takes no arguments")
	}
	files := boxlink.NetworkdFiles()
	if *netDir != "" {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(*netDir, filepath.Base(f.Name)), f.Content, 0o644); err != nil {
				return ioErr(err)
			}
		}
	}
	if *apply {
		for _, c := range boxlink.KuboConfig() {
			out, err := exec.Command(*ipfsBin, c...).CombinedOutput()
			if err != nil {
				return ioErr(fmt.Errorf("ipfs %s: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out))))
			}
			e.progress("ran: ipfs %s", strings.Join(c, " "))
		}
	}
	type file struct {
		Install string `json:"install"`
		Content string `json:"content"`
	}
	var jf []file
	var sb strings.Builder
	sb.WriteString("# The box's side of a teastick's USB link (one stick per box).\n")
	sb.WriteString("# 1. systemd-networkd files (also in every release bundle, under networkd/):\n")
	for _, f := range files {
		jf = append(jf, file{f.Install, string(f.Content)})
		fmt.Fprintf(&sb, "cat > %s <<'EOF'\n%sEOF\n", f.Install, f.Content)
	}
	sb.WriteString("networkctl reload    # then plug in the stick: `networkctl status " + boxlink.InterfaceName + "` shows " + boxlink.BoxAddr.String() + "\n")
	sb.WriteString("# 2. let kubo bind " + boxlink.BoxAddr.Addr().String() + " while the stick is unplugged (else the daemon fails to start without it):\n")
	sb.WriteString("echo " + boxlink.NonlocalBindSysctl + " > /etc/sysctl.d/60-teastick.conf && sysctl -p /etc/sysctl.d/60-teastick.conf\n")
	sb.WriteString("# 3. kubo: the gateway on the link only, verifiable responses only; the RPC API on loopback only\n")
	sb.WriteString(boxlink.Commands())
	sb.WriteString("# then restart the kubo daemon; `teactl stick find` checks the link.\n")
	e.result(map[string]any{"networkd_files": jf, "sysctl": boxlink.NonlocalBindSysctl, "ipfs_config": boxlink.KuboConfig(),
		"applied": *apply, "stick_url": boxlink.StickURL(), "gateway": boxlink.GatewayURL()}, sb.String())
	return nil
}

// foundStick is a link stick find reports.
type foundStick struct {
	boxlink.Link
	Status *core.Status `json:"status,omitempty"`
}

// findSticks runs boxlink's checks, asking each stick for its status.
func findSticks(sys string, timeout time.Duration) ([]foundStick, error) {
	nf := &netFlags{timeout: timeout}
	status := map[string]*core.Status{}
	h := &boxlink.Host{SysRoot: sys, Timeout: timeout, Probe: func(ctx context.Context, l *boxlink.Link) error {
		st, err := nf.client(l.StickURL).Status(ctx)
		status[l.Interface] = st
		return err
	}}
	links, err := h.Find(context.Background())
	if err != nil {
		return nil, err
	}
	var out []foundStick
	for _, l := range links {
		out = append(out, foundStick{Link: l, Status: status[l.Interface]})
	}
	return out, nil
}

// stick find: the stick's interface on this box and whether it answers.
func stickFind(e *env, args []string) error {
	fs := e.flags("stick find", "[--sys DIR] [--timeout D]")
	sys := fs.String("sys", "/sys", "sysfs mount to read the network interfaces from")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on connecting to and asking each stick")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("stick find takes no arguments")
	}
	found, err := findSticks(*sys, *timeout)
	if err != nil {
		e.result(map[string]any{"sticks": []foundStick{}, "error": err.Error()}, "")
		return ioErr(err)
	}
	var sb strings.Builder
	answering := 0
	for _, f := range found {
		drv := ""
		if f.Driver != "" {
			drv = ", driver " + f.Driver
		}
		fmt.Fprintf(&sb, "%s: mac %s%s, %s, addresses [%s]\n  stick mac %s, API %s: ", f.Interface, f.MAC, drv, f.OperState,
			strings.Join(f.Addresses, " "), f.StickMAC, f.StickURL)
		if f.Err != nil {
			fmt.Fprintf(&sb, "NOT REACHABLE: %v\n", f.Err)
			continue
		}
		answering++
		state := "not ready"
		if f.Status.Ready {
			state = "ready"
		}
		meas := "measured"
		if !f.Status.Measured {
			meas = "NOT MEASURED"
		}
		fmt.Fprintf(&sb, "answers (version %s, board %s, %s, %s; attest it before trusting anything it says)\n", f.Status.Version, f.Status.Board, state, meas)
	}
	if len(found) > 1 {
		fmt.Fprintf(&sb, "WARNING: %d stick interfaces: the link's fixed addresses (stick %s, box %s) serve one stick per box\n",
			len(found), boxlink.StickAddr, boxlink.BoxAddr)
	}
	e.result(map[string]any{"sticks": found}, sb.String())
	if answering == 0 {
		return ioErr(errors.New("stick find: no stick answers: " + found[0].Problem))
	}
	return nil
}

// stickURL resolves a command's stick URL: "auto" is the one stick that
// answers on this box's USB link.
func stickURL(u string, timeout time.Duration) (string, error) {
	if u != "auto" {
		return u, nil
	}
	found, err := findSticks("/sys", timeout)
	if err != nil {
		return "", ioErr(err)
	}
	var ok []string
	for _, f := range found {
		if f.Err == nil {
			ok = append(ok, f.Interface)
		}
	}
	switch len(ok) {
	case 0:
		return "", ioErr(fmt.Errorf("stick auto: no stick answers: %s", found[0].Problem))
	case 1:
		return boxlink.StickURL(), nil
	}
	return "", usageErr("stick auto: %d sticks answer (%s): give the URL", len(ok), strings.Join(ok, ", "))
}
