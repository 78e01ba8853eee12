package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/tetratelabs/wazero"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	rel "github.com/teastick/teastick/image/release"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/tpm/verify"
)

// identity is an enrolled stick, as `stick enroll` stores it: what later
// verifications trust.
type identity struct {
	URL string `json:"url"`
	// AKPublic is the attestation key's TPMT_PUBLIC, trusted because the
	// TPM whose EK certificate chained to the CA bundle activated a
	// credential for it.
	AKPublic []byte `json:"ak_public"`
	// EKCertificateSHA256 names the TPM.
	EKCertificateSHA256 string    `json:"ek_certificate_sha256"`
	Enrolled            time.Time `json:"enrolled"`
}

// netFlags are the flags of every command that talks to a stick or a box.
type netFlags struct {
	timeout time.Duration
}

func (n *netFlags) client(url string) *client.Client {
	return &client.Client{URL: url, Timeout: n.timeout, UpgradeTimeout: max(n.timeout, 10*time.Minute)}
}

// netErr classifies a failed API call: an answer from the stick is a
// failed check, anything else (unreachable, timeout) an I/O error.
func netErr(what string, err error) error {
	var ae *client.Error
	if errors.As(err, &ae) {
		return checkErr(fmt.Errorf("%s: the stick answered %d %s: %s", what, ae.Status, ae.Code, ae.Message))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ioErr(fmt.Errorf("%s: no answer in time (--timeout): %w", what, err))
	}
	return ioErr(fmt.Errorf("%s: %w", what, err))
}

// progress prints a line on stderr unless the output is for scripts.
func (e *env) progress(format string, args ...any) {
	if !e.json {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}
}

// actor publish FILE.wasm: check the module, add it to the box.
func actorPublish(e *env, args []string) error {
	fs := e.flags("actor publish", "FILE.wasm [--box-api URL]")
	api := fs.String("box-api", "http://127.0.0.1:5001", "the box's IPFS node RPC API")
	nf := &netFlags{}
	fs.DurationVar(&nf.timeout, "timeout", time.Minute, "bound on each request to the box")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("actor publish takes one FILE.wasm")
	}
	module, err := os.ReadFile(pos[0])
	if err != nil {
		return ioErr(err)
	}
	if err := checkActor(module); err != nil {
		return checkErr(fmt.Errorf("%s: %w", pos[0], err))
	}
	c, blocks := ipfs.Add(module)
	box := &ipfs.Client{API: *api, Timeout: nf.timeout}
	start := time.Now()
	for i, b := range blocks {
		got, err := box.Put(context.Background(), b.CID.Type(), b.Data)
		if err != nil {
			return ioErr(fmt.Errorf("publishing %s: block %d of %d: %w", pos[0], i+1, len(blocks), err))
		}
		if !got.Equals(b.CID) {
			return checkErr(fmt.Errorf("the box stored block %d as %s, want %s", i+1, got, b.CID))
		}
		if len(blocks) > 1 && (i+1)%16 == 0 {
			e.progress("published %d of %d blocks", i+1, len(blocks))
		}
	}
	e.result(map[string]any{"file": pos[0], "cid": c.String(), "bytes": len(module), "blocks": len(blocks), "ms": time.Since(start).Milliseconds()},
		fmt.Sprintf("%s\n", c))
	return nil
}

// checkActor refuses what the stick would refuse: bytes that are not a
// valid WebAssembly module, or one that does not export waPC's entry
// point with its signature.
func checkActor(module []byte) error {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return errors.New("not a WebAssembly module")
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	m, err := r.CompileModule(ctx, module)
	if err != nil {
		return fmt.Errorf("not a valid WebAssembly module: %w", err)
	}
	f, ok := m.ExportedFunctions()["__guest_call"]
	if !ok {
		return errors.New("does not export __guest_call (see runtime/ABI.md)")
	}
	if p, res := f.ParamTypes(), f.ResultTypes(); len(p) != 2 || len(res) != 1 {
		return fmt.Errorf("__guest_call takes %d values and returns %d, want (i32, i32) -> i32", len(p), len(res))
	}
	return nil
}

