package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/teastick/teastick/image/manifest"
)

// Exit statuses.
const (
	exitOK    = 0
	exitCheck = 1
	exitUsage = 2
	exitIO    = 3
)

// cliError carries an exit status.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &cliError{exitUsage, fmt.Errorf(format, args...)}
}
func ioErr(err error) error    { return &cliError{exitIO, err} }
func checkErr(err error) error { return &cliError{exitCheck, err} }

const usage = `teactl: the operator's tool for teastick sticks

usage: teactl [--json] GROUP COMMAND [ARGS]

  key generate KEYFILE      create a governance key (Ed25519, file mode 0600)
  key public KEYFILE        print a key's public half and key ID

  manifest new              start an unsigned manifest draft
  manifest add DRAFT        add an actor to a draft
  manifest sign DRAFT       sign a draft with a governance key
  manifest verify MANIFEST  check a signed manifest against a public key
  manifest show FILE        print a draft or a signed manifest

  actor publish FILE.wasm   check an actor and add it to the box's IPFS node; prints its CID
  actor invoke URL NAME OP [PAYLOAD|@FILE]
                            attest the stick against --release or --min-version (required),
                            invoke an actor, check the result's receipt

  stick enroll URL          check the stick's EK certificate, activate a credential for its AK,
                            store its identity
  stick attest URL          attest the stick and print every check (the TPM's rollback counter
                            too); non-zero exit on any failure
  stick upgrade URL MANIFEST
                            attest, push a signed manifest, attest again (a stick waiting for
                            its first manifest: push it, then attest)

  stick find                list the stick interfaces on this box's USB link (MAC 1e:a5:70:...),
                            each checked: up, carrying 10.0.0.2, the stick's API answering;
                            URL may be "auto" in the stick and actor commands: the one stick found

  box setup                 print (or --apply to kubo) the box's side of the USB link: the
                            networkd files, the sysctl, the ipfs config commands

  receipt verify FILE       check a saved receipt offline: its evidence against the enrolled stick
                            and the release, its signature against the result key that boot measured

  release build DRAFT       sign a manifest naming the built images and write the release bundle
                            (images, manifest, reference measurements)
  release verify DIR        check a bundle with the governance public key alone
  release translate [DRAFT] --modules DIR
                            translate the actors the draft marks native (or every module in DIR)
                            to Go for a stick image built with BUILD_TAGS=native (make release)

Run 'teactl GROUP COMMAND --help' for a command's flags.
--json prints results as JSON for scripts.

Exit status: 0 success, 1 a check failed, 2 usage error, 3 file or network error.
`

type env struct {
	stdout, stderr io.Writer
	json           bool
}

// run is teactl with its arguments and streams: the tests call it.
func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) > 0 && args[0] == "--json" {
		e.json = true
		args = args[1:]
	}
	if len(args) < 2 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return exitOK
		}
		return exitUsage
	}
	cmds := map[string]func(*env, []string) error{
		"key generate":      keyGenerate,
		"key public":        keyPublic,
		"manifest new":      manifestNew,
		"manifest add":      manifestAdd,
		"manifest sign":     manifestSign,
		"manifest verify":   manifestVerify,
		"manifest show":     manifestShow,
		"actor publish":     actorPublish,
		"actor invoke":      actorInvoke,
		"stick enroll":      stickEnroll,
		"stick attest":      stickAttest,
		"stick upgrade":     stickUpgrade,
		"stick find":        stickFind,
		"box setup":         boxSetup,
		"receipt verify":    receiptVerify,
		"release build":     releaseBuild,
		"release verify":    releaseVerify,
		"release translate": releaseTranslate,
	}
	cmd, ok := cmds[args[0]+" "+args[1]]
	if !ok {
		fmt.Fprintf(stderr, "teactl: unknown command %q\n\n%s", args[0]+" "+args[1], usage)
		return exitUsage
	}
	err := cmd(e, args[2:])
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "teactl: %v\n", err)
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitIO
}

// flags returns a flag set for a command that reports errors as usage
// errors and prints its help to stderr.
func (e *env) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: teactl %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErr("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// result prints v as JSON in --json mode, or text otherwise.
func (e *env) result(v any, text string) {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return
	}
	fmt.Fprint(e.stdout, text)
}

