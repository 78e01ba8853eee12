package boxlink

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysfs is a FAKE sysfs tree for Find: class/net/NAME/{address,
// operstate} and, for USB NICs, device/driver as a symlink to the driver,
// as Linux lays them out (Documentation/ABI/testing/sysfs-class-net).
type fakeIface struct {
	mac, oper, driver string
}

func fakeSysfs(t *testing.T, ifaces map[string]fakeIface) string {
	t.Helper()
	root := t.TempDir()
	for name, f := range ifaces {
		d := filepath.Join(root, "class", "net", name)
		if err := os.MkdirAll(filepath.Join(d, "device"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "address"), []byte(f.mac+"\n"), 0o444)
		os.WriteFile(filepath.Join(d, "operstate"), []byte(f.oper+"\n"), 0o444)
		if f.driver != "" {
			os.Symlink("../../../../bus/usb/drivers/"+f.driver, filepath.Join(d, "device", "driver"))
		}
	}
	// an entry without an address file (as some virtual devices have)
	os.MkdirAll(filepath.Join(root, "class", "net", "bonding_masters"), 0o755)
	return root
}

// fakeAddrs answers addresses from a table, for the fake tree.
func fakeAddrs(m map[string][]string) func(string) ([]netip.Prefix, error) {
	return func(name string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, s := range m[name] {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out, nil
	}
}

// TestFindFakeSysfs runs Find against fake sysfs trees: which interfaces
// are the stick's, the derived stick MAC, and each failure with its reason.
func TestFindFakeSysfs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var dialed []string
	// answering dials the loopback listener in place of 10.0.0.1:80.
	answering := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
	}
	refused := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return nil, errors.New("connect: connection refused")
	}
	stick := fakeIface{"1e:a5:70:ab:cd:ef", "up", "cdc_ether"}
	other := fakeIface{"02:fc:00:00:00:01", "up", ""}
	for _, tc := range []struct {
		name   string
		ifaces map[string]fakeIface
		addrs  map[string][]string
		dial   func(context.Context, string, string) (net.Conn, error)
		want   error // Find's error, or the first link's
		wantIf []string
	}{
		{"no interfaces at all", map[string]fakeIface{}, nil, answering, ErrNoInterface, nil},
		{"only other interfaces", map[string]fakeIface{"eth0": other, "lo": {"00:00:00:00:00:00", "unknown", ""},
			"near": {"1e:a5:71:ab:cd:ef", "up", ""}}, nil, answering, ErrNoInterface, nil},
		{"down", map[string]fakeIface{"teastick0": {stick.mac, "down", "cdc_ether"}, "eth0": other},
			map[string][]string{"teastick0": {"10.0.0.2/24"}}, answering, ErrDown, []string{"teastick0"}},
		{"lower layer down", map[string]fakeIface{"enx1ea570abcdef": {stick.mac, "lowerlayerdown", "cdc_ether"}},
			nil, answering, ErrDown, []string{"enx1ea570abcdef"}},
		{"no address", map[string]fakeIface{"usb0": stick}, map[string][]string{"usb0": {"169.254.3.4/16"}},
			answering, ErrNoAddress, []string{"usb0"}},
		{"another address in the subnet", map[string]fakeIface{"usb0": stick}, map[string][]string{"usb0": {"10.0.0.3/24"}},
			answering, ErrNoAddress, []string{"usb0"}},
		{"stick not answering", map[string]fakeIface{"teastick0": stick}, map[string][]string{"teastick0": {"10.0.0.2/24"}},
			refused, ErrNotAnswering, []string{"teastick0"}},
		{"answering", map[string]fakeIface{"teastick0": stick, "eth0": other}, map[string][]string{"teastick0": {"10.0.0.2/24"}},
			answering, nil, []string{"teastick0"}},
		{"operstate unknown (no carrier reporting) answering", map[string]fakeIface{"teastick0": {stick.mac, "unknown", ""}},
			map[string][]string{"teastick0": {"10.0.0.2/24"}}, answering, nil, []string{"teastick0"}},
		{"two sticks", map[string]fakeIface{"teastick0": stick, "usb1": {"1E:A5:70:01:02:03", "up", "cdc_ether"}},
			map[string][]string{"teastick0": {"10.0.0.2/24"}}, answering, nil, []string{"teastick0", "usb1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dialed = nil
			h := &Host{SysRoot: fakeSysfs(t, tc.ifaces), Addrs: fakeAddrs(tc.addrs), Dial: tc.dial}
			links, err := h.Find(context.Background())
			if tc.wantIf == nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Find: %v, want %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), "1e:a5:70") {
					t.Errorf("message does not name the prefix: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, l := range links {
				names = append(names, l.Interface)
			}
			if strings.Join(names, " ") != strings.Join(tc.wantIf, " ") {
				t.Fatalf("found %v, want %v", names, tc.wantIf)
			}
			first := links[0]
			if !errors.Is(first.Err, tc.want) || (first.Err == nil) != (first.Problem == "") {
				t.Fatalf("%s: %v (problem %q), want %v", first.Interface, first.Err, first.Problem, tc.want)
			}
			if first.MAC != "1e:a5:70:ab:cd:ef" || first.StickMAC != "1e:a5:71:ab:cd:ef" || first.StickURL != "https://10.0.0.1:80" {
				t.Errorf("link %+v", first)
			}
			if tc.want == nil || errors.Is(tc.want, ErrNotAnswering) {
				if len(dialed) == 0 || dialed[0] != "10.0.0.1:80" {
					t.Errorf("dialed %v, want 10.0.0.1:80", dialed)
				}
			} else if len(dialed) > 0 && len(links) == 1 {
				t.Errorf("dialed %v through a link that failed an earlier check", dialed)
			}
			if errors.Is(tc.want, ErrDown) && !strings.Contains(first.Problem, "ip link set "+first.Interface+" up") {
				t.Errorf("no remedy in %q", first.Problem)
			}
			if errors.Is(tc.want, ErrNoAddress) && !strings.Contains(first.Problem, "networkctl reload") {
				t.Errorf("no remedy in %q", first.Problem)
			}
			if first.Driver != tc.ifaces[first.Interface].driver {
				t.Errorf("driver %q, want %q", first.Driver, tc.ifaces[first.Interface].driver)
			}
			if len(links) == 2 && (links[1].MAC != "1e:a5:70:01:02:03" || !errors.Is(links[1].Err, ErrNoAddress)) {
				t.Errorf("second stick %+v", links[1])
			}
		})
	}
}

func FuzzParseMAC(f *testing.F) {
	f.Add("1e:a5:70:ab:cd:ef\n")
	f.Add("00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err == nil && net.HardwareAddr(m[:]).String() == "" {
			t.Fatal("empty address accepted")
		}
	})
}