// stick enroll URL: EK certificate against the CA bundle, credential
// activation for the AK, identity stored.
func stickEnroll(e *env, args []string) error {
	fs := e.flags("stick enroll", "URL --ca BUNDLE.pem -o IDENTITY.json")
	ca := fs.String("ca", "", "PEM bundle of the TPM manufacturers' CAs to trust")
	out := fs.String("o", "", "where to store the enrolled stick's identity")
	nf := &netFlags{}
	fs.DurationVar(&nf.timeout, "timeout", 30*time.Second, "bound on each request to the stick")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *ca == "" || *out == "" {
		return usageErr("stick enroll needs URL, --ca and -o")
	}
	if pos[0], err = stickURL(pos[0], nf.timeout); err != nil {
		return err
	}
	bundle, err := os.ReadFile(*ca)
	if err != nil {
		return ioErr(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return checkErr(fmt.Errorf("%s holds no PEM certificate", *ca))
	}
	c := nf.client(pos[0])
	ctx := context.Background()
	req, err := c.Enrol(ctx)
	if err != nil {
		return netErr("enrol", err)
	}
	ch, pending, err := verify.Enrol(req, roots)
	if err != nil {
		return checkErr(err)
	}
	secret, err := c.Activate(ctx, ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		return netErr("credential activation", err)
	}
	ak, err := pending.Finish(secret)
	if err != nil {
		return checkErr(err)
	}
	ekSum := sha256.Sum256(req.EKCert)
	id := identity{URL: pos[0], AKPublic: ak, EKCertificateSHA256: hex.EncodeToString(ekSum[:]), Enrolled: time.Now().UTC()}
	b, _ := json.MarshalIndent(id, "", "  ")
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return ioErr(fmt.Errorf("%w (an existing identity is never overwritten)", err))
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return ioErr(err)
	}
	if err := f.Close(); err != nil {
		return ioErr(err)
	}
	e.result(id, fmt.Sprintf("enrolled %s: TPM with EK certificate sha256:%s\nidentity in %s\n", pos[0], id.EKCertificateSHA256, *out))
	return nil
}