func keyGenerate(e *env, args []string) error {
	fs := e.flags("key generate", "KEYFILE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("key generate takes one KEYFILE")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return ioErr(err)
	}
	f, err := os.OpenFile(pos[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return ioErr(fmt.Errorf("key generate: %w (an existing key is never overwritten)", err))
	}
	if _, err := f.Write(manifest.EncodeKey(priv)); err != nil {
		f.Close()
		os.Remove(pos[0])
		return ioErr(err)
	}
	if err := f.Close(); err != nil {
		return ioErr(err)
	}
	e.result(map[string]string{"file": pos[0], "public_key": hex.EncodeToString(pub), "key_id": manifest.KeyID(pub)},
		fmt.Sprintf("wrote %s (mode 0600)\npublic key %s\nkey id     %s\n", pos[0], hex.EncodeToString(pub), manifest.KeyID(pub)))
	return nil
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, ioErr(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, checkErr(fmt.Errorf("key %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm()))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ioErr(err)
	}
	k, err := manifest.ParseKey(b)
	if err != nil {
		return nil, checkErr(fmt.Errorf("%s is not a teastick governance key", path))
	}
	return k, nil
}

func keyPublic(e *env, args []string) error {
	fs := e.flags("key public", "KEYFILE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("key public takes one KEYFILE")
	}
	k, err := loadKey(pos[0])
	if err != nil {
		return err
	}
	pub := k.Public().(ed25519.PublicKey)
	e.result(map[string]string{"public_key": hex.EncodeToString(pub), "key_id": manifest.KeyID(pub)},
		fmt.Sprintf("public key %s\nkey id     %s\n", hex.EncodeToString(pub), manifest.KeyID(pub)))
	return nil
}

// loadPub reads a public key given as hex or as a file holding hex, or the
// public half of a governance key file.
func loadPub(s string) (ed25519.PublicKey, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	if k, err := loadKey(s); err == nil {
		return k.Public().(ed25519.PublicKey), nil
	}
	raw, err := os.ReadFile(s)
	if err != nil {
		return nil, usageErr("--pub %q is neither a hex public key nor a readable file", s)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, checkErr(fmt.Errorf("%s does not hold a hex Ed25519 public key", s))
	}
	return b, nil
}

func fileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", ioErr(err)
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:]), nil
}

func readDraft(path string) (*manifest.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ioErr(err)
	}
	var m manifest.Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, checkErr(fmt.Errorf("%s: not a manifest draft: %v", path, err))
	}
	return &m, nil
}

func writeDraft(path string, m *manifest.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ioErr(err)
	}
	return writeFile(path, append(b, '\n'))
}

// writeFile replaces path atomically: a failure leaves the old file.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return ioErr(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return ioErr(err)
	}
	return nil
}

func manifestNew(e *env, args []string) error {
	fs := e.flags("manifest new", "--version N (--stage0 ELF | --stage0-sha256 HEX) (--stick ELF | --stick-sha256 HEX) -o DRAFT")
	version := fs.Uint64("version", 0, "release version (greater than the sticks' current one)")
	stage0 := fs.String("stage0", "", "stage 0 ELF image, to take its digest")
	stage0Sum := fs.String("stage0-sha256", "", "stage 0 digest, hex")
	stick := fs.String("stick", "", "stick ELF image, to take its digest")
	stickSum := fs.String("stick-sha256", "", "stick digest, hex")
	out := fs.String("o", "", "draft file to write")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" || *version == 0 {
		return usageErr("manifest new needs --version and -o (see --help)")
	}
	m := &manifest.Manifest{Schema: manifest.Schema, Version: *version, Actors: []manifest.Actor{}}
	for _, d := range []struct {
		file, sum string
		dst       *string
		name      string
	}{{*stage0, *stage0Sum, &m.Firmware.Stage0, "stage0"}, {*stick, *stickSum, &m.Firmware.Stick, "stick"}} {
		switch {
		case d.file != "" && d.sum != "":
			return usageErr("give --%s or --%s-sha256, not both", d.name, d.name)
		case d.file != "":
			if *d.dst, err = fileDigest(d.file); err != nil {
				return err
			}
		case d.sum != "":
			*d.dst = strings.ToLower(d.sum)
		default:
			return usageErr("manifest new needs --%s or --%s-sha256", d.name, d.name)
		}
	}
	if err := m.Validate(); err != nil {
		return checkErr(err)
	}
	if err := writeDraft(*out, m); err != nil {
		return err
	}
	e.result(m, fmt.Sprintf("wrote draft %s (version %d, no actors yet)\n", *out, m.Version))
	return nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func manifestAdd(e *env, args []string) error {
	fs := e.flags("manifest add", "DRAFT --name NAME --cid CID [--grant G]... [--native] [limits]")
	name := fs.String("name", "", "actor name")
	c := fs.String("cid", "", "CID of the actor's WebAssembly module (teactl actor publish prints it)")
	var grants multi
	fs.Var(&grants, "grant", "capability to grant (repeat for more)")
	native := fs.Bool("native", false, "run it natively: make release translates it into the stick image")
	var l manifest.Limits
	fs.Func("memory-pages", "linear memory limit in 64 KiB pages", uintFlag(&l.MemoryPages))
	fs.Func("timeout-ms", "deadline per invocation", uintFlag(&l.TimeoutMillis))
	fs.Func("max-request", "largest request in bytes", uintFlag(&l.MaxRequest))
	fs.Func("max-response", "largest response in bytes", uintFlag(&l.MaxResponse))
	fs.Func("max-concurrent", "most calls at once", uintFlag(&l.MaxConcurrent))
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *name == "" || *c == "" {
		return usageErr("manifest add needs DRAFT, --name and --cid (see --help)")
	}
	m, err := readDraft(pos[0])
	if err != nil {
		return err
	}
	if _, dup := m.Actor(*name); dup {
		return checkErr(fmt.Errorf("actor %q is already in %s", *name, pos[0]))
	}
	g := slices.Clone([]string(grants))
	slices.Sort(g)
	g = slices.Compact(g)
	if g == nil {
		g = []string{}
	}
	m.Actors = append(m.Actors, manifest.Actor{Name: *name, CID: *c, Native: *native, Grants: g, Limits: l})
	if err := m.Validate(); err != nil {
		return checkErr(err)
	}
	if err := writeDraft(pos[0], m); err != nil {
		return err
	}
	how := ""
	if *native {
		how = ", native"
	}
	e.result(m, fmt.Sprintf("added %s (%s%s) to %s with grants [%s]\n", *name, *c, how, pos[0], strings.Join(g, " ")))
	return nil
}

