package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teastick/teastick/image/bootimg"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/tpm/eventlog"
)

// startTPM runs a software TPM for one machine: provisioned (SHA-256 bank
// only, EK certificates) or fresh (four banks).
func startTPM(t *testing.T, provision bool) *SWTPM {
	t.Helper()
	tpm := &SWTPM{Dir: t.TempDir(), Provision: provision}
	if err := tpm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tpm.Stop)
	return tpm
}

const root = ".."

// images are the test builds: the stick exits through semihosting after
// two heartbeats (two seconds: the quiet console prints neither).
type images struct {
	dir       string
	stick     string // ELF
	stage0    string // ELF
	container string // stick ELF in its container
}

// imageBuild is one target's test build, made once per test binary.
type imageBuild struct {
	once sync.Once
	img  images
	err  error
}

var imageBuilds = map[string]*imageBuild{"": {}, RISCV64.Name: {}, USBArmory.Name: {}}

// TestMain removes the test images after the tests: tens of megabytes
// each, built once per test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, ib := range imageBuilds {
		if ib.img.dir != "" {
			os.RemoveAll(ib.img.dir)
		}
	}
	os.Exit(code)
}

// testImages are the test builds for TARGET=qemu.
func testImages(t testing.TB) images { return testImagesFor(t, "", 10*time.Minute) }

// testImagesFor builds target's test images once (within timeout): the
// stick exits after two heartbeats (through semihosting on arm, the SiFive
// test device on riscv64).
func testImagesFor(t testing.TB, target string, timeout time.Duration) images {
	t.Helper()
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU boot test SKIPPED (targets qemu, qemu-riscv64 and usbarmory): %s", why)
	}
	ib := imageBuilds[target]
	ib.once.Do(func() {
		dir, err := os.MkdirTemp("", "teastick-boot-"+target)
		if err != nil {
			ib.err = err
			return
		}
		ib.img.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		b := Build{Root: root, Dir: dir, Target: target, Version: "boot-test", ExitAfter: 2}
		if ib.img.stick, ib.err = b.Image(ctx); ib.err != nil {
			return
		}
		ib.img.stage0 = b.Stage0()
		ib.img.container, ib.err = WrapStick(ib.img.stick, dir)
	})
	if ib.err != nil {
		t.Fatal(ib.err)
	}
	return ib.img
}

// legacyBanner is banner on legacy virtio-mmio devices: the devices line
// says v1 for the entropy and the network device.
func legacyBanner(banner []string) []string {
	out := make([]string, 0, len(banner)+1)
	for _, l := range banner {
		if strings.HasPrefix(l, "^devices: ") {
			l = strings.ReplaceAll(l, ", v2", ", v1")
			out = append(out, `^devices: .*net@0x[0-9a-f]+\(slot \d+, v1\)`)
		}
		out = append(out, l)
	}
	return out
}

// writeFile writes a derived image into the test's directory.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var stickBanner = []string{
	`^teastick boot-test$`,
	`^board: qemu-virt-arm cpu: cortex-a7$`,
	`^ram: 512 MiB at 0x40000000$`,
	`^entropy: virtio-rng \(slot \d+\) -> chacha20 drbg$`,
	`^devices: .*rng@0x[0-9a-f]+\(slot \d+, v2\)`,
	`^boot: banner at \d+ ms$`,
	`^irq: timer interrupt \d+ us after its deadline$`,
	`^tpm: virt: no TIS TPM described by the device tree`,
	`^net: virtio-net slot \d+ mac 52:54:00:12:34:56, 10\.0\.2\.15/24 via 10\.0\.2\.2, https on :80$`,
	`^teastick: test build, exiting$`,
}

