package qemu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/teastick/teastick/tpm/verify"
)

// TestStickEndToEnd boots stage 0 and the stick under QEMU with a
// provisioned swtpm and a real kubo node as the box, and uses the stick
// as its users do, over its API from the host: hand it a signed manifest,
// wait for READY, enrol and attest, invoke the example actors (wazero's
// interpreter on bare metal) and check their receipts, push an upgrade and
// attest again, refuse a stale and a tampered manifest. Each target's
// images become a release bundle as an operator makes one (image/release,
// what `teactl release build` does), and the stick is attested and its
// receipts verified against that bundle. Once both targets ran, each
// stick's evidence is checked against the other board's bundle, which
// must fail naming the board.
func TestStickEndToEnd(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU end-to-end test SKIPPED (targets qemu and qemu-riscv64): %s", why)
	}
	var seen []*boardEvidence
	for _, target := range Targets {
		t.Run(target.Name, func(t *testing.T) {
			if e := stickEndToEnd(t, target); e != nil {
				seen = append(seen, e)
			}
		})
	}
	if len(seen) < 2 {
		t.Logf("the cross-board check needs both targets' sticks; %d ran", len(seen))
		return
	}
	for _, stick := range seen {
		for _, other := range seen {
			if other != stick {
				otherBoard(t, stick, other)
			}
		}
	}
}

// boardEvidence is what one target's end-to-end run leaves for the
// cross-board check: its release bundle's manifest and configuration
// record (release.Verify's, before the bundle's directory went with the
// subtest) and a verified receipt file.
type boardEvidence struct {
	target           Target
	released, config []byte
	ak               []byte // the stick's enrolled AK
	receipt          *receipt.File
}

// otherBoard checks stick's receipt file, verified against its own
// bundle, against other's bundle, as `teactl stick attest --release` and
// `teactl receipt verify --release` do: the release's manifest is not the
// one the stick booted (receipt.ErrRelease), and with the reference made
// from the stick's own manifests and the other bundle's configuration
// record (teactl's attestStick), the configuration check fails and names
// both boards.
func otherBoard(t *testing.T, stick, other *boardEvidence) {
	gov := testGovernance.Public().(ed25519.PublicKey)
	signed, config := other.released, other.config
	if _, err := receipt.VerifyFile(stick.receipt, receipt.Trust{AKPublic: stick.ak, Governance: gov, Release: signed, Config: config}); !errors.Is(err, receipt.ErrRelease) {
		t.Errorf("%s stick's receipt against the %s bundle: %v, want %v", stick.target.Name, other.target.Name, err, receipt.ErrRelease)
	}
	ev := stick.receipt.Evidence
	vref, _, err := receipt.Reference(ev.Manifests, config, gov)
	if err != nil {
		t.Fatal(err)
	}
	v := verify.Verify(ev.Attestation, verify.Expect{AKPublic: stick.ak, Nonce: ev.Nonce, ChannelKey: ev.Attestation.ChannelKey, Reference: vref})
	named := false
	for _, c := range v.Failed() {
		named = named || (c.Name == verify.CheckConfig && strings.Contains(c.Detail, "board="+stick.target.Board) && strings.Contains(c.Detail, "board="+other.target.Board))
	}
	if v.OK() || !named {
		t.Errorf("the %s stick attested against the %s bundle: no failed %q naming both boards:\n%s", stick.target.Name, other.target.Name, verify.CheckConfig, v)
	} else {
		t.Logf("the %s stick against the %s bundle: %v", stick.target.Name, other.target.Name, v.Failed())
	}
}

