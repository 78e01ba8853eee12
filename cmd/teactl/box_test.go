package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/stick/hostedtest"
	"github.com/teastick/teastick/netstack/boxlink"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// netns is a network namespace the test made (ip-netns(8)); commands run
// in it with `ip netns exec`, which also mounts a sysfs of the namespace's
// own interfaces on /sys.
type netns string

func newNetns(t *testing.T, role string) netns {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	n := netns(fmt.Sprintf("ts%s-%x", role, b))
	if out, err := exec.Command("ip", "netns", "add", string(n)).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (needs CAP_NET_ADMIN and CAP_SYS_ADMIN; the USB link is then tested on a fake sysfs only, netstack/boxlink): ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(n)).Run() })
	n.ip(t, "link", "set", "lo", "up")
	return n
}

// ip runs ip(8) in the namespace and fails the test if it fails.
func (n netns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", string(n)}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", n, args, err, out)
	}
}

// cmd is a command run in the namespace.
func (n netns) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(n), name}, args...)...)
}

// connects reports whether a TCP connection to host:port succeeds from
// inside the namespace (bash's /dev/tcp: a plain connect(2)).
func (n netns) connects(host string, port int) bool {
	return n.cmd("timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", host, port)).Run() == nil
}

// httpStatus is the status code of GET path from inside the namespace
// (HTTP/1.0 over bash's /dev/tcp).
func (n netns) httpStatus(t *testing.T, host string, port int, path string) string {
	t.Helper()
	out, err := n.cmd("timeout", "10", "bash", "-c", fmt.Sprintf(
		`exec 3<>/dev/tcp/%s/%d && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' >&3 && head -1 <&3`, host, port, path, host)).Output()
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, n, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("GET %s from %s: %q", path, n, out)
	}
	return f[1]
}

// waitConnects waits up to a minute for host:port to accept in n.
func (n netns) waitConnects(t *testing.T, host string, port int, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n.connects(host, port) {
			return
		}
	}
	t.Fatalf("%s: nothing accepts on %s:%d in %s", what, host, port, n)
}

