package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	actorexamples "github.com/teastick/teastick/runtime/examples"
)

// examples are the actors a development stick comes up with, and what
// the manifest grants them.
var examples = []struct {
	name   string
	grants []string
}{
	{"echo", []string{"log"}},
	{"notary", []string{"crypto.sha256", "crypto.sign"}},
	{"wordcount", []string{"ipfs.cat"}},
}

// buildExamples builds the example actors into dir as NAME.wasm with the
// host's Go toolchain (GOOS=wasip1, runtime/examples.Build: -trimpath, so
// the bytes and CIDs do not depend on where the repository is).
func buildExamples(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The kernel too: no manifest serves it, but the console's bench
	// command runs it (make qemu NATIVE=1 translates it with the others).
	for _, name := range append(exampleNames(), "kernel") {
		out, err := filepath.Abs(filepath.Join(dir, name+".wasm"))
		if err != nil {
			return err
		}
		if b, err := actorexamples.Build(ctx, "go", "runtime", name, out).CombinedOutput(); err != nil {
			return fmt.Errorf("building the %s actor (run from the repository's root): %v\n%s", name, err, b)
		}
	}
	return nil
}

func exampleNames() []string {
	var n []string
	for _, e := range examples {
		n = append(n, e.name)
	}
	return n
}

// exampleManifest builds the example actors with the host's Go toolchain
// (GOOS=wasip1) into actorsDir (a temporary directory when empty),
// publishes them to the box as teactl does (CID v1, raw leaves), and
// returns a version 1 manifest naming them, marked native when native,
// for the given images, signed with the governance key in keyFile.
func exampleManifest(ctx context.Context, node *kubotest.Node, keyFile, stage0, stick, actorsDir string, native bool) ([]byte, error) {
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	m := &manifest.Manifest{Schema: manifest.Schema, Version: 1}
	for _, f := range []struct {
		path string
		out  *string
	}{{stage0, &m.Firmware.Stage0}, {stick, &m.Firmware.Stick}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		d := sha256.Sum256(b)
		*f.out = hex.EncodeToString(d[:])
	}
	dir := actorsDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "teastick-examples-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	built := true
	for _, e := range examples {
		if _, err := os.Stat(filepath.Join(dir, e.name+".wasm")); err != nil {
			built = false
		}
	}
	if !built {
		if err := buildExamples(ctx, dir); err != nil {
			return nil, err
		}
	}
	box := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	for _, e := range examples {
		code, err := os.ReadFile(filepath.Join(dir, e.name+".wasm"))
		if err != nil {
			return nil, err
		}
		c, blocks := ipfs.Add(code)
		for _, b := range blocks {
			if _, err := box.Put(ctx, b.CID.Type(), b.Data); err != nil {
				return nil, fmt.Errorf("publishing the %s actor: %w", e.name, err)
			}
		}
		fmt.Fprintf(os.Stderr, "teastick-qemu: published actor %s %s (%d bytes)\n", e.name, c, len(code))
		m.Actors = append(m.Actors, manifest.Actor{Name: e.name, CID: c.String(), Grants: e.grants, Native: native})
	}
	return manifest.Sign(m, key)
}

// readKey reads a teactl key file.
func readKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("governance key: %w", err)
	}
	k, err := manifest.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("governance key %s: %w", path, err)
	}
	return k, nil
}

// postManifest waits for the stick's API and hands it the manifest, as an
// operator would with teactl.
func postManifest(ctx context.Context, url string, signed []byte) {
	c := &client.Client{URL: url, Timeout: 5 * time.Second, UpgradeTimeout: 15 * time.Minute}
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Manifest != nil {
			fmt.Fprintf(os.Stderr, "teastick-qemu: the stick already runs manifest version %d\n", st.Manifest.Version)
			return
		}
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	fmt.Fprintf(os.Stderr, "teastick-qemu: the stick's API answers at %s (channel key sha256:%x); posting manifest version 1\n", url, client.KeyDigest(c.PeerKey()))
	r, err := c.Manifest(ctx, signed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "teastick-qemu: manifest refused: %v\n", err)
		var ae *client.Error
		if errors.As(err, &ae) && ae.Code == "stale_manifest" {
			// The TPM's rollback counter outlives the stick: this
			// TPM state once accepted a newer manifest.
			fmt.Fprintf(os.Stderr, "teastick-qemu: this software TPM (-tpm-state) accepted a newer manifest before; post that one, or start a new stick: remove the TPM state directory\n")
		}
		return
	}
	for name, why := range r.ActorErrors {
		fmt.Fprintf(os.Stderr, "teastick-qemu: actor %s not served: %s\n", name, why)
	}
}