func loadIdentity(path string) (*identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ioErr(err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil || len(id.AKPublic) == 0 {
		return nil, checkErr(fmt.Errorf("%s is not a stick identity (teactl stick enroll)", path))
	}
	return &id, nil
}

// attested is a verified attestation: the verdict, the result key it
// certifies and the channel key to pin.
type attested struct {
	verdict  *verify.Verdict
	att      *core.Attestation
	channel  [32]byte
	nonce    []byte
	config   []byte   // the configuration record checked against PCR 8
	problems []string // checks teactl adds to the TPM verdict
	counter  uint64   // the TPM's rollback counter, certified by the AK
}

// evidence is what makes a receipt from this attested boot checkable
// offline.
func (a *attested) evidence() *receipt.Evidence {
	return &receipt.Evidence{Nonce: a.nonce, Attestation: a.att.Evidence, Certification: a.att.ResultKey,
		RollbackCounter: a.att.RollbackCounter, Manifests: a.att.Manifests, Config: a.config}
}

func (a *attested) ok() bool { return a.verdict.OK() && len(a.problems) == 0 }

// attestStick attests the stick at c and verifies everything against the
// enrolled identity and the governance key: the quote and event log
// (tpm/verify), the manifests the stick reports (signed by gov, versions
// increasing, the boot one naming the image the stick measured), and the
// result key's certification (same AK, same boot), and the TPM's rollback
// counter (certified by the AK for this nonce): the served manifest's
// version must be at least the counter, at least min, and at least the
// version of release when one is given.
//
// native is the native table of the release the stick booted (a bundle's
// reference.json, rel.Reference.NativeActors): without it, an actor
// measured running natively fails the attestation.
func attestStick(ctx context.Context, e *env, c *client.Client, id *identity, gov ed25519.PublicKey, release []byte, config []byte, native []verify.NativeActor, min uint64, wait time.Duration) (*attested, error) {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	st, err := waitLoaded(ctx, e, c, wait)
	if err != nil {
		return nil, err
	}
	att, peer, err := c.Attest(ctx, nonce)
	if err != nil {
		return nil, netErr("attest", err)
	}
	a := &attested{att: att, channel: client.KeyDigest(peer), nonce: nonce}
	ref := &verify.Reference{Native: native}
	var versions []uint64
	for i, raw := range att.Manifests {
		m, err := manifest.Verify(raw, gov)
		if err != nil {
			a.problems = append(a.problems, fmt.Sprintf("manifest %d the stick accepted: %v", i+1, err))
			continue
		}
		if len(versions) > 0 && m.Version <= versions[len(versions)-1] {
			a.problems = append(a.problems, fmt.Sprintf("manifest version %d after %d", m.Version, versions[len(versions)-1]))
		}
		versions = append(versions, m.Version)
		if i == 0 {
			ref.Boot = raw
			d, err := hex.DecodeString(m.Firmware.Stick)
			if err != nil || len(d) != 32 {
				a.problems = append(a.problems, "the boot manifest's stick digest is not SHA-256 hex")
				continue
			}
			if config == nil { // what the stick says it is; PCR 4 and 8 check it
				config = core.ConfigRecord(st.Version, st.Board)
			}
			ref.Events = verify.BootEvents([32]byte(d), config, raw)
			a.config = config
			// PCR 0: the stage 0 the boot manifest names (a release
			// bundle's boot.elf, which rel.Verify checked against it).
			if s0, err := hex.DecodeString(m.Firmware.Stage0); err != nil || len(s0) != 32 {
				a.problems = append(a.problems, "the boot manifest's stage 0 digest is not SHA-256 hex")
			} else {
				ref.Stage0 = [32]byte(s0)
			}
		} else {
			ref.Upgrades = append(ref.Upgrades, raw)
		}
	}
	if len(att.Manifests) == 0 {
		a.problems = append(a.problems, "the stick reports no manifest: it serves nothing")
	}
	if release != nil && (len(att.Manifests) == 0 || !bytes.Equal(verify.MeasuredManifest(att.Manifests[len(att.Manifests)-1]), verify.MeasuredManifest(release))) {
		a.problems = append(a.problems, "the stick does not run the given release (its latest manifest differs)")
	}
	a.verdict = verify.Verify(att.Evidence, verify.Expect{AKPublic: id.AKPublic, Nonce: nonce, ChannelKey: peer, Reference: ref})
	// The reference above is what the stick says it ran; the floor
	// comes from the TPM and from the operator, not from the stick.
	if release != nil {
		if m, err := manifest.Verify(release, gov); err != nil {
			a.problems = append(a.problems, fmt.Sprintf("the given release: %v", err))
		} else {
			min = max(min, m.Version)
		}
	}
	var served uint64
	if len(versions) > 0 {
		served = versions[len(versions)-1]
	}
	a.counter = a.verdict.CheckRollback(id.AKPublic, att.RollbackCounter, peer, att.Evidence.Quote, served, min)
	// The result key is the one the boot measured (a.verdict.Keys); the
	// AK's certification must name it, in the same boot.
	key, certInfo, err := verify.CertifiedKey(id.AKPublic, att.ResultKey, receipt.Qualifying())
	if err != nil {
		a.problems = append(a.problems, fmt.Sprintf("result key: %v", err))
	} else if q, err := tpm2.Unmarshal[tpm2.TPMSAttest](att.Evidence.Quote); err != nil || !verify.SameBoot(q, certInfo) {
		a.problems = append(a.problems, "result key: certified in another boot than the quote's")
	} else if a.verdict.Keys != nil && !key.Equal(a.verdict.Keys.Result) {
		a.problems = append(a.problems, "result key: the certified key is not the one the boot measured")
	}
	return a, nil
}

// waitLoaded returns the stick's status once no actor is loading (a boot
// or an upgrade in progress would attest a half-made state), waiting at
// most wait and saying so on the terminal.
func waitLoaded(ctx context.Context, e *env, c *client.Client, wait time.Duration) (*core.Status, error) {
	deadline := time.Now().Add(wait)
	said := time.Time{}
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return nil, netErr("status", err)
		}
		loading, loaded := 0, 0
		for _, a := range st.Actors {
			if a.State == core.StateLoading {
				loading++
			} else {
				loaded++
			}
		}
		if loading == 0 {
			return st, nil
		}
		if time.Now().After(deadline) {
			return nil, ioErr(fmt.Errorf("the stick is still loading %d actors after %v (--wait)", loading, wait))
		}
		if time.Since(said) > 5*time.Second {
			e.progress("the stick is loading its actors (%d of %d done); waiting", loaded, loading+loaded)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (a *attested) report() string {
	var b strings.Builder
	b.WriteString(a.verdict.String())
	for _, p := range a.problems {
		fmt.Fprintf(&b, "FAIL %s\n", p)
	}
	if a.ok() {
		fmt.Fprintf(&b, "attestation OK: channel key sha256:%x\n", a.channel)
	} else {
		b.WriteString("attestation FAILED\n")
	}
	return b.String()
}

func (a *attested) json() map[string]any {
	var checks []map[string]any
	for _, c := range a.verdict.Checks {
		checks = append(checks, map[string]any{"name": c.Name, "pass": c.Pass, "detail": c.Detail, "pcr": c.PCR, "event": c.Event})
	}
	return map[string]any{"ok": a.ok(), "checks": checks, "problems": a.problems, "channel_key_sha256": hex.EncodeToString(a.channel[:]), "rollback_counter": a.counter}
}

// attestFlags are shared by the commands that attest before they act.
type attestFlags struct {
	netFlags
	identity, pub, release string
	wait                   time.Duration
	// nativeFrom is --native: a release bundle whose native table the
	// stick's image holds (--release BUNDLE gives it too).
	nativeFrom string
	native     []verify.NativeActor
}

func (af *attestFlags) add(e *env, name, synopsis string) *flag.FlagSet {
	fs := e.flags(name, synopsis)
	fs.StringVar(&af.identity, "identity", "", "the enrolled stick's identity (teactl stick enroll)")
	fs.StringVar(&af.pub, "pub", "", "governance public key: hex, or a key or public-key file")
	fs.DurationVar(&af.timeout, "timeout", 30*time.Second, "bound on each request to the stick")
	fs.DurationVar(&af.wait, "wait", 10*time.Minute, "how long to wait for a stick that is still loading its actors")
	fs.StringVar(&af.nativeFrom, "native", "", "release bundle directory of the image the stick booted: its native table, needed when actors run natively (--release BUNDLE gives it too)")
	return fs
}

// loadNative reads --native: the native table of a release bundle
// (verified first).
func (af *attestFlags) loadNative(gov ed25519.PublicKey) error {
	if af.nativeFrom == "" {
		return nil
	}
	ref, _, err := rel.Verify(af.nativeFrom, gov)
	if err != nil {
		return releaseErr(err)
	}
	af.native = ref.NativeActors()
	return nil
}

func (af *attestFlags) load() (*identity, ed25519.PublicKey, error) {
	if af.identity == "" || af.pub == "" {
		return nil, nil, usageErr("--identity and --pub are required")
	}
	id, err := loadIdentity(af.identity)
	if err != nil {
		return nil, nil, err
	}
	gov, err := loadPub(af.pub)
	if err != nil {
		return nil, nil, err
	}
	return id, gov, nil
}

// loadRelease reads --release: a release bundle (verified first; its
// configuration record replaces what the stick reports, its native table
// becomes af.native) or a signed manifest; nothing when not given. It
// reads --native too.
func (af *attestFlags) loadRelease(gov ed25519.PublicKey) (release, config []byte, err error) {
	if err := af.loadNative(gov); err != nil {
		return nil, nil, err
	}
	if st, err := os.Stat(af.release); err == nil && st.IsDir() {
		ref, signed, err := rel.Verify(af.release, gov)
		if err != nil {
			return nil, nil, releaseErr(err)
		}
		af.native = ref.NativeActors()
		return signed, core.ConfigRecord(ref.ImageVersion, ref.Board), nil
	} else if af.release != "" {
		if release, err = os.ReadFile(af.release); err != nil {
			return nil, nil, ioErr(err)
		}
	}
	return release, nil, nil
}

// stick attest URL: one attestation, every check printed.
func stickAttest(e *env, args []string) error {
	af := &attestFlags{}
	fs := af.add(e, "stick attest", "URL --identity ID.json --pub GOVKEY [--release MANIFEST]")
	fs.StringVar(&af.release, "release", "", "signed manifest, or release bundle directory, the stick must be running")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("stick attest takes one URL")
	}
	if pos[0], err = stickURL(pos[0], af.timeout); err != nil {
		return err
	}
	id, gov, err := af.load()
	if err != nil {
		return err
	}
	release, config, err := af.loadRelease(gov)
	if err != nil {
		return err
	}
	a, err := attestStick(context.Background(), e, af.client(pos[0]), id, gov, release, config, af.native, 0, af.wait)
	if err != nil {
		return err
	}
	e.result(a.json(), a.report())
	if !a.ok() {
		return checkErr(errors.New("attestation failed"))
	}
	return nil
}

// payloadArg reads PAYLOAD, or @FILE, or nothing.
func payloadArg(pos []string) ([]byte, error) {
	if len(pos) == 0 {
		return nil, nil
	}
	if f, ok := strings.CutPrefix(pos[0], "@"); ok {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, ioErr(err)
		}
		return b, nil
	}
	return []byte(pos[0]), nil
}

