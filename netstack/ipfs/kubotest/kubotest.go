// Package kubotest runs a real kubo node, offline and on loopback, with a
// throwaway repository: the box the tests and the QEMU launcher give the
// stick. The binary comes from TEASTICK_KUBO or <repo>/build/tools/ipfs,
// which `make netstack-prep` builds from qemu/kubo.
package kubotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/netstack/ipfs"
)

// ErrNoKubo is returned when the kubo binary is not built.
var ErrNoKubo = errors.New("kubotest: kubo not built (run `make netstack-prep`, or set TEASTICK_KUBO)")

// Node is a running kubo.
type Node struct {
	Repo    string
	API     string // http://127.0.0.1:port
	Gateway string // http://127.0.0.1:port
	cmd     *exec.Cmd
	done    chan error
}

// Binary finds the kubo binary.
func Binary() (string, error) {
	if p := os.Getenv("TEASTICK_KUBO"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "build", "tools", "ipfs")
	if _, err := os.Stat(p); err != nil {
		return "", ErrNoKubo
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Run starts an offline kubo with its repository in repo.
func Run(ctx context.Context, repo string) (*Node, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "IPFS_PATH="+repo)
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubotest: ipfs %v: %v: %s", args, err, out)
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(repo, "config")); err != nil {
		if err := run("init", "--profile", "test", "--empty-repo"); err != nil {
			return nil, err
		}
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	gwPort, err := freePort()
	if err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{
		{"Addresses.API", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", apiPort)},
		{"Addresses.Gateway", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", gwPort)},
	} {
		if err := run("config", kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	if err := run("config", "--json", "Addresses.Swarm", "[]"); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "daemon", "--offline")
	cmd.Env = env
	cmd.WaitDelay = 2 * time.Second
	logFile, _ := os.Create(filepath.Join(repo, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubotest: start daemon: %w", err)
	}
	n := &Node{Repo: repo, API: fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		Gateway: fmt.Sprintf("http://127.0.0.1:%d", gwPort), cmd: cmd, done: make(chan error, 1)}
	go func() { n.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Post(n.API+"/api/v0/id", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		select {
		case err := <-n.done:
			log, _ := os.ReadFile(filepath.Join(repo, "daemon.log"))
			return nil, fmt.Errorf("kubotest: daemon exited: %v: %s", err, log)
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.Stop()
	return nil, errors.New("kubotest: daemon did not answer in 60 s")
}

// Stop ends the daemon.
func (n *Node) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// Start runs a node for a test, stopped at cleanup; the test fails when
// kubo is not built.
func Start(t testing.TB) *Node {
	t.Helper()
	n, err := Run(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

// Publish adds data to the node as teactl publishes an actor (CID v1, raw
// leaves, block by block through the RPC API) and returns the root's CID.
func (n *Node) Publish(t testing.TB, data []byte) cid.Cid {
	t.Helper()
	root, blocks := ipfs.Add(data)
	cl := &ipfs.Client{API: n.API, Gateway: n.Gateway}
	for _, b := range blocks {
		if _, err := cl.Put(context.Background(), b.CID.Type(), b.Data); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