func TestBoot(t *testing.T) {
	img := testImages(t)
	elf, err := os.ReadFile(img.stick)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(elf)
	digest := hex.EncodeToString(sum[:])

	// PCR 4 after stage 0: the image's digest, then the separator
	pcr4 := func() string {
		sep := sha256.Sum256(eventlog.Separator)
		p := eventlog.Replay([]eventlog.Event{{PCR: 4, Digest: sum}, {PCR: 4, Digest: sep}})[4]
		return hex.EncodeToString(p[:])
	}()

	stage0Digest := func() string {
		b, err := os.ReadFile(img.stage0)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}()

	corrupt := append([]byte(nil), elf...)
	corrupt[1] = 'X' // ELF magic
	notARM := bootimg.Wrap(corrupt)

	tests := []bootCase{
		{
			name:     "stick boots to its banner, and its console is quiet",
			machine:  func(*testing.T) Machine { return Machine{Kernel: img.stick} },
			exitCode: 0,
			want:     stickBanner,
			reject:   []string{`FATAL`, `panic`, `exception`, `^heartbeat`},
		},
		{
			name: "stage 0 measures, loads and starts the stick",
			machine: func(*testing.T) Machine {
				return Machine{Kernel: img.stage0, StickImage: img.container}
			},
			exitCode: 0,
			want: append([]string{
				`^teastick stage0 boot-test$`,
				`^stage0: stick image \d+ bytes sha256:` + digest + `$`,
				`^stage0: loaded \d+ segments, starting the stick at 0x4[0-9a-f]{7}$`,
			}, stickBanner...),
			reject: []string{`FATAL`, `panic`, `exception`},
		},
		{
			name:     "stage 0 without a stick image stops",
			machine:  func(*testing.T) Machine { return Machine{Kernel: img.stage0} },
			exitCode: 4,
			want:     []string{`^stage0: FATAL: no stick image at 0x70000000: bootimg: not a stick image`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stage 0 refuses a malformed stick image",
			machine: func(t *testing.T) Machine {
				return Machine{Kernel: img.stage0, StickImage: writeFile(t, "bad.img", notARM)}
			},
			exitCode: 5,
			want:     []string{`^stage0: FATAL: stick image rejected: bootimg: unusable ELF image`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stage 0 refuses a truncated container",
			machine: func(t *testing.T) Machine {
				c, _ := os.ReadFile(img.container)
				return Machine{Kernel: img.stage0, StickImage: writeFile(t, "short.img", c[:len(c)/2])}
			},
			exitCode: 4,
			want:     []string{`^stage0: FATAL: no stick image .*bootimg: image damaged \(digest mismatch\)`},
			reject:   []string{`^teastick boot-test`},
		},
		{
			name: "stick without stage 0 is not measured",
			machine: func(t *testing.T) Machine {
				return Machine{Kernel: img.stick, TPM: startTPM(t, true)}
			},
			exitCode: 0,
			want: []string{
				`^tpm: TIS at 0xc000000 did_vid 0x00011014$`,
				`^tpm: NOT MEASURED: no measured-boot hand-off from stage 0: .*: serving no actors$`,
				`^teastick: test build, exiting$`,
			},
			reject: []string{`^tpm: measured boot`, `FAULT`, `REFUSING`}, // the unstarted TPM is left alone
		},
		{
			name: "measured boot: stage 0 measures the stick and the stick resumes the log",
			machine: func(t *testing.T) Machine {
				return Machine{Kernel: img.stage0, StickImage: img.container, TPM: startTPM(t, true)}
			},
			exitCode: 0,
			want: []string{
				`^stage0: measured itself into PCR 0: \d+ bytes sha256:` + stage0Digest + `$`,
				`^stage0: measured the stick into PCR 4, separators on PCRs 0-7, \d+-byte event log handed over$`,
				`^tpm: measured boot: 11 events replay to the TPM's PCRs$`,
				`^tpm: PCR 4 sha256 ` + pcr4 + `$`,
				`^tpm: PCR 8 sha256 [0-9a-f]{64}$`,
				`^teastick: test build, exiting$`,
			},
			reject: []string{`NOT MEASURED`, `FATAL`},
		},
		{
			name: "stage 0 whose image copy is not the running code measures nothing",
			machine: func(t *testing.T) Machine {
				return Machine{Kernel: img.stage0, StickImage: img.container, Stage0Image: img.stick, TPM: startTPM(t, true)}
			},
			exitCode: 0,
			want: []string{
				`^stage0: NOT MEASURED: stage 0 image at 0x6c000000: measure: stage 0 image: .*: the stick will serve no actors$`,
				`^tpm: NOT MEASURED: no measured-boot hand-off from stage 0`,
			},
			reject: []string{`^tpm: measured boot`, `^stage0: measured`},
		},
		{
			name: "measured boot fails closed on a TPM with extra PCR banks",
			machine: func(t *testing.T) Machine {
				return Machine{Kernel: img.stage0, StickImage: img.container, TPM: startTPM(t, false)}
			},
			exitCode: 0,
			want: []string{
				`^stage0: NOT MEASURED: measure: PCR banks other than SHA-256 are active.*: the stick will serve no actors$`,
				`^tpm: NOT MEASURED: no measured-boot hand-off from stage 0`,
			},
			reject: []string{`^tpm: measured boot`},
		},
		{
			name: "answers on the serial console",
			machine: func(*testing.T) Machine {
				return Machine{Kernel: img.stick, Input: "status\nuptime\nfrobnicate\nverbose on\n", InputAfter: "boot: banner"}
			},
			exitCode: 0,
			want: []string{
				`^console: teastick boot-test on qemu-virt-arm, 2 devices, 0 entropy reseed failures$`,
				`^console: uptime \d+ ms$`,
				`^console: unknown command "frobnicate" \(try help\)$`,
				`^console: verbose on: a heartbeat every second and debug lines$`,
				`^heartbeat 1 uptime \d+ ms$`,
				`^heartbeat 2 uptime \d+ ms$`,
			},
		},
		{
			name:     "boots without a network device",
			machine:  func(*testing.T) Machine { return Machine{Kernel: img.stick, NoNet: true} },
			exitCode: 0,
			want:     []string{`^net: no network device$`, `^teastick: test build, exiting$`},
		},
		{
			name:     "refuses to run without an entropy source",
			machine:  func(*testing.T) Machine { return Machine{Kernel: img.stick, NoRNG: true} },
			exitCode: 3,
			want:     []string{`^teastick: FATAL: no entropy source: .*virtio-rng`},
			reject:   []string{`^teastick boot-test`, `heartbeat`},
		},
		{
			name:     "boots on QEMU's default legacy (version 1) virtio-mmio transport",
			machine:  func(*testing.T) Machine { return Machine{Kernel: img.stick, LegacyVirtio: true} },
			exitCode: 0,
			want:     legacyBanner(stickBanner),
			reject:   []string{`FATAL`, `panic`, `exception`, `, v2\)`},
		},
	}
	runBootCases(t, tests, 90*time.Second)
}

// bootCase is one boot of a boot test: the machine, QEMU's exit status,
// and console lines (regular expressions) it must and must not print.
type bootCase struct {
	name     string
	machine  func(t *testing.T) Machine
	exitCode int
	want     []string
	reject   []string
}

// runBootCases boots each case as a subtest, within timeout, and checks
// its exit status and console; a console containing any of banned fails
// too.
func runBootCases(t *testing.T, cases []bootCase, timeout time.Duration, banned ...string) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.machine(t).Run(context.Background(), timeout, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.exitCode {
				t.Errorf("exit status %d, want %d", res.ExitCode, tc.exitCode)
			}
			for _, w := range tc.want {
				if !matchLine(res, w) {
					t.Errorf("console has no line matching %q", w)
				}
			}
			for _, r := range tc.reject {
				if matchLine(res, r) {
					t.Errorf("console has a line matching %q", r)
				}
			}
			for _, bad := range banned {
				if strings.Contains(res.Console, bad) {
					t.Errorf("console shows %q", bad)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", res.Console)
			}
		})
	}
}

