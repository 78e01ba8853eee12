package qemu

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core"
	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
)

// TestStickStalledActor is issue 13's stalled boot on the real image under
// QEMU: the box withholds one actor's blocks (a FAULT-INJECTION gateway in
// front of kubo that answers nothing for that CID), listed first in the
// manifest. echo, listed after it, must come up and answer while the
// stalled actor is still loading; once the box lets the blocks through,
// the stalled actor serves too and the stick prints READY. Before, the
// stick loaded one actor at a time over a single guestfwd stream, so echo
// waited behind the stalled fetch for its minute and answered 503.
func TestStickStalledActor(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU stalled actor test SKIPPED: %s", why)
	}
	ctx := context.Background()
	img := buildImages(t, ctx, "stall-test", "")
	node := kubotest.Start(t)
	slow := node.Publish(t, actortest.Wat(t, "spin")).String()
	echo := node.Publish(t, actortest.GoActor(t, "echo")).String()
	signed := signManifest(t, 1, img.stage0Sum, img.stickSum,
		manifest.Actor{Name: "slow", CID: slow},
		manifest.Actor{Name: "echo", CID: echo, Grants: []string{"log"}})
	gateway, release := node.Stalling(t, slow)
	tpm, _ := provisionedTPM(t, ctx)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	run, kill := context.WithCancel(ctx)
	defer kill()

	keyLine := regexp.MustCompile(`^channel: key sha256:([0-9a-f]{64})$`)
	digest := make(chan string, 1)
	interact := func(line string) string {
		if m := keyLine.FindStringSubmatch(line); m != nil {
			digest <- m[1]
		}
		return ""
	}
	done := make(chan error, 1)
	session := func(typeIn func(string)) {
		err := func() error {
			var pin [32]byte
			select {
			case d := <-digest:
				hex.Decode(pin[:], []byte(d))
			case <-time.After(time.Minute):
				return fmt.Errorf("no channel key line")
			}
			c := &client.Client{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Timeout: time.Minute, UpgradeTimeout: 5 * time.Minute}
			c.Pin(pin)
			// The boot manifest's answer waits for every actor's first
			// try, the stalled one's included: post it aside.
			posted := make(chan error, 1)
			go func() {
				resp, err := c.Manifest(ctx, signed)
				if err == nil && (!resp.Status.Ready || len(resp.ActorErrors) > 0) {
					err = fmt.Errorf("boot manifest answered %+v", resp)
				}
				posted <- err
			}()
			// echo serves while the box withholds slow's blocks.
			deadline := time.Now().Add(45 * time.Second)
			for {
				st, err := c.Status(ctx)
				if err == nil && actorState(st, "echo") == core.StateServing {
					if s := actorState(st, "slow"); s != core.StateLoading {
						return fmt.Errorf("echo serves, but the stalled actor is %q, not loading", s)
					}
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("echo not serving 45 s after the manifest while the box stalls another actor (status %+v, %v)", st, err)
				}
				time.Sleep(250 * time.Millisecond)
			}
			res, err := c.Invoke(ctx, "echo", "echo", []byte("while slow stalls"))
			if err != nil || string(res.Output) != "while slow stalls" {
				return fmt.Errorf("echo while the box stalls slow: %v %v", res, err)
			}
			if st, err := c.Status(ctx); err != nil || actorState(st, "slow") != core.StateLoading {
				return fmt.Errorf("after echo answered, slow is %q (%v), want still loading", actorState(st, "slow"), err)
			}
			release()
			select {
			case err := <-posted:
				if err != nil {
					return err
				}
			case <-time.After(2 * time.Minute):
				return fmt.Errorf("no READY within 2 minutes of the box letting slow's blocks through")
			}
			st, err := c.Status(ctx)
			if err != nil || actorState(st, "slow") != core.StateServing {
				return fmt.Errorf("after READY slow is %q (%v)", actorState(st, "slow"), err)
			}
			return nil
		}()
		typeIn("halt\n")
		done <- err
		if err != nil {
			time.AfterFunc(5*time.Second, kill)
		}
	}
	res, err := Machine{Kernel: img.build.Stage0(), StickImage: img.container, TPM: tpm, HTTPPort: port,
		BoxGateway: strings.TrimPrefix(gateway, "http://"), InputAfter: "manifest: none yet",
		Interact: interact, Session: session}.Run(run, 6*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	select {
	case serr = <-done:
	default:
		serr = fmt.Errorf("the session did not finish")
	}
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "actor: ") || strings.HasPrefix(l.Text, "READY") {
			t.Logf("%8.1f s  %s", l.At.Seconds(), l.Text)
		}
	}
	if serr != nil {
		t.Logf("console:\n%s", res.Console)
		t.Fatal(serr)
	}
}

// actorState is name's state in st, or "" when st does not list it.
func actorState(st *core.Status, name string) string {
	if st == nil {
		return ""
	}
	for _, a := range st.Actors {
		if a.Name == name {
			return a.State
		}
	}
	return ""
}
