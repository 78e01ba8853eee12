package qemu

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
)

// spinTimeout is the spinning actor's timeout in the manifest.
const spinTimeout = 2 * time.Second

// spinOnStick boots stage 0 and the stick under QEMU with a provisioned
// swtpm and a real kubo node as the box, hands it a manifest with echo,
// spin (runtime/testdata/spin.wat: __guest_call is `loop br`, no grants,
// 2 s timeout, two calls at once) and crunch (runtime/testdata/crunch.wat,
// a bounded computation), and plays SpinCheck over the API from the host
// and on the console. A stick that stops answering fails the check within
// the check's Wait; the session then kills QEMU, so a hang costs about a
// minute, not the test's timeout.
func spinOnStick(tb testing.TB, echoCalls int) (*SpinReport, *Result, error) {
	tb.Helper()
	ctx := context.Background()
	img := buildImages(tb, ctx, "spin-test", "")
	node := kubotest.Start(tb)
	signed := signManifest(tb, 1, img.stage0Sum, img.stickSum,
		manifest.Actor{Name: "echo", CID: node.Publish(tb, actortest.GoActor(tb, "echo")).String(), Grants: []string{"log"}},
		manifest.Actor{Name: "spin", CID: node.Publish(tb, actortest.Wat(tb, "spin")).String(),
			Limits: manifest.Limits{TimeoutMillis: uint32(spinTimeout.Milliseconds()), MaxConcurrent: 2}},
		manifest.Actor{Name: "crunch", CID: node.Publish(tb, actortest.Wat(tb, "crunch")).String(),
			Limits: manifest.Limits{TimeoutMillis: 60000, MaxConcurrent: 1}},
	)
	tpm, _ := provisionedTPM(tb, ctx)
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	run, kill := context.WithCancel(ctx)
	defer kill()

	keyLine := regexp.MustCompile(`^channel: key sha256:([0-9a-f]{64})$`)
	digest := make(chan string, 1)
	answers := make(chan string, 64) // console answers
	var heartbeats atomic.Int64
	interact := func(line string) string {
		switch {
		case strings.HasPrefix(line, "heartbeat "):
			heartbeats.Add(1)
		case strings.HasPrefix(line, "console: "):
			select {
			case answers <- line:
			default:
			}
		default:
			if m := keyLine.FindStringSubmatch(line); m != nil {
				digest <- m[1]
			}
		}
		return ""
	}
	type outcome struct {
		rep *SpinReport
		err error
	}
	done := make(chan outcome, 1)
	session := func(typeIn func(string)) {
		var rep *SpinReport
		err := func() error {
			var pin [32]byte
			select {
			case d := <-digest:
				hex.Decode(pin[:], []byte(d))
			case <-time.After(time.Minute):
				return fmt.Errorf("no channel key line")
			}
			c := &client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: 3 * time.Minute, UpgradeTimeout: 5 * time.Minute}
			c.Pin(pin)
			if resp, err := c.Manifest(ctx, signed); err != nil || !resp.Status.Ready || len(resp.ActorErrors) > 0 {
				return fmt.Errorf("manifest: %+v %v", resp, err)
			}
			var typing sync.Mutex
			check := SpinCheck{Client: c, Echo: "echo", Spin: "spin", Crunch: "crunch",
				SpinTimeout: spinTimeout, Spinners: 2, CrunchSteps: 100_000, EchoCalls: echoCalls, Wait: 30 * time.Second,
				Console: func(ctx context.Context, command, prefix string) (string, error) {
					typing.Lock()
					defer typing.Unlock()
					for len(answers) > 0 {
						<-answers
					}
					typeIn(command + "\n")
					for {
						select {
						case l := <-answers:
							if strings.HasPrefix(l, prefix) {
								return l, nil
							}
						case <-ctx.Done():
							return "", ctx.Err()
						}
					}
				},
				Heartbeats: func() int { return int(heartbeats.Load()) },
			}
			cctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			defer cancel()
			var err error
			rep, err = check.Run(cctx)
			return err
		}()
		typeIn("halt\n")
		done <- outcome{rep, err}
		if err != nil {
			// A stick that stopped answering will not halt either.
			time.AfterFunc(5*time.Second, kill)
		}
	}
	res, err := Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm, HTTPPort: port,
		BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "manifest: none yet",
		Interact: interact, Session: session}.Run(run, 8*time.Minute, nil)
	if err != nil {
		return nil, res, err
	}
	select {
	case o := <-done:
		return o.rep, res, o.err
	default:
		return nil, res, fmt.Errorf("the session did not finish")
	}
}

// TestStickSpinningActor is issue 13's first "done when" on the real image
// under QEMU: an actor whose every call loops forever, one that computes
// and echo, served side by side on the stick's one core without
// preemption. Each spin call must end with 504 deadline at its timeout
// while echo, the status and the console keep answering, and the stick
// must serve afterwards. Before Wasm metering the first spin call took the
// core for good: echo, the API and the heartbeat stopped.
func TestStickSpinningActor(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU spinning actor test SKIPPED: %s", why)
	}
	rep, res, err := spinOnStick(t, 10)
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", res.Console)
		}
		if rep != nil {
			t.Logf("so far:\n%s", rep)
		}
		t.Fatal(err)
	}
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "actor: ") || strings.HasPrefix(l.Text, "READY") || strings.HasPrefix(l.Text, "console: uptime") {
			t.Log(l.Text)
		}
	}
	t.Logf("stick under QEMU:\n%s", rep)
}

// BenchmarkEchoWhileSpinning prices echo's latency on the stick under
// QEMU while another actor spins (TestStickSpinningActor's scenario with
// more calls): echo idle, echo while two calls of an actor that loops
// forever are in flight (and crunch computes), and how long each spin call
// took to end with 504 deadline (its timeout is 2 s).
func BenchmarkEchoWhileSpinning(b *testing.B) {
	if why := CompilerMissing(root); why != "" {
		b.Skipf("QEMU spinning actor benchmark SKIPPED: %s", why)
	}
	for b.Loop() {
		rep, res, err := spinOnStick(b, 50)
		if err != nil {
			if res != nil {
				b.Logf("console:\n%s", res.Console)
			}
			b.Fatal(err)
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		_, idle, _ := Stats(rep.EchoIdle)
		_, med, hi := Stats(rep.EchoSpinning)
		_, _, spinMax := Stats(rep.Spins)
		b.ReportMetric(ms(idle), "echo-idle-ms")
		b.ReportMetric(ms(med), "echo-spinning-ms")
		b.ReportMetric(ms(hi), "echo-spinning-max-ms")
		b.ReportMetric(ms(spinMax), "spin-to-deadline-max-ms")
		b.ReportMetric(ms(rep.ConsoleWait), "console-ms")
		b.Logf("\n%s", rep)
	}
}