// TestHTTPThroughHostForward reaches the stick's HTTPS endpoint from the
// host through QEMU's hostfwd rule: frames cross virtio-net, the gVisor
// stack, crypto/tls with the channel key and net/http on bare metal. The
// client pins the channel key the stick announced.
func TestHTTPThroughHostForward(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "virtio-mmio v2"
		if legacy {
			// QEMU's default: version 1 devices, the legacy rings
			name = "virtio-mmio v1 (legacy)"
		}
		t.Run(name, func(t *testing.T) { testHTTPThroughHostForward(t, legacy) })
	}
}

func testHTTPThroughHostForward(t *testing.T, legacy bool) {
	img := testImages(t)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		status map[string]any
		err    error
	}
	got := make(chan result, 1)
	var pinned [32]byte
	m := Machine{Kernel: img.stick, HTTPPort: port, LegacyVirtio: legacy, Interact: func(line string) string {
		if d, ok := strings.CutPrefix(line, "channel: key sha256:"); ok {
			b, _ := hex.DecodeString(d)
			copy(pinned[:], b)
		}
		if strings.Contains(line, "https on :80") {
			go func() {
				var r result
				// trust the stick by the channel key it announced (an
				// attestation binds it), as teactl will
				c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: channel.ClientConfig(pinned)}}
				for i := 0; i < 20; i++ {
					resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/v1/status", port))
					if err != nil {
						r.err = err
						time.Sleep(100 * time.Millisecond)
						continue
					}
					r.err = json.NewDecoder(resp.Body).Decode(&r.status)
					resp.Body.Close()
					break
				}
				got <- r
			}()
		}
		return ""
	}}
	res, err := m.Run(context.Background(), 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("GET /v1/status: %v; console:\n%s", r.err, res.Console)
		}
		if r.status["version"] != "boot-test" || r.status["board"] != "qemu-virt-arm" || r.status["measured"] != false {
			t.Fatalf("status %v", r.status)
		}
		t.Logf("status from the stick: %v", r.status)
	default:
		t.Fatalf("the stick never said it serves HTTP; console:\n%s", res.Console)
	}
}

