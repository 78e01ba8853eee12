//go:build !tamago

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/stick/hostedtest"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/qemu"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// TestMain removes the hosted sticks the tests built.
func TestMain(m *testing.M) { hostedtest.Main(m) }

// hostedStick builds the hosted stick once, as `go build` does for users.
func hostedStick(t *testing.T) string { return hostedtest.Build(t, "hosted-test") }

// runHosted runs the hosted stick and feeds each stdout line to answer,
// typing what it returns, until the stick exits.
func runHosted(t *testing.T, args []string, answer func(string) string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostedStick(t), append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var console strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		console.WriteString(line + "\n")
		if a := answer(line); a != "" {
			io.WriteString(stdin, a)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hosted stick: %v; console:\n%s", err, console.String())
	}
	return console.String()
}

func TestHostedAttestation(t *testing.T) {
	caDir := t.TempDir()
	srv := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: caDir})
	bundle, err := swtpmtest.CABundle(caDir)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)

	bin := hostedStick(t)
	image, _ := os.ReadFile(bin)
	sum := sha256.Sum256(image)
	gov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	signed, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: 1,
		Firmware: manifest.Firmware{Stage0: hex.EncodeToString(make([]byte, 32)), Stick: hex.EncodeToString(sum[:])}}, gov)
	if err != nil {
		t.Fatal(err)
	}
	config := []byte("version=hosted-test\nboard=linux-hosted\n")
	nonce := sha256.Sum256([]byte(time.Now().String()))
	v := &qemu.ConsoleVerifier{Manifest: signed, Roots: roots, Nonce: nonce[:],
		Reference: &verify.Reference{Events: verify.BootEvents(sum, config, signed)}}
	console := runHosted(t, []string{"-tpm", srv.Socket, "-governance-key", hex.EncodeToString(gov.Public().(ed25519.PublicKey))}, v.Line)
	for _, p := range v.Problems {
		t.Error(p)
	}
	if v.Verdict == nil {
		t.Fatalf("no attestation; console:\n%s", console)
	}
	if !v.Verdict.OK() {
		t.Fatalf("verdict:\n%s", v.Verdict)
	}
	if v.Stale.OK() {
		t.Fatal("evidence verified against a replayed nonce")
	}
}

func TestHostedFailsClosed(t *testing.T) {
	gov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	tests := []struct {
		name string
		args func(t *testing.T) []string
		want []string
	}{
		{"no TPM", func(*testing.T) []string { return nil }, []string{
			"tpm: NOT MEASURED: no TPM (start the hosted stick with -tpm): serving no actors",
			"manifest: refused: not measured",
			"attest: refused: no TPM",
		}},
		{"TPM with four PCR banks", func(t *testing.T) []string {
			srv := swtpmtest.Start(t, swtpmtest.Options{})
			return []string{"-tpm", srv.Socket}
		}, []string{
			"tpm: NOT MEASURED: measure: PCR banks other than SHA-256 are active",
			"attest: refused: not measured",
		}},
		{"no governance key", func(t *testing.T) []string {
			srv := swtpmtest.Start(t, swtpmtest.Options{Provision: true})
			return []string{"-tpm", srv.Socket, "-governance-key", ""}
		}, []string{"manifest: refused: this image has no governance key built in"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signed, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: 1,
				Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: strings.Repeat("0", 64)}}, gov)
			if err != nil {
				t.Fatal(err)
			}
			sent := false
			console := runHosted(t, tc.args(t), func(line string) string {
				switch {
				case strings.HasPrefix(line, "channel: key") && !sent:
					sent = true
					return "manifest " + encode(signed) + "\nattest 0011223344556677\nhalt\n"
				}
				return ""
			})
			for _, w := range tc.want {
				if !strings.Contains(console, w) {
					t.Errorf("console lacks %q:\n%s", w, console)
				}
			}
		})
	}
}