// actor invoke URL NAME OP [PAYLOAD|@FILE]: attest, pin, invoke, check
// the receipt.
func actorInvoke(e *env, args []string) error {
	af := &attestFlags{}
	fs := af.add(e, "actor invoke", "URL NAME OPERATION [PAYLOAD|@FILE] --identity ID.json --pub GOVKEY (--release MANIFEST|BUNDLE | --min-version N) [-o RECEIPT.json]")
	out := fs.String("o", "", "write the receipt with the evidence of the boot that signed it here, for teactl receipt verify")
	fs.StringVar(&af.release, "release", "", "signed manifest, or release bundle directory, the stick must be running")
	minVersion := fs.Uint64("min-version", 0, "lowest manifest version the stick may serve")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 3 || len(pos) > 4 {
		return usageErr("actor invoke takes URL NAME OPERATION [PAYLOAD|@FILE]")
	}
	if pos[0], err = stickURL(pos[0], af.timeout); err != nil {
		return err
	}
	// What the stick says about itself cannot be its own reference:
	// an older signed manifest describes itself just as well.
	if af.release == "" && *minVersion == 0 {
		return usageErr("actor invoke needs --release MANIFEST|BUNDLE or --min-version N: the stick is checked against a release or a minimum manifest version, not only against what it says it runs")
	}
	id, gov, err := af.load()
	if err != nil {
		return err
	}
	release, config, err := af.loadRelease(gov)
	if err != nil {
		return err
	}
	payload, err := payloadArg(pos[3:])
	if err != nil {
		return err
	}
	ctx := context.Background()
	c := af.client(pos[0])
	a, err := attestStick(ctx, e, c, id, gov, release, config, af.native, *minVersion, af.wait)
	if err != nil {
		return err
	}
	if !a.ok() {
		fmt.Fprint(e.stderr, a.report())
		return checkErr(errors.New("the stick did not attest: not invoking"))
	}
	c.Pin(a.channel) // the invocation goes to the stick that attested
	res, err := c.Invoke(ctx, pos[1], pos[2], payload)
	if err != nil {
		return netErr("invoke", err)
	}
	// The same check as offline: the receipt against the attested boot's
	// measured result key and the release's reference.
	f := &receipt.File{Format: receipt.FileFormat, Receipt: res.Receipt, Evidence: a.evidence()}
	if _, err := receipt.VerifyFile(f, receipt.Trust{AKPublic: id.AKPublic, Governance: gov, Native: af.native}); err != nil {
		return checkErr(err)
	}
	if err := receipt.CheckInput(res.Receipt, payload, res.Output); err != nil {
		return checkErr(err)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return ioErr(err)
		}
	}
	e.progress("receipt OK: %s %s.%s, manifest version %d, counter %d", res.Receipt.CID, pos[1], pos[2], res.Receipt.ManifestVersion, res.Receipt.Counter)
	if e.json {
		e.result(map[string]any{"result": res.Output, "receipt": res.Receipt}, "")
		return nil
	}
	e.stdout.Write(res.Output)
	if len(res.Output) > 0 && res.Output[len(res.Output)-1] != '\n' {
		fmt.Fprintln(e.stdout)
	}
	return nil
}

