package qemu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs/kubotest"
)

// TestFetchAmplifiedDAGOnStick has the stick (one core, no preemption)
// fetch, from a real kubo, a DAG of a few KB whose nodes link 32 times to
// the next, 6 deep (a walk of 32^6 nodes): the fetch is refused by the
// bound on nodes visited, and the console answers the next command.
func TestFetchAmplifiedDAGOnStick(t *testing.T) {
	img := testImages(t)
	node := kubotest.Start(t)
	root, blocks := kubotest.Amplified(32, 6, []byte{})
	node.Put(t, blocks)
	res, err := Machine{Kernel: img.stick, BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "https on :80",
		Input: "fetch " + root.String() + "\nstatus\n"}.Run(context.Background(), 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !matchLine(res, `^fetch: FAILED: ipfs: limit exceeded: .*more than 65536 nodes visited`) {
		t.Fatalf("the amplified DAG was not refused by the bound on nodes; console:\n%s", res.Console)
	}
	if !matchLine(res, `^console: teastick .* on `) {
		t.Fatalf("the console did not answer after the fetch; console:\n%s", res.Console)
	}
}