// stickEndToEnd is the end-to-end test on one target's machine; it
// returns its evidence when it passed.
func stickEndToEnd(t *testing.T, target Target) *boardEvidence {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "teastick-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := Build{Root: root, Dir: dir, Target: target.Name, Version: "e2e-test",
		GovernanceKey: hex.EncodeToString(testGovernance.Public().(ed25519.PublicKey))}
	stickPath, err := b.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	container, err := WrapStick(stickPath, dir)
	if err != nil {
		t.Fatal(err)
	}
	stickBytes, _ := os.ReadFile(stickPath)
	stage0Bytes, _ := os.ReadFile(b.Stage0())
	stickSum, stage0Sum := sha256.Sum256(stickBytes), sha256.Sum256(stage0Bytes)

	node := kubotest.Start(t)
	put := func(data []byte) string { return node.Publish(t, data).String() }
	echo := put(actortest.GoActor(t, "echo"))
	notary := put(actortest.GoActor(t, "notary"))
	wc := put(actortest.GoActor(t, "wordcount"))
	edge := put(actortest.Wat(t, "edge"))
	victim := put(actortest.GoActor(t, "kernel")) // served tampered by the box below
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
	// wordcount fetches its data set through ipfs.cat and counts it in
	// about a second of the stick's interpreter on an idle host, half the
	// default 2 s timeout; an emulated stick on a busy host needs more room.
	wcLimits := manifest.Limits{TimeoutMillis: 10000}
	v1 := sign(1,
		manifest.Actor{Name: "echo", CID: echo, Grants: []string{"log"}},
		manifest.Actor{Name: "notary", CID: notary, Grants: []string{"crypto.sha256", "crypto.sign"}},
		manifest.Actor{Name: "wordcount", CID: wc, Grants: []string{"ipfs.cat"}, Limits: wcLimits},
		manifest.Actor{Name: "kernel", CID: victim},
	)
	// The release bundle, as an operator makes it (`teactl release
	// build`): the board from the stick image's build tag.
	gov := testGovernance.Public().(ed25519.PublicKey)
	board, err := release.BoardOf(stickBytes)
	if err != nil || board != target.Board {
		t.Fatalf("the %s stick image's build tags name board %q (%v), want %q", target.Name, board, err, target.Board)
	}
	bundle := filepath.Join(dir, "release-v1")
	if r, err := release.Make(stage0Bytes, stickBytes, v1, b.Version, board); err != nil {
		t.Fatal(err)
	} else if err := release.Write(bundle, stage0Bytes, stickBytes, v1, r); err != nil {
		t.Fatal(err)
	}
	// and as a verifier takes it, with the governance public key alone
	rel, released, err := release.Verify(bundle, gov)
	if err != nil {
		t.Fatal(err)
	}
	if len(rel.PCRs) != 9 || rel.Board != target.Board {
		t.Fatalf("the release bundle's reference names board %q and PCRs %v, want %q and PCRs 0-8", rel.Board, rel.PCRs, target.Board)
	}
	config := core.ConfigRecord(rel.ImageVersion, rel.Board)
	ref, _, err := receipt.Reference([][]byte{released}, config, gov)
	if err != nil {
		t.Fatal(err)
	}
	var evidence *boardEvidence
	v2 := sign(2,
		manifest.Actor{Name: "echo", CID: edge, Grants: []string{"log"}},
		manifest.Actor{Name: "wordcount", CID: wc, Grants: []string{"ipfs.cat"}, Limits: wcLimits},
	)
	tpm, roots := provisionedTPM(t, ctx)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	logf := func(format string, args ...any) {
		report = append(report, fmt.Sprintf(format, args...))
	}
	problem := make(chan error, 1)
	session := func(typeIn func(string)) {
		defer typeIn("halt\n")
		err := func() error {
			c := &client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: 2 * time.Minute, UpgradeTimeout: 10 * time.Minute}
			start := time.Now()
			resp, err := c.Manifest(ctx, v1)
			if err != nil {
				return fmt.Errorf("boot manifest: %w", err)
			}
			logf("boot manifest: %d ms, actor errors %v", time.Since(start).Milliseconds(), resp.ActorErrors)
			if !resp.Status.Ready || len(resp.ActorErrors) != 1 || !strings.Contains(resp.ActorErrors["kernel"], victim) {
				return fmt.Errorf("after the boot manifest (kernel tampered by the box): %+v", resp)
			}
			if err := readmeCurl(ctx, port, logf); err != nil {
				return err
			}
			var e *client.Error
			if _, err := c.Invoke(ctx, "kernel", "run", nil); !errors.As(err, &e) || e.Code != "actor_not_served" {
				return fmt.Errorf("the tampered actor answered %v", err)
			}
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
			// attest checks the quote against ref and each receipt, offline,
			// against the release bundle (receipt.VerifyFile with its
			// manifest and configuration record, as `teactl receipt verify
			// --release DIR`).
			attest := func(ref *verify.Reference) (*verify.Verdict, []byte, error) {
				nonce := sha256.Sum256([]byte(time.Now().String()))
				start := time.Now()
				a, peer, err := c.Attest(ctx, nonce[:])
				if err != nil {
					return nil, nil, err
				}
				logf("attest: %d ms", time.Since(start).Milliseconds())
				v := verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce[:], ChannelKey: peer, Reference: ref})
				if v.Keys == nil {
					return v, peer, fmt.Errorf("the quote names no measured result key:\n%s", v)
				}
				// PCRs 0-8 as the bundle's reference.json gives them
				// (actors and upgrades extend only PCRs 9 and 10)
				for pcr, want := range rel.PCRs {
					var p uint32
					fmt.Sscan(pcr, &p)
					if got := hex.EncodeToString(a.Evidence.PCRs[p]); got != want {
						return v, peer, fmt.Errorf("quoted PCR %s is %s, the release bundle's reference %s", pcr, got, want)
					}
				}
				receipts, err := receiptsCheck(ctx, c, v.Keys.Result, logf, data)
				if err != nil {
					return v, peer, err
				}
				ev := &receipt.Evidence{Nonce: nonce[:], Attestation: a.Evidence, Certification: a.ResultKey,
					RollbackCounter: a.RollbackCounter, Manifests: a.Manifests, Config: config}
				for _, r := range receipts {
					f := &receipt.File{Format: receipt.FileFormat, Receipt: r, Evidence: ev}
					if _, err := receipt.VerifyFile(f, receipt.Trust{AKPublic: ak, Governance: gov, Release: released, Config: config}); err != nil {
						return v, peer, fmt.Errorf("%s.%s receipt against the release bundle: %w", r.Actor, r.Operation, err)
					}
					if evidence == nil && v.OK() {
						evidence = &boardEvidence{target: target, released: released, config: config, ak: ak, receipt: f}
					}
				}
				logf("receipts verified against the release bundle: %d", len(receipts))
				return v, peer, nil
			}
			v, peer, err := attest(ref)
			if err != nil {
				return err
			}
			if !v.OK() {
				return fmt.Errorf("verdict:\n%s", v)
			}
			c.Pin(client.KeyDigest(peer))
			load, err := c.Load(ctx, 32, 10*time.Second, func(i, n int) client.Call {
				return client.Call{Actor: "echo", Operation: "echo", Payload: fmt.Appendf(nil, "client %d call %d", i, n)}
			})
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			logf("load: %s", load)
			if len(load.Failed) > 0 || load.OK == 0 {
				return fmt.Errorf("load: %s; first failure: %v", load, load.Failed)
			}
			for _, bad := range []struct {
				m    []byte
				want string
			}{{v1, "stale_manifest"}, {bytes.Replace(v2, []byte(`"version":2`), []byte(`"version":3`), 1), "bad_signature"}} {
				var e *client.Error
				if _, err := c.Manifest(ctx, bad.m); !errors.As(err, &e) || e.Code != bad.want {
					return fmt.Errorf("manifest answered %v, want %s", err, bad.want)
				}
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
			ref2, _, err := receipt.Reference([][]byte{released, v2}, config, gov)
			if err != nil {
				return err
			}
			if v, _, err := attest(ref2); err != nil || !v.OK() {
				return fmt.Errorf("after the upgrade: %v\n%s", err, v)
			}
			if v, _, _ := attest(ref); v == nil || v.OK() {
				return errors.New("the pre-upgrade reference still verifies after the upgrade")
			}
			return nil
		}()
		problem <- err
	}
	res, err := Machine{Target: &target, Kernel: b.Stage0(), StickImage: container, TPM: tpm, HTTPPort: port,
		BoxGateway: strings.TrimPrefix(node.Tampering(t, victim), "http://"), InputAfter: "manifest: none yet",
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
		`^actor: echo ` + echo + ` interpreter, \d+ bytes, fetched in \d+ ms, loaded in \d+ ms, measured into PCR 9, grants \[log\]$`,
		`^READY: manifest version 1, actors \[echo notary wordcount\], NOT SERVED \[kernel\] in \d+ ms$`,
		`^actor: echo now ` + edge + ` \(interpreter\), measured into PCR 10$`,
	} {
		if !matchLine(res, want) {
			t.Errorf("no line matching %q", want)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "actor: ") || strings.HasPrefix(l.Text, "READY") || strings.HasPrefix(l.Text, "manifest: ") {
			t.Log(l.Text)
		}
	}
	for _, l := range report {
		t.Log(l)
	}
	if t.Failed() {
		return nil
	}
	return evidence
}