func uintFlag(dst *uint32) func(string) error {
	return func(s string) error {
		var v uint64
		if _, err := fmt.Sscan(s, &v); err != nil || v > 1<<32-1 {
			return fmt.Errorf("not a 32-bit unsigned number: %q", s)
		}
		*dst = uint32(v)
		return nil
	}
}

func manifestSign(e *env, args []string) error {
	fs := e.flags("manifest sign", "DRAFT --key KEYFILE -o MANIFEST")
	keyFile := fs.String("key", "", "governance key file")
	out := fs.String("o", "", "signed manifest to write")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyFile == "" || *out == "" {
		return usageErr("manifest sign needs DRAFT, --key and -o")
	}
	m, err := readDraft(pos[0])
	if err != nil {
		return err
	}
	k, err := loadKey(*keyFile)
	if err != nil {
		return err
	}
	b, err := manifest.Sign(m, k)
	if err != nil {
		return checkErr(err)
	}
	if err := writeFile(*out, b); err != nil {
		return err
	}
	pub := k.Public().(ed25519.PublicKey)
	e.result(map[string]any{"file": *out, "version": m.Version, "key_id": manifest.KeyID(pub)},
		fmt.Sprintf("signed %s: version %d, %d actors, key %s\n", *out, m.Version, len(m.Actors), manifest.KeyID(pub)))
	return nil
}

func manifestVerify(e *env, args []string) error {
	fs := e.flags("manifest verify", "MANIFEST --pub PUBKEY")
	var pubs multi
	fs.Var(&pubs, "pub", "trusted governance public key: hex, a file holding hex, or a key file (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(pubs) == 0 {
		return usageErr("manifest verify needs MANIFEST and --pub")
	}
	var trusted []ed25519.PublicKey
	for _, p := range pubs {
		k, err := loadPub(p)
		if err != nil {
			return err
		}
		trusted = append(trusted, k)
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return ioErr(err)
	}
	m, err := manifest.Verify(b, trusted...)
	if err != nil {
		e.result(map[string]any{"file": pos[0], "valid": false, "error": err.Error()}, "")
		return checkErr(err)
	}
	e.result(map[string]any{"file": pos[0], "valid": true, "version": m.Version},
		fmt.Sprintf("%s: valid, version %d, %d actors\n", pos[0], m.Version, len(m.Actors)))
	return nil
}

func manifestShow(e *env, args []string) error {
	fs := e.flags("manifest show", "FILE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("manifest show takes one FILE")
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return ioErr(err)
	}
	status := "draft (unsigned)"
	m, sig, _, perr := manifest.Parse(b)
	if perr == nil {
		status = "signed by key " + sig.Key + " (signature not checked: use manifest verify)"
	} else if m, err = readDraft(pos[0]); err != nil {
		return checkErr(fmt.Errorf("%s: %v", pos[0], perr))
	}
	if e.json {
		e.result(map[string]any{"status": status, "manifest": m}, "")
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %s\n", pos[0], status)
	fmt.Fprintf(&sb, "version  %d\n", m.Version)
	fmt.Fprintf(&sb, "stage0   sha256:%s\n", m.Firmware.Stage0)
	fmt.Fprintf(&sb, "stick    sha256:%s\n", m.Firmware.Stick)
	for _, a := range m.Actors {
		fmt.Fprintf(&sb, "actor    %s %s grants [%s]", a.Name, a.CID, strings.Join(a.Grants, " "))
		if a.Limits != (manifest.Limits{}) {
			fmt.Fprintf(&sb, " limits pages=%d timeout=%dms request=%d response=%d concurrent=%d",
				a.Limits.MemoryPages, a.Limits.TimeoutMillis, a.Limits.MaxRequest, a.Limits.MaxResponse, a.Limits.MaxConcurrent)
		}
		sb.WriteString("\n")
	}
	e.result(nil, sb.String())
	return nil
}
