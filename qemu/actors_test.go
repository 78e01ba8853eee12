package qemu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/netstack/ipfs/kubotest"
	"github.com/teastick/teastick/runtime/actortest"
)

// TestActorsOnStick boots stage 0 and the stick with a provisioned swtpm
// and a real kubo node as the box, then has the stick fetch the example
// actors by CID, measure them and run them on bare metal with wazero's
// interpreter.
func TestActorsOnStick(t *testing.T) {
	if why := CompilerMissing(root); why != "" {
		t.Skipf("QEMU actor test SKIPPED: %s", why)
	}
	dir, err := os.MkdirTemp("", "teastick-actors-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := Build{Root: root, Dir: dir, Version: "actor-test"}
	stick, err := b.Image(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	container, err := WrapStick(stick, dir)
	if err != nil {
		t.Fatal(err)
	}
	node := kubotest.Start(t)
	cl := &ipfs.Client{Gateway: node.Gateway, API: node.API}
	put := func(data []byte) string {
		c, blocks := ipfs.Add(data)
		for _, b := range blocks {
			if _, err := cl.Put(context.Background(), b.CID.Type(), b.Data); err != nil {
				t.Fatal(err)
			}
		}
		return c.String()
	}
	echo := put(actortest.GoActor(t, "echo"))
	notary := put(actortest.GoActor(t, "notary"))
	wc := put(actortest.GoActor(t, "wordcount"))
	data := put([]byte(strings.Repeat("stick reads box data\n", 500)))
	input := strings.Join([]string{
		"load echo " + echo + " log",
		"invoke echo echo hello from qemu",
		"load notary " + notary + " crypto.sha256",
		"invoke notary hash abc",
		"load wordcount " + wc + " ipfs.cat",
		"invoke wordcount count " + data,
		"actors",
		"halt",
	}, "\n") + "\n"
	res, err := Machine{Kernel: b.Stage0(), StickImage: container, TPM: startTPM(t, true),
		BoxGateway: strings.TrimPrefix(node.Gateway, "http://"), InputAfter: "https on :80",
		Input: input}.Run(context.Background(), 15*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`^load: echo ` + echo + ` \d+ bytes, fetched in \d+ ms, loaded in \d+ ms \(interpreter\), measured into PCR 10, grants \[log\]$`,
		`^invoke: echo\.echo 15 bytes in \d+ us: hello from qemu$`,
		`^load: notary ` + notary + ` .*\(interpreter\)`,
		// SHA-256("abc")
		`^invoke: notary\.hash 32 bytes in \d+ us: 0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad$`,
		`^invoke: wordcount\.count \d+ bytes in \d+ us: .*"words":2000`,
		`^actors: 3 served$`,
	} {
		if !matchLine(res, want) {
			t.Errorf("no line matching %q", want)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", res.Console)
	}
	for _, l := range res.Lines {
		if strings.HasPrefix(l.Text, "load: ") || strings.HasPrefix(l.Text, "invoke: ") {
			t.Log(l.Text)
		}
	}
}