// TestBoxSideOverUSBLink plays a box and a stick on a real kernel link:
// two network namespaces joined by a veth pair standing in for the USB
// cable (box end 1e:a5:70:..., stick end 1e:a5:71:... with the same
// suffix). The box runs kubo configured with `teactl box setup --apply`,
// started before the stick is plugged in; the stick is the hosted stick
// listening on 10.0.0.1:80, fetching its actor from the box's gateway on
// the link. `teactl stick find` runs in the box's namespace (its /sys) and
// reports each stage: interface down, no 10.0.0.2, stick not answering,
// answering; then `stick enroll auto` reaches it.
func TestBoxSideOverUSBLink(t *testing.T) {
	kubo, err := kubotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	box := newNetns(t, "box")
	stickNS := newNetns(t, "stick")
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	bin := p("teactl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build teactl: %v\n%s", err, out)
	}
	// teactl in the box's namespace, as a miner runs it there
	inBox := func(args ...string) result {
		var out, errb bytes.Buffer
		c := box.cmd(bin, args...)
		c.Stdout, c.Stderr = &out, &errb
		c.Env = append(os.Environ(), "IPFS_PATH="+p("repo"))
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code, out.String(), errb.String()}
	}

	// The box: kubo configured by teactl, started while no stick is
	// plugged in (the sysctl box setup prints lets it bind 10.0.0.2).
	t.Setenv("IPFS_PATH", p("repo"))
	if out, err := exec.Command(kubo, "init", "--profile", "test", "--empty-repo").CombinedOutput(); err != nil {
		t.Fatalf("ipfs init: %v: %s", err, out)
	}
	mustOK(t, inBox("box", "setup", "--apply", "--ipfs", kubo), "box setup --apply")
	cfg, err := exec.Command(kubo, "config", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Addresses struct{ API, Gateway any }
		Gateway   struct{ DeserializedResponses, ExposeRoutingAPI any }
	}
	json.Unmarshal(cfg, &conf)
	if fmt.Sprint(conf.Addresses.Gateway) != "/ip4/10.0.0.2/tcp/8080" || fmt.Sprint(conf.Addresses.API) != "/ip4/127.0.0.1/tcp/5001" ||
		fmt.Sprint(conf.Gateway.DeserializedResponses) != "false" || fmt.Sprint(conf.Gateway.ExposeRoutingAPI) != "false" {
		t.Fatalf("kubo config after box setup --apply: %+v", conf)
	}
	key, val, _ := strings.Cut(boxlink.NonlocalBindSysctl, "=")
	if out, err := box.cmd("sysctl", "-w", key+"="+val).CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	daemon := box.cmd(kubo, "daemon", "--offline")
	daemon.Env = append(os.Environ(), "IPFS_PATH="+p("repo"))
	klog, _ := os.Create(p("kubo.log"))
	daemon.Stdout, daemon.Stderr = klog, klog
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { daemon.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			daemon.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p("kubo.log"))
			t.Logf("kubo:\n%s", b)
		}
	})
	box.waitConnects(t, "127.0.0.1", boxlink.RPCPort, "kubo's RPC API")

	wantFail(t, inBox("stick", "find"), exitIO, "no stick interface", "stick find, nothing plugged in")

	// Plug the stick in: the cable, still down.
	var suffix [3]byte
	rand.Read(suffix[:])
	boxMAC := fmt.Sprintf("1e:a5:70:%02x:%02x:%02x", suffix[0], suffix[1], suffix[2])
	stickMAC := fmt.Sprintf("1e:a5:71:%02x:%02x:%02x", suffix[0], suffix[1], suffix[2])
	box.ip(t, "link", "add", "usb0", "address", boxMAC, "type", "veth", "peer", "name", "eth0", "address", stickMAC, "netns", string(stickNS))
	stickNS.ip(t, "addr", "add", "10.0.0.1/24", "dev", "eth0")
	stickNS.ip(t, "link", "set", "eth0", "up")
	r := wantFailR(t, inBox("stick", "find"), exitIO, "interface down", "stick find, link down")
	if !strings.Contains(r.stdout, "usb0: mac "+boxMAC) || !strings.Contains(r.stdout, "stick mac "+stickMAC) {
		t.Errorf("stick find, link down:\n%s", r.stdout)
	}
	box.ip(t, "link", "set", "usb0", "up")
	// the kernel reports the carrier asynchronously (linkwatch)
	r = inBox("stick", "find")
	for deadline := time.Now().Add(10 * time.Second); strings.Contains(r.stderr, "interface down") && time.Now().Before(deadline); r = inBox("stick", "find") {
		time.Sleep(100 * time.Millisecond)
	}
	wantFail(t, r, exitIO, "box address missing", "stick find, no 10.0.0.2")
	box.ip(t, "addr", "add", "10.0.0.2/24", "dev", "usb0")

	// kubo listens where configured: the gateway on the link only, the
	// RPC API on loopback only, and that is what the stick's side sees.
	stickNS.waitConnects(t, "10.0.0.2", boxlink.GatewayPort, "the box's gateway from the stick")
	for _, c := range []struct {
		ns   netns
		host string
		port int
		want bool
	}{
		{box, "10.0.0.2", boxlink.GatewayPort, true},
		{box, "127.0.0.1", boxlink.GatewayPort, false},
		{box, "127.0.0.1", boxlink.RPCPort, true},
		{box, "10.0.0.2", boxlink.RPCPort, false},
		{stickNS, "10.0.0.2", boxlink.GatewayPort, true},
		{stickNS, "10.0.0.2", boxlink.RPCPort, false},
	} {
		if got := c.ns.connects(c.host, c.port); got != c.want {
			t.Errorf("from %s, %s:%d accepts: %v, want %v", c.ns, c.host, c.port, got, c.want)
		}
	}
	r = wantFailR(t, inBox("stick", "find", "--timeout", "2s"), exitIO, "stick not answering", "stick find, no stick serving")
	if !strings.Contains(r.stdout, "10.0.0.1:80") {
		t.Errorf("stick find, no stick serving:\n%s", r.stdout)
	}

	// The stick: an actor published through the box's RPC API (on its
	// loopback), the hosted stick in its namespace on 10.0.0.1:80 with the
	// box's gateway on the link as its only box.
	os.WriteFile(p("echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	echo := strings.TrimSpace(mustOK(t, inBox("actor", "publish", p("echo.wasm")), "publish on the box").stdout)
	mustOK(t, teactl("key", "generate", p("gov.key")), "key")
	var pub struct {
		PublicKey string `json:"public_key"`
	}
	json.Unmarshal([]byte(mustOK(t, teactl("--json", "key", "public", p("gov.key")), "key public").stdout), &pub)
	stickBin := hostedStick(t)
	img, _ := os.ReadFile(stickBin)
	sum := sha256.Sum256(img)
	mustOK(t, teactl("manifest", "new", "--version", "1", "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", hex.EncodeToString(sum[:]), "-o", p("draft")), "manifest new")
	mustOK(t, teactl("manifest", "add", p("draft"), "--name", "echo", "--cid", echo, "--grant", "log"), "manifest add")
	mustOK(t, teactl("manifest", "sign", p("draft"), "--key", p("gov.key"), "-o", p("v1.json")), "manifest sign")
	wrapper := p("stick-in-netns")
	os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", stickNS, stickBin)), 0o755)
	ca := t.TempDir()
	tpm := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: ca})
	st := hostedtest.Start(t, wrapper, "-tpm", tpm.Socket, "-listen", "10.0.0.1:80", "-governance-key", pub.PublicKey,
		"-box", boxlink.GatewayURL(), "-manifest", p("v1.json"))
	if st.URL != boxlink.StickURL() {
		t.Fatalf("the stick serves on %s, want %s", st.URL, boxlink.StickURL())
	}
	st.WaitFor("READY", 2*time.Minute)
	// What the gateway serves the stick: verifiable responses only, no
	// routing API.
	for path, want := range map[string]string{
		"/ipfs/" + echo + "?format=raw": "200",
		"/ipfs/" + echo:                 "406",
		"/routing/v1/providers/" + echo: "404",
	} {
		if got := stickNS.httpStatus(t, "10.0.0.2", boxlink.GatewayPort, path); got != want {
			t.Errorf("from the stick, GET %s: %s, want %s", path, got, want)
		}
	}

	r = mustOK(t, inBox("stick", "find"), "stick find")
	t.Logf("stick find:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "usb0: mac "+boxMAC) || !strings.Contains(r.stdout, "10.0.0.2/24") ||
		!strings.Contains(r.stdout, "answers (version teactl-test") || !strings.Contains(r.stdout, ", ready,") {
		t.Errorf("stick find:\n%s", r.stdout)
	}
	var found struct {
		Sticks []struct {
			Interface, MAC string
			StickMAC       string `json:"stick_mac"`
			StickURL       string `json:"stick_url"`
			Status         struct{ Ready bool }
		}
	}
	if err := json.Unmarshal([]byte(mustOK(t, inBox("--json", "stick", "find"), "stick find --json").stdout), &found); err != nil ||
		len(found.Sticks) != 1 || found.Sticks[0].StickMAC != stickMAC || found.Sticks[0].StickURL != "https://10.0.0.1:80" || !found.Sticks[0].Status.Ready {
		t.Errorf("stick find --json: %+v %v", found, err)
	}

	// --stick auto: enrol the stick the box finds.
	bundle, err := swtpmtest.CABundle(ca)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("ca.pem"), bundle, 0o644)
	mustOK(t, inBox("stick", "enroll", "auto", "--ca", p("ca.pem"), "-o", p("stick.json")), "stick enroll auto")
	var id identity
	b, _ := os.ReadFile(p("stick.json"))
	if json.Unmarshal(b, &id); id.URL != "https://10.0.0.1:80" {
		t.Errorf("enrolled %q", id.URL)
	}
	wantFail(t, teactl("stick", "enroll", "auto", "--ca", p("ca.pem"), "-o", p("other.json")), exitIO, "no stick", "stick enroll auto outside the box's namespace")
}

func wantFailR(t *testing.T, r result, code int, substr, what string) result {
	t.Helper()
	wantFail(t, r, code, substr, what)
	return r
}
