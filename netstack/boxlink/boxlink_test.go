package boxlink

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/teastick/teastick/netstack"
	"github.com/teastick/teastick/netstack/ecm"
)

// unit is a parsed systemd configuration file: section -> key -> values in
// order (systemd.syntax(7): "[Section]" headers, "Key=value" lines, "#" and
// ";" comments).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, name string, b []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if _, dup := u[section]; dup {
				t.Errorf("%s:%d: section [%s] twice", name, n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || k == "" || strings.TrimSpace(k) != k {
				t.Fatalf("%s:%d: not a Key=value line in a section: %q", name, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s= appears %d times, want once", section, key, len(v))
		return ""
	}
	return v[0]
}

func files(t *testing.T) (link, network unit) {
	t.Helper()
	fs := NetworkdFiles()
	if len(fs) != 2 || fs[0].Name != "networkd/10-teastick.link" || fs[1].Name != "networkd/10-teastick.network" {
		t.Fatalf("NetworkdFiles: %+v", fs)
	}
	for _, f := range fs {
		if f.Install != "/etc/systemd/network/"+filepath.Base(f.Name) {
			t.Errorf("%s installs to %s", f.Name, f.Install)
		}
	}
	return parseUnit(t, fs[0].Name, fs[0].Content), parseUnit(t, fs[1].Name, fs[1].Content)
}

// TestConventions: the link's fixed addresses are the stick's own
// (netstack.USBArmory), and the prefixes are locally administered unicast.
func TestConventions(t *testing.T) {
	if netstack.USBArmory.Address.Addr() != StickAddr || netstack.USBArmory.Gateway != BoxAddr.Addr() ||
		netstack.USBArmory.Address.Bits() != BoxAddr.Bits() {
		t.Errorf("stick %v box %v, the stick's netstack.USBArmory says %v via %v", StickAddr, BoxAddr, netstack.USBArmory.Address, netstack.USBArmory.Gateway)
	}
	for _, p := range [][3]byte{BoxMACPrefix, StickMACPrefix} {
		if p[0]&2 == 0 || p[0]&1 != 0 {
			t.Errorf("prefix %x is not locally administered unicast", p)
		}
	}
	// The prefixes are those the stick's USB function derives its MACs
	// with (netstack/ecm.MACs), and both MACs share their suffix, which
	// is how stick find derives the stick's MAC from the interface's.
	for _, id := range [][]byte{nil, []byte("stick-a"), {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}} {
		stick, box := ecm.MACs(id)
		if [3]byte(stick[:3]) != StickMACPrefix || [3]byte(box[:3]) != BoxMACPrefix || [3]byte(stick[3:]) != [3]byte(box[3:]) {
			t.Errorf("ecm.MACs(%x) = stick %x box %x; boxlink expects prefixes %x and %x and one suffix", id, stick, box, StickMACPrefix, BoxMACPrefix)
		}
	}
	if StickURL() != "https://10.0.0.1:80" || GatewayURL() != "http://10.0.0.2:8080" {
		t.Errorf("StickURL %s GatewayURL %s", StickURL(), GatewayURL())
	}
}

// TestNetworkdFiles parses the files a release ships and checks what they
// do: the .link names the stick's interface (matched on its USB IDs and
// driver), the .network gives it 10.0.0.2/24 and no route, DHCP, IPv6 or
// anything else.
func TestNetworkdFiles(t *testing.T) {
	link, network := files(t)
	for name, u := range map[string]unit{"link": link, "network": network} {
		if got := u.one(t, "Match", "Property"); got != "ID_VENDOR_ID=1209 ID_MODEL_ID=2702" {
			t.Errorf("%s: [Match] Property=%s", name, got)
		}
		if got := u.one(t, "Match", "Driver"); got != "cdc_ether" {
			t.Errorf("%s: [Match] Driver=%s", name, got)
		}
		if _, ok := u["Match"]["MACAddress"]; ok {
			t.Errorf("%s: MACAddress= matches whole addresses only: one file cannot match every stick", name)
		}
	}
	if len(link) != 2 || link.one(t, "Link", "Name") != InterfaceName || link.one(t, "Link", "MACAddressPolicy") != "none" {
		t.Errorf(".link: %v", link)
	}
	if network.one(t, "Match", "Name") != InterfaceName {
		t.Errorf(".network matches %v", network["Match"])
	}
	want := map[string]string{
		"Address": "10.0.0.2/24", "DHCP": "no", "DHCPServer": "no", "LinkLocalAddressing": "no",
		"IPv6AcceptRA": "no", "LLDP": "no", "EmitLLDP": "no",
	}
	for k, v := range want {
		if got := network.one(t, "Network", k); got != v {
			t.Errorf(".network [Network] %s=%s, want %s", k, got, v)
		}
	}
	if len(network["Network"]) != len(want) {
		t.Errorf(".network [Network] has %v, want exactly %v", network["Network"], want)
	}
	for s := range network {
		if s != "Match" && s != "Link" && s != "Network" {
			t.Errorf(".network has a [%s] section (routes, DHCP servers and the like have no place here)", s)
		}
	}
	if network.one(t, "Link", "RequiredForOnline") != "no" {
		t.Errorf(".network [Link] %v", network["Link"])
	}
}

// TestNetworkdFilesParsedBySystemd hands the files to systemd's own
// parsers: udev's net_setup_link builtin reads .link files and
// systemd-networkd .network files, each warning about any key or value it
// does not take. Both run in a private mount and network namespace
// (unshare) with a tmpfs on /run/systemd, so the machine's own network
// configuration is neither read nor touched. (`systemd-analyze verify`
// checks unit files only: it refuses .network and .link files.)
func TestNetworkdFilesParsedBySystemd(t *testing.T) {
	networkd := "/lib/systemd/systemd-networkd"
	for _, tool := range []string{"unshare", "udevadm", networkd, "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (systemd's own parsers are needed): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for _, f := range NetworkdFiles() {
		os.WriteFile(filepath.Join(dir, filepath.Base(f.Name)), f.Content, 0o644)
	}
	// Sentinels: each parser must warn about their unknown key, proof
	// that it read the directory (networkd says nothing of a file it
	// parses without complaint).
	os.WriteFile(filepath.Join(dir, "20-sentinel.link"), []byte("[Match]\nOriginalName=none\n[Link]\nSentinelKey=1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "20-sentinel.network"), []byte("[Match]\nName=none\n[Network]\nSentinelKey=1\n"), 0o644)
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/network
cp %s/* /run/systemd/network/
SYSTEMD_LOG_LEVEL=debug udevadm test-builtin net_setup_link /sys/class/net/lo 2>&1 || true
echo ==== networkd
SYSTEMD_LOG_LEVEL=debug SYSTEMD_LOG_TARGET=console timeout 3 %s 2>&1 || true
`, dir, networkd)
	out, err := exec.Command("unshare", "--mount", "--net", "sh", "-c", script).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Operation not permitted")) {
		t.Skipf("cannot make a private mount and network namespace (needs CAP_SYS_ADMIN): %v\n%s", err, out)
	}
	for _, n := range []string{"20-sentinel.link", "20-sentinel.network"} {
		if !regexp.MustCompile(regexp.QuoteMeta(n) + `:\d+: Unknown key 'SentinelKey'`).Match(out) {
			t.Errorf("no warning about %s's unknown key: systemd did not parse the directory", n)
		}
	}
	bad := regexp.MustCompile(`(?i)10-teastick\.(link|network).*(unknown|failed|invalid|ignoring|deprecated|obsolete)`)
	for _, l := range strings.Split(string(out), "\n") {
		if bad.MatchString(l) {
			t.Errorf("systemd: %s", l)
		}
	}
	if t.Failed() {
		t.Logf("systemd's output:\n%s", out)
	}
}