// receipt verify FILE: offline, against the enrolled AK and the
// governance key: the evidence in the file must show the result key that
// signed the receipt measured by a verified boot of a released image.
func receiptVerify(e *env, args []string) error {
	fs := e.flags("receipt verify", "RECEIPT.json --identity ID.json --pub GOVKEY [--release BUNDLE|MANIFEST] [--input FILE --output FILE]")
	idPath := fs.String("identity", "", "the enrolled stick's identity")
	pubArg := fs.String("pub", "", "governance public key: hex, or a key or public-key file")
	release := fs.String("release", "", "release bundle directory, or signed manifest, the stick must have booted")
	in := fs.String("input", "", "the payload the receipt should be about")
	outF := fs.String("output", "", "the result the receipt should be about")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *idPath == "" || *pubArg == "" {
		return usageErr("receipt verify needs RECEIPT.json, --identity and --pub")
	}
	if (*in == "") != (*outF == "") {
		return usageErr("--input and --output go together")
	}
	id, err := loadIdentity(*idPath)
	if err != nil {
		return err
	}
	gov, err := loadPub(*pubArg)
	if err != nil {
		return err
	}
	tr := receipt.Trust{AKPublic: id.AKPublic, Governance: gov}
	if st, err := os.Stat(*release); err == nil && st.IsDir() {
		ref, signed, err := rel.Verify(*release, gov)
		if err != nil {
			return releaseErr(err)
		}
		tr.Release, tr.Config, tr.Native = signed, core.ConfigRecord(ref.ImageVersion, ref.Board), ref.NativeActors()
	} else if *release != "" {
		if tr.Release, err = os.ReadFile(*release); err != nil {
			return ioErr(err)
		}
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return ioErr(err)
	}
	var f receipt.File
	if err := json.Unmarshal(b, &f); err != nil || f.Receipt == nil {
		return checkErr(fmt.Errorf("%s is not a receipt file (teactl actor invoke -o)", pos[0]))
	}
	v, err := receipt.VerifyFile(&f, tr)
	if err != nil {
		if v != nil && !v.OK() {
			fmt.Fprint(e.stderr, v.String())
		}
		return checkErr(err)
	}
	if *in != "" {
		inB, err := os.ReadFile(*in)
		if err != nil {
			return ioErr(err)
		}
		outB, err := os.ReadFile(*outF)
		if err != nil {
			return ioErr(err)
		}
		if err := receipt.CheckInput(f.Receipt, inB, outB); err != nil {
			return checkErr(err)
		}
	}
	r := f.Receipt
	served := r.ManifestVersion
	if ms := f.Evidence.Manifests; len(ms) > 0 {
		if m, _, _, err := manifest.Parse(ms[len(ms)-1]); err == nil {
			served = m.Version
		}
	}
	e.result(map[string]any{"ok": true, "receipt": r, "result_key": hex.EncodeToString(v.Keys.Result), "rollback_counter": v.RollbackCounter, "served_version": served},
		fmt.Sprintf("receipt OK: actor %s (%s) operation %s, manifest version %d, counter %d, signed by result key %x, measured in a verified boot of the release; served manifest version %d, TPM rollback counter %d (certified by the AK in that boot)\n",
			r.Actor, r.CID, r.Operation, r.ManifestVersion, r.Counter, []byte(v.Keys.Result), served, v.RollbackCounter))
	return nil
}