// receiptsCheck invokes each example actor once and checks its receipt
// against the result key the verified quote names.
// readmeCurl runs the README's curl lines under "Booting in QEMU" as
// printed, through bash, with the port QEMU forwards to the stick in
// place of 8480 (make qemu's, which a developer's make qemu may hold),
// and checks their answers: the status, echo's result, the metrics.
func readmeCurl(ctx context.Context, port int, logf func(string, ...any)) error {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return err
	}
	_, after, ok := bytes.Cut(readme, []byte("<!-- qemu-curl -->\n```sh\n"))
	if !ok {
		return errors.New("README has no curl lines under <!-- qemu-curl -->")
	}
	block, _, _ := bytes.Cut(after, []byte("```"))
	if !bytes.Contains(block, []byte("127.0.0.1:8480")) {
		return fmt.Errorf("README's curl lines do not name 127.0.0.1:8480:\n%s", block)
	}
	script := strings.ReplaceAll(string(block), "127.0.0.1:8480", fmt.Sprintf("127.0.0.1:%d", port))
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("README's curl lines: %w\n%s", err, out)
	}
	for _, want := range []string{`"version":"e2e-test"`, `"ready":true`, `{"result":"aGVsbG8=","receipt":`, "\nteastick_ready 1\n",
		`teastick_http_requests_total{code="200"}`} {
		if !bytes.Contains(out, []byte(want)) {
			return fmt.Errorf("README's curl lines printed no %q:\n%s", want, out)
		}
	}
	logf("README's curl lines: %d bytes of answers", len(out))
	return nil
}