// TestFetchFromKubo has the stick fetch a multi-block file from a real kubo
// node through QEMU's guestfwd rule, verifying every block on bare metal,
// and compares what it got with the file's digest.
func TestFetchFromKubo(t *testing.T) {
	img := testImages(t)
	node := kubotest.Start(t)
	data := make([]byte, 3*ipfs.ChunkSize+12345)
	for i := range data {
		data[i] = byte(i*7 + i/1000)
	}
	c := node.Publish(t, data)
	sum := sha256.Sum256(data)
	gw := strings.TrimPrefix(node.Gateway, "http://")
	res, err := Machine{Kernel: img.stick, BoxGateway: gw, InputAfter: "https on :80",
		Input: "fetch " + c.String() + "\nfetch bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk\n"}.Run(context.Background(), 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`^fetch: %s %d bytes sha256:%x in \d+ ms$`, c, len(data), sum)
	if !matchLine(res, want) {
		t.Fatalf("no line matching %q; console:\n%s", want, res.Console)
	}
	if !matchLine(res, `^fetch: bad CID`) {
		t.Errorf("a malformed CID was not refused; console:\n%s", res.Console)
	}
}

// TestDHCP builds a stick that asks QEMU user networking's DHCP server for
// its address and checks the lease and the network coming up with it.
func TestDHCP(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU DHCP test SKIPPED: %s", why)
	}
	dir := t.TempDir()
	stick, err := Build{Root: root, Dir: dir, Version: "dhcp-test", Net: "dhcp", ExitAfter: 2}.Image(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Machine{Kernel: stick}.Run(context.Background(), 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		// restrict=on: QEMU's DHCP server offers no router
		`^net: dhcp lease 10\.0\.2\.15/24 no gateway from 10\.0\.2\.2 for 24h0m0s$`,
		`^net: virtio-net slot \d+ mac 52:54:00:12:34:56, 10\.0\.2\.15/24 no gateway, https on :80$`,
	} {
		if !matchLine(res, w) {
			t.Errorf("console has no line matching %q", w)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}

func matchLine(res *Result, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range res.Lines {
		if re.MatchString(l.Text) {
			return true
		}
	}
	return false
}

// BenchmarkBootToBanner reports, per boot, the host's wall time from QEMU
// start to the stick's banner, the guest's own time since reset printed in
// the banner, and the image sizes: directly (-kernel stick) and through
// stage 0.
func BenchmarkBootToBanner(b *testing.B) {
	img := testImages(b)
	bannerRE := regexp.MustCompile(`^boot: banner at (\d+) ms$`)
	for _, bc := range []struct {
		name string
		m    Machine
	}{
		{"direct", Machine{Kernel: img.stick}},
		{"stage0", Machine{Kernel: img.stage0, StickImage: img.container}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var wall, guest time.Duration
			for b.Loop() {
				res, err := bc.m.Run(context.Background(), 90*time.Second, nil)
				if err != nil {
					b.Fatal(err)
				}
				l, ok := res.Find("boot: banner at")
				if !ok {
					b.Fatalf("no banner:\n%s", res.Console)
				}
				wall += l.At
				if m := bannerRE.FindStringSubmatch(l.Text); m != nil {
					ms, _ := strconv.Atoi(m[1])
					guest += time.Duration(ms) * time.Millisecond
				}
			}
			b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms-to-banner")
			b.ReportMetric(float64(guest.Milliseconds())/float64(b.N), "guest-ms-to-banner")
		})
	}
	for name, p := range map[string]string{"stick": img.stick, "stage0": img.stage0} {
		if st, err := os.Stat(p); err == nil {
			b.Logf("%s image: %d bytes", name, st.Size())
		}
	}
}