// stick upgrade URL MANIFEST: attest, push, attest again; or, for a stick
// waiting for its first manifest, push and attest.
func stickUpgrade(e *env, args []string) error {
	af := &attestFlags{}
	fs := af.add(e, "stick upgrade", "URL MANIFEST --identity ID.json --pub GOVKEY")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("stick upgrade takes URL and MANIFEST")
	}
	if pos[0], err = stickURL(pos[0], af.timeout); err != nil {
		return err
	}
	id, gov, err := af.load()
	if err != nil {
		return err
	}
	if err := af.loadNative(gov); err != nil {
		return err
	}
	signed, err := os.ReadFile(pos[1])
	if err != nil {
		return ioErr(err)
	}
	m, err := manifest.Verify(signed, gov)
	if err != nil {
		return checkErr(fmt.Errorf("%s: %w", pos[1], err))
	}
	ctx := context.Background()
	c := af.client(pos[0])
	st, err := waitLoaded(ctx, e, c, af.wait)
	if err != nil {
		return err
	}
	if st.Manifest == nil {
		// A stick waiting for its first manifest has nothing to attest
		// yet (PCR 8 is open). The attestation after the push checks
		// everything, including that this manifest is the one it booted,
		// and binds the connection the push went over to the quote.
		e.progress("the stick runs no manifest yet: giving it its first")
	} else {
		before, err := attestStick(ctx, e, c, id, gov, nil, nil, af.native, 0, af.wait)
		if err != nil {
			return err
		}
		if !before.ok() {
			fmt.Fprint(e.stderr, before.report())
			return checkErr(errors.New("the stick did not attest before the upgrade: not pushing"))
		}
		c.Pin(before.channel)
	}
	e.progress("pushing manifest version %d (%d actors): the stick fetches, verifies and loads them", m.Version, len(m.Actors))
	start := time.Now()
	up, err := c.Manifest(ctx, signed)
	if err != nil {
		return netErr("upgrade", err)
	}
	e.progress("the stick runs manifest version %d after %v", up.Status.Manifest.Version, time.Since(start).Round(time.Millisecond))
	names := make([]string, 0, len(up.ActorErrors))
	for n := range up.ActorErrors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(e.stderr, "actor %s kept its old version: %s\n", n, up.ActorErrors[n])
	}
	after, err := attestStick(ctx, e, c, id, gov, signed, nil, af.native, 0, af.wait)
	if err != nil {
		return err
	}
	e.result(map[string]any{"version": up.Status.Manifest.Version, "actor_errors": up.ActorErrors, "attestation": after.json()}, after.report())
	if !after.ok() {
		return checkErr(errors.New("the stick did not attest after the upgrade"))
	}
	if len(up.ActorErrors) > 0 {
		return checkErr(fmt.Errorf("%d actors did not upgrade", len(up.ActorErrors)))
	}
	return nil
}
