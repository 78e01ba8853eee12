package qemu

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/release"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/verify"
)

// nativeExamples are the example actors the native stick test compiles
// into its image: echo only, since each Go actor adds minutes of
// compilation to `make test` (make qemu NATIVE=1 compiles all the
// examples; BenchmarkNativeRuntimeOnStick too).
var nativeExamples = []string{"echo"}

// NativeTargetEnv names the Makefile TARGET the native stick test and
// benchmark run on (default qemu, the arm board). A native image costs
// minutes of compilation per GOARCH, so `make test` builds one, for arm;
// TEASTICK_NATIVE_TARGET=qemu-riscv64 runs the same test and benchmark on
// the riscv64 board.
const NativeTargetEnv = "TEASTICK_NATIVE_TARGET"

// nativeTarget returns the machine NativeTargetEnv names.
func nativeTarget(t testing.TB) Target {
	name := os.Getenv(NativeTargetEnv)
	if name == "" {
		return ARM
	}
	target, err := TargetNamed(name)
	if err != nil {
		t.Fatalf("%s: %v", NativeTargetEnv, err)
	}
	return target
}

// NativeImage makes a stick image with the named example actors
// translated and compiled in, the way `make release` does: the actors are
// built (runtime/actortest, as they are published) and NativeImageOf
// translates them. It returns the build and the modules by name.
func NativeImage(t testing.TB, ctx context.Context, b Build, names ...string) (Build, map[string][]byte) {
	t.Helper()
	code := map[string][]byte{}
	for _, n := range names {
		code[n] = actortest.GoActor(t, n)
	}
	return NativeImageOf(t, ctx, b, code), code
}

