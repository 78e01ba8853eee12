package qemu

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/apibench"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/channel"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
)

// BenchmarkAPIInvokeOnStick prices an invocation through the API on the
// stick itself: stage 0 and a benchmark build of the stick (tag benchnoop,
// which adds core.NoopHandler) under QEMU with a provisioned swtpm and a
// real kubo node, given a manifest with the echo actor. From the host, over
// the pinned channel and QEMU's port forward, it alternates invoking echo
// (interpreter, signed receipt) with the no-op request, 64 bytes of payload
// each (apibench), and reports both and their ratio (the budget:
// at most 1.5).
func BenchmarkAPIInvokeOnStick(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("QEMU API benchmark SKIPPED: %s", why)
	}
	ctx := context.Background()
	apiInvokeOnStick(b, buildImages(b, ctx, "bench", "benchnoop"), false)
}

// BenchmarkNativeAPIInvokeOnStick is BenchmarkAPIInvokeOnStick with echo
// translated and compiled into the image (NativeImage) and marked native
// in the manifest: the same figures, echo served natively.
func BenchmarkNativeAPIInvokeOnStick(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("QEMU API benchmark SKIPPED: %s", why)
	}
	ctx := context.Background()
	bld, _ := NativeImage(b, ctx, Build{Dir: b.TempDir(), Version: "bench", Tags: "benchnoop",
		GovernanceKey: hex.EncodeToString(testGovernance.Public().(ed25519.PublicKey))}, "echo")
	apiInvokeOnStick(b, buildImagesFrom(b, ctx, bld), true)
}

// apiInvokeOnStick is the API benchmark on the images img; native marks
// echo native in the manifest.
func apiInvokeOnStick(b *testing.B, img attestImages, native bool) {
	ctx := context.Background()
	node := kubotest.Start(b)
	echo := node.Publish(b, actortest.GoActor(b, "echo")).String()
	signed := signManifest(b, 1, img.stage0Sum, img.stickSum, manifest.Actor{Name: "echo", CID: echo, Native: native})
	const n = 100
	keyLine := regexp.MustCompile(`^channel: key sha256:([0-9a-f]{64})$`)
	for b.Loop() {
		tpm, _ := provisionedTPM(b, ctx)
		port, err := FreePort()
		if err != nil {
			b.Fatal(err)
		}
		digest := make(chan string, 1)
		var res apibench.Result
		problem := make(chan error, 1)
		session := func(typeIn func(string)) {
			defer typeIn("halt\n")
			problem <- func() error {
				var pin [32]byte
				select {
				case d := <-digest:
					hex.Decode(pin[:], []byte(d))
				case <-time.After(time.Minute):
					return fmt.Errorf("no channel key line")
				}
				url := fmt.Sprintf("https://127.0.0.1:%d", port)
				c := &client.Client{URL: url, Timeout: 2 * time.Minute, UpgradeTimeout: 10 * time.Minute}
				c.Pin(pin)
				resp, err := c.Manifest(ctx, signed)
				if err != nil || !resp.Status.Ready {
					return fmt.Errorf("manifest: %+v %v", resp, err)
				}
				for _, a := range resp.Status.Actors {
					b.Logf("echo runs on %s", a.Engine)
				}
				hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: channel.ClientConfig(pin),
					TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
				r := apibench.Runner{HTTP: hc, URL: url, NoopPath: core.NoopPath, Actor: "echo", Op: "echo",
					Payload: []byte(strings.Repeat("x", 64))}
				res, err = r.Run(ctx, n)
				return err
			}()
		}
		_, err = Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm, HTTPPort: port,
			BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "manifest: none yet",
			Interact: func(line string) string {
				if m := keyLine.FindStringSubmatch(line); m != nil {
					digest <- m[1]
				}
				return ""
			},
			Session: session}.Run(ctx, 20*time.Minute, nil)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case err := <-problem:
			if err != nil {
				b.Fatal(err)
			}
		default:
			b.Fatal("the API session did not finish")
		}
		b.ReportMetric(res.PerOp(res.Echo)/1e3, "echo-ms/op")
		b.ReportMetric(res.PerOp(res.Noop)/1e3, "noop-ms/op")
		b.ReportMetric(res.Ratio(), "echo/noop")
	}
}
