package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// BenchmarkStickAttest times `teactl stick attest` end to end against a
// hosted stick (status, nonce, quote and event log over HTTPS, every
// verification) and reports it as a ratio to a bare TPM2_Quote of the same
// PCRs on a swtpm provisioned the same way, alternated in one run.
func BenchmarkStickAttest(b *testing.B) {
	dir := b.TempDir()
	node := kubotest.Start(b)
	gov := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	os.WriteFile(filepath.Join(dir, "gov.key"), manifest.EncodeKey(gov), 0o600)
	img, err := os.ReadFile(hostedStick(b))
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(img)
	signed, err := manifest.Sign(&manifest.Manifest{Schema: manifest.Schema, Version: 1,
		Firmware: manifest.Firmware{Stage0: strings.Repeat("0", 64), Stick: hex.EncodeToString(sum[:])}}, gov)
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "v1.json"), signed, 0o644)
	ca := b.TempDir()
	url := startStick(b, ca, "-governance-key", hex.EncodeToString(gov.Public().(ed25519.PublicKey)),
		"-box", node.Gateway, "-box-api", node.API, "-manifest", filepath.Join(dir, "v1.json"))
	bundle, _ := swtpmtest.CABundle(ca)
	os.WriteFile(filepath.Join(dir, "ca.pem"), bundle, 0o644)
	if r := teactl("stick", "enroll", url, "--ca", filepath.Join(dir, "ca.pem"), "-o", filepath.Join(dir, "id.json")); r.code != 0 {
		b.Fatalf("enroll: %+v", r)
	}
	bare := &attest.Attester{TPM: swtpmtest.Start(b, swtpmtest.Options{Provision: true}).OpenT(b)}
	q := attest.QualifyingData([]byte("nonce"), []byte("channel key"))
	if _, _, err := bare.Quote(q, measure.PlanPCRs()); err != nil { // loads the AK
		b.Fatal(err)
	}
	var tq, ta time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := bare.Quote(q, measure.PlanPCRs()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if r := teactl("stick", "attest", url, "--identity", filepath.Join(dir, "id.json"), "--pub", filepath.Join(dir, "gov.key")); r.code != 0 {
			b.Fatalf("attest: %+v", r)
		}
		ta += time.Since(t1)
		tq += t1.Sub(t0)
	}
	b.ReportMetric(float64(tq.Microseconds())/float64(b.N), "quote-us/op")
	b.ReportMetric(float64(ta.Microseconds())/float64(b.N), "attest-us/op")
	b.ReportMetric(float64(ta)/float64(tq), "attest/quote")
}

// BenchmarkPublish times `teactl actor publish` of a 1 MiB actor (the edge
// fixture padded with a custom section) to a real kubo node.
func BenchmarkPublish(b *testing.B) {
	node := kubotest.Start(b)
	module := actortest.Wat(b, "edge")
	pad := 1<<20 - len(module) - 8
	// A custom section: id 0, size, name "pad", then the padding.
	body := append([]byte{3, 'p', 'a', 'd'}, make([]byte, pad)...)
	module = append(module, 0)
	module = appendLEB(module, uint64(len(body)))
	module = append(module, body...)
	file := filepath.Join(b.TempDir(), "big.wasm")
	os.WriteFile(file, module, 0o644)
	b.SetBytes(int64(len(module)))
	for i := 0; b.Loop(); i++ {
		// A different CID each time, so kubo never has the blocks already.
		binaryPutUint32(body[4:], uint32(i))
		module = append(module[:len(module)-len(body)], body...)
		os.WriteFile(file, module, 0o644)
		if r := teactl("actor", "publish", file, "--box-api", node.API); r.code != 0 {
			b.Fatalf("publish: %+v", r)
		}
	}
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func binaryPutUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