func receiptsCheck(ctx context.Context, c *client.Client, resultKey ed25519.PublicKey, logf func(string, ...any), data string) ([]*receipt.Receipt, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	var receipts []*receipt.Receipt
	for _, call := range []struct{ name, op, payload string }{
		{"echo", "echo", "hello from qemu"}, {"notary", "hash", "abc"}, {"wordcount", "count", data},
	} {
		serving := false
		for _, a := range st.Actors {
			serving = serving || (a.Name == call.name && a.State == "serving")
		}
		if !serving {
			continue
		}
		start := time.Now()
		r, err := c.Invoke(ctx, call.name, call.op, []byte(call.payload))
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", call.name, call.op, err)
		}
		logf("invoke %s.%s: %d bytes in %d ms", call.name, call.op, len(r.Output), time.Since(start).Milliseconds())
		if err := receipt.Verify(r.Receipt, resultKey); err != nil {
			return nil, fmt.Errorf("%s.%s receipt: %w", call.name, call.op, err)
		}
		if err := receipt.CheckInput(r.Receipt, []byte(call.payload), r.Output); err != nil {
			return nil, fmt.Errorf("%s.%s receipt: %w", call.name, call.op, err)
		}
		receipts = append(receipts, r.Receipt)
	}
	return receipts, nil
}
