package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// TestReadmeWalkthrough runs the README's operator walk-through as
// written: every teactl line through teactl itself, the stick's boot line
// as the hosted stick, against a real kubo node and swtpm.
func TestReadmeWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte("<!-- walkthrough -->\n```sh\n"))
	if !ok {
		t.Fatal("README has no walk-through block")
	}
	block, _, _ := bytes.Cut(after, []byte("```"))

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "echo.wasm"), actortest.GoActor(t, "echo"), 0o644)
	os.WriteFile(filepath.Join(dir, "echo2.wasm"), actortest.Wat(t, "edge"), 0o644)
	node := kubotest.Start(t)
	img, _ := os.ReadFile(hostedStick(t))
	sum := sha256.Sum256(img)
	ca := t.TempDir()
	vars := map[string]string{"BOX": node.Gateway, "BOX_API": node.API,
		"STAGE0_SHA256": strings.Repeat("0", 64), "STICK_SHA256": hex.EncodeToString(sum[:])}
	vars["TPM"] = "swtpm.sock" // dropped below: startStick gives the stick its own swtpm
	t.Chdir(dir)               // teactl resolves relative paths from here

	expand := regexp.MustCompile(`\$[A-Z0-9_]+`)
	ran := 0
	for _, line := range strings.Split(string(block), "\n") {
		cmd, capture, _ := strings.Cut(line, "# -> ")
		cmd = strings.TrimSpace(cmd)
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			continue
		}
		args := splitArgs(expand.ReplaceAllStringFunc(cmd, func(v string) string {
			val, ok := vars[v[1:]]
			if !ok {
				t.Fatalf("%q: $%s is not set by the walk-through or the test", cmd, v[1:])
			}
			return val
		}))
		switch {
		case args[0] == "teactl":
			r := teactl(args[1:]...)
			if r.code != 0 {
				t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", cmd, r.code, r.stdout, r.stderr)
			}
			if capture = strings.TrimSpace(capture); capture != "" {
				vars[capture] = strings.TrimSpace(r.stdout)
			}
			if args[1] == "key" && args[2] == "generate" {
				var pub struct {
					PublicKey string `json:"public_key"`
				}
				json.Unmarshal([]byte(teactl("--json", "key", "public", args[3]).stdout), &pub)
				vars["GOV_PUB"] = pub.PublicKey
			}
		case strings.Join(args[:3], " ") == "go run ./firmware/stick":
			var stickArgs []string
			for i := 3; i < len(args); i++ {
				if args[i] == "-tpm" { // startStick gives the stick its own swtpm
					i++
					continue
				}
				stickArgs = append(stickArgs, args[i])
			}
			vars["STICK"] = startStick(t, ca, stickArgs...)
			b, err := swtpmtest.CABundle(ca)
			if err != nil {
				t.Fatal(err)
			}
			vars["CA"] = filepath.Join(dir, "ca.pem")
			os.WriteFile(vars["CA"], b, 0o644)
		default:
			t.Fatalf("the walk-through has a line the test cannot run: %q", cmd)
		}
		ran++
	}
	if ran < 10 {
		t.Fatalf("ran only %d lines of the walk-through", ran)
	}
}

// splitArgs splits a command line on spaces, keeping "double-quoted"
// words whole.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, started := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, started = !quoted, true
		case r == ' ' && !quoted:
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}