// NativeImageOf makes a stick image with the modules code holds (by actor
// name) translated and compiled in: `teactl release translate` writes
// their Go and the native table into build/_native/stick of a clean copy
// of the tree (the import path is fixed, so the copy keeps parallel
// builds apart), and the Makefile builds the image with the tag native.
func NativeImageOf(t testing.TB, ctx context.Context, b Build, code map[string][]byte) Build {
	t.Helper()
	tree := CleanTree(t, root)
	mods := filepath.Join(t.TempDir(), "actors")
	os.MkdirAll(mods, 0o755)
	var names []string
	for n, m := range code {
		names = append(names, n)
		if err := os.WriteFile(filepath.Join(mods, n+".wasm"), m, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(names)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/teactl", "release", "translate", "--modules", mods, "-o", "build/_native/stick")
	cmd.Dir = tree
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("teactl release translate: %v\n%s", err, out)
	}
	t.Logf("translated %v in %v", names, time.Since(start).Round(time.Second))
	b.Root, b.Tags = tree, strings.TrimSpace(b.Tags+" native")
	return b
}

// TestStickNative boots a stick whose image holds the example actors'
// translations (NativeImage: echo's) under QEMU with swtpm and kubo, and
// checks issue 18's promise end to end: the manifest marks echo native
// (notary and wordcount not), the stick serves echo from the image (no
// fetch), says so on its console, and measures it into PCR 9 as native,
// the others as interpreted; the release bundle lists echo (read from the
// image), the stick attests against the bundle with every actor's engine
// reported, and receipts verify offline against the bundle, and not
// without its native table. An upgrade then moves echo to a module no image holds (the edge
// fixture, still marked native): the interpreter serves it, PCR 10 says
// so, and the verifier accepts it and reports why it is not native.
func TestStickNative(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU native test SKIPPED: %s", why)
	}
	target := nativeTarget(t)
	t.Logf("target %s (%s)", target.Name, NativeTargetEnv)
	ctx := context.Background()
	dir := t.TempDir()
	b, code := NativeImage(t, ctx, Build{Dir: dir, Target: target.Name, Version: "native-test",
		GovernanceKey: hex.EncodeToString(testGovernance.Public().(ed25519.PublicKey))}, nativeExamples...)
	start := time.Now()
	stickPath, err := b.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stick image with %d native actors built in %v", len(nativeExamples), time.Since(start).Round(time.Second))
	container, err := WrapStick(stickPath, dir)
	if err != nil {
		t.Fatal(err)
	}
	stickBytes, _ := os.ReadFile(stickPath)
	stage0Bytes, _ := os.ReadFile(b.Stage0())
	stickSum, stage0Sum := sha256.Sum256(stickBytes), sha256.Sum256(stage0Bytes)
	t.Logf("stick image: %d bytes", len(stickBytes))

	node := kubotest.Start(t)
	put := func(data []byte) string { return node.Publish(t, data).String() }
	cids := map[string]string{}
	for _, n := range []string{"echo", "notary", "wordcount"} {
		if code[n] == nil {
			code[n] = actortest.GoActor(t, n)
		}
		cids[n] = put(code[n])
	}
	edge := put(actortest.Wat(t, "edge"))
	data := put([]byte(strings.Repeat("stick reads box data\n", 500)))
	sign := func(version uint64, actors ...manifest.Actor) []byte {
		m, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: version,
			Firmware: manifest.Firmware{Stage0: hex.EncodeToString(stage0Sum[:]), Stick: hex.EncodeToString(stickSum[:])},
			Actors:   actors}, testGovernance)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	wcLimits := manifest.Limits{TimeoutMillis: 10000}
	v1 := sign(1,
		manifest.Actor{Name: "echo", CID: cids["echo"], Native: true, Grants: []string{"log"}},
		manifest.Actor{Name: "notary", CID: cids["notary"], Grants: []string{"crypto.sha256", "crypto.sign"}},
		manifest.Actor{Name: "wordcount", CID: cids["wordcount"], Grants: []string{"ipfs.cat"}, Limits: wcLimits},
	)
	v2 := sign(2,
		manifest.Actor{Name: "echo", CID: edge, Native: true, Grants: []string{"log"}},
		manifest.Actor{Name: "notary", CID: cids["notary"], Grants: []string{"crypto.sha256", "crypto.sign"}},
		manifest.Actor{Name: "wordcount", CID: cids["wordcount"], Grants: []string{"ipfs.cat"}, Limits: wcLimits},
	)
	gov := testGovernance.Public().(ed25519.PublicKey)
	bundle := filepath.Join(dir, "release-v1")
	if r, err := release.Make(stage0Bytes, stickBytes, v1, b.Version, target.Board); err != nil {
		t.Fatal(err)
	} else if err := release.Write(bundle, stage0Bytes, stickBytes, v1, r); err != nil {
		t.Fatal(err)
	}
	rel, released, err := release.Verify(bundle, gov)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, n := range rel.Native {
		listed = append(listed, n.Name)
		if n.CID != cids[n.Name] {
			t.Errorf("the bundle lists native %s at %s, published at %s", n.Name, n.CID, cids[n.Name])
		}
	}
	if len(listed) != len(nativeExamples) {
		t.Fatalf("the bundle's native table (read from the image) lists %v, want %v", listed, nativeExamples)
	}
	native := rel.NativeActors()
	config := core.ConfigRecord(rel.ImageVersion, rel.Board)
	ref, _, err := receipt.Reference([][]byte{released}, config, gov)
	if err != nil {
		t.Fatal(err)
	}
	ref.Native = native
	ref2, _, err := receipt.Reference([][]byte{released, v2}, config, gov)
	if err != nil {
		t.Fatal(err)
	}
	ref2.Native = native

	tpm, roots := provisionedTPM(t, ctx)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	logf := func(format string, args ...any) { report = append(report, fmt.Sprintf(format, args...)) }
	problem := make(chan error, 1)
	session := func(typeIn func(string)) {
		defer typeIn("halt\n")
		problem <- func() error {
			c := &client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: 2 * time.Minute, UpgradeTimeout: 10 * time.Minute}
			start := time.Now()
			resp, err := c.Manifest(ctx, v1)
			if err != nil {
				return fmt.Errorf("boot manifest: %w", err)
			}
			logf("boot manifest: %d ms, actor errors %v", time.Since(start).Milliseconds(), resp.ActorErrors)
			if !resp.Status.Ready || len(resp.ActorErrors) != 0 {
				return fmt.Errorf("after the boot manifest: %+v", resp)
			}
			for _, a := range resp.Status.Actors {
				if want := map[bool]string{true: "native", false: "interpreter"}[a.Name == "echo"]; a.Engine != want {
					return fmt.Errorf("status: actor %s runs on %q, want %s", a.Name, a.Engine, want)
				}
			}
			typeIn("actors\n")
			req, err := c.Enrol(ctx)
			if err != nil {
				return err
			}
			ch, pending, err := verify.Enrol(req, roots)
			if err != nil {
				return err
			}
			secret, err := c.Activate(ctx, ch.CredentialBlob, ch.EncryptedSecret)
			if err != nil {
				return err
			}
			ak, err := pending.Finish(secret)
			if err != nil {
				return err
			}
			// attest checks the quote against ref, wants the engines
			// given, and verifies each receipt offline against the
			// bundle (as teactl receipt verify --release DIR), and not
			// without its native table.
			attest := func(ref *verify.Reference, engines map[string]measure.Engine) error {
				nonce := sha256.Sum256([]byte(time.Now().String()))
				a, peer, err := c.Attest(ctx, nonce[:])
				if err != nil {
					return err
				}
				v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce[:], ChannelKey: peer, Reference: ref})
				if !v.OK() || v.Keys == nil {
					return fmt.Errorf("verdict:\n%s", v)
				}
				for _, ch := range v.Checks {
					if ch.Name == verify.CheckEngine {
						logf("verdict: %s", ch)
					}
				}
				got := map[string]measure.Engine{}
				for _, e := range v.Engines {
					got[e.Name] = e.Engine // the last event of each name
				}
				for name, want := range engines {
					if got[name] != want {
						return fmt.Errorf("the verdict reports %s on %v, want %v:\n%s", name, got[name], want, v)
					}
				}
				c.Pin(client.KeyDigest(peer))
				receipts, err := receiptsCheck(ctx, c, v.Keys.Result, logf, data)
				if err != nil {
					return err
				}
				ev := &receipt.Evidence{Nonce: nonce[:], Attestation: a.Evidence, Certification: a.ResultKey,
					RollbackCounter: a.RollbackCounter, Manifests: a.Manifests, Config: config}
				for _, r := range receipts {
					f := &receipt.File{Format: receipt.FileFormat, Receipt: r, Evidence: ev}
					if _, err := receipt.VerifyFile(f, receipt.Trust{AKPublic: ak, Governance: gov, Release: released, Config: config, Native: native}); err != nil {
						return fmt.Errorf("%s.%s receipt against the release bundle: %w", r.Actor, r.Operation, err)
					}
					if _, err := receipt.VerifyFile(f, receipt.Trust{AKPublic: ak, Governance: gov, Release: released, Config: config}); !errors.Is(err, receipt.ErrEvidence) {
						return fmt.Errorf("%s.%s receipt verified without the bundle's native table: %v", r.Actor, r.Operation, err)
					}
				}
				logf("receipts verified against the release bundle: %d", len(receipts))
				return nil
			}
			if err := attest(ref, map[string]measure.Engine{"echo": measure.EngineNative, "notary": measure.EngineWasm, "wordcount": measure.EngineWasm}); err != nil {
				return err
			}
			start = time.Now()
			resp, err = c.Manifest(ctx, v2)
			if err != nil {
				return fmt.Errorf("upgrade: %w", err)
			}
			logf("upgrade: %d ms, actor errors %v", time.Since(start).Milliseconds(), resp.ActorErrors)
			r, err := c.Invoke(ctx, "echo", "echo", []byte("upgraded"))
			if err != nil || r.Receipt.CID != edge || string(r.Output) != "upgraded" {
				return fmt.Errorf("echo after the upgrade: %v %+v", err, r)
			}
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			for _, a := range st.Actors {
				if a.Name == "echo" && a.Engine != "interpreter" {
					return fmt.Errorf("status: the upgraded echo runs on %q, want interpreter", a.Engine)
				}
			}
			return attest(ref2, map[string]measure.Engine{"echo": measure.EngineWasm, "notary": measure.EngineWasm})
		}()
	}
	res, err := Machine{Target: &target, Kernel: b.Stage0(), StickImage: container, TPM: tpm, HTTPPort: port,
		BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "manifest: none yet",
		Session: session}.Run(ctx, 20*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-problem:
		if err != nil {
			t.Error(err)
		}
	default:
		t.Error("the API session did not finish")
	}
	for _, want := range []string{
		`^native: 1 actors compiled in \(served natively where the manifest marks exactly their CID\): echo ` + cids["echo"] + `$`,
		`^actor: echo ` + cids["echo"] + ` native, 0 bytes, fetched in 0 ms, loaded in \d+ ms, measured into PCR 9, grants \[log\]$`,
		`^actor: wordcount ` + cids["wordcount"] + ` interpreter, \d+ bytes, fetched in \d+ ms, loaded in \d+ ms, measured into PCR 9, grants \[ipfs.cat\]$`,
		`^READY: manifest version 1, actors \[echo notary wordcount\] in \d+ ms$`,
		`^actors: echo ` + cids["echo"] + ` serving native `,
		`^actor: echo now ` + edge + ` \(interpreter\), measured into PCR 10$`,
	} {
		if !matchLine(res, want) {
			t.Errorf("no line matching %q", want)
		}
	}
	ready := regexp.MustCompile(`^READY: .* in (\d+) ms$`)
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "native: ") || strings.HasPrefix(l.Text, "actor: ") || strings.HasPrefix(l.Text, "READY") ||
			strings.HasPrefix(l.Text, "manifest: ") || strings.Contains(l.Text, " serving ") || ready.MatchString(l.Text) {
			t.Log(l.Text)
		}
	}
	for _, l := range report {
		t.Log(l)
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
}
