//go:build !tamago

package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teastick/teastick/firmware/core/client"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/qemu"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/swtpmtest"
)

// consoleStick is a hosted stick whose console (stdin) a test types into.
type consoleStick struct {
	url        string
	stdin      io.Writer
	mu         sync.Mutex
	console    strings.Builder
	heartbeats atomic.Int64
	lines      chan string // console answers and the READY, api: and channel: lines
}

// startConsoleStick runs the hosted stick with its API on a free loopback
// port and its console on a pipe, and stops it when the test ends.
func startConsoleStick(t *testing.T, args ...string) *consoleStick {
	t.Helper()
	cmd := exec.Command(hostedStick(t), append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &consoleStick{stdin: stdin, lines: make(chan string, 1024)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("stick console:\n%s", s.console.String())
			s.mu.Unlock()
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l := sc.Text()
			s.mu.Lock()
			s.console.WriteString(l + "\n")
			s.mu.Unlock()
			if strings.HasPrefix(l, "heartbeat ") {
				s.heartbeats.Add(1)
				continue
			}
			select {
			case s.lines <- l:
			default:
			}
		}
		close(s.lines)
	}()
	l := s.waitFor(t, context.Background(), "api: https://", 30*time.Second)
	s.url = "https://" + strings.Fields(strings.TrimPrefix(l, "api: https://"))[0]
	return s
}

// waitFor returns the next line starting with prefix, failing the test
// when none comes within d.
func (s *consoleStick) waitFor(t *testing.T, ctx context.Context, prefix string, d time.Duration) string {
	t.Helper()
	l, err := s.next(ctx, prefix, d)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *consoleStick) next(ctx context.Context, prefix string, d time.Duration) (string, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return "", io.ErrUnexpectedEOF
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-deadline.C:
			return "", context.DeadlineExceeded
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// TestHostedSpinningActor is issue 13's check on the hosted stick, as the
// QEMU stick's TestStickSpinningActor: an actor that loops forever (2 s
// timeout, two calls at once, back to back) and one that computes, beside
// echo; every spin call ends with 504 deadline, echo, the status and the
// console keep answering, and the stick serves afterwards. It runs with
// the host's GOMAXPROCS and with one P, like the stick's one core.
func TestHostedSpinningActor(t *testing.T) {
	e := newE2E(t)
	spin := e.node.Publish(t, actortest.Wat(t, "spin")).String()
	crunch := e.node.Publish(t, actortest.Wat(t, "crunch")).String()
	const spinTimeout = 2 * time.Second
	signed := e.manifest(t, 1, e.gov,
		manifest.Actor{Name: "echo", CID: e.echo, Grants: []string{"log"}},
		manifest.Actor{Name: "spin", CID: spin, Limits: manifest.Limits{TimeoutMillis: uint32(spinTimeout.Milliseconds()), MaxConcurrent: 2}},
		manifest.Actor{Name: "crunch", CID: crunch, Limits: manifest.Limits{TimeoutMillis: 60000, MaxConcurrent: 1}},
	)
	file := writeFile(t, signed)
	for _, procs := range []string{"", "1"} {
		name := "GOMAXPROCS=" + procs
		if procs == "" {
			name = "GOMAXPROCS=default"
		}
		t.Run(name, func(t *testing.T) {
			if procs != "" {
				t.Setenv("GOMAXPROCS", procs)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			tpm := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: t.TempDir()})
			st := startConsoleStick(t, "-tpm", tpm.Socket, "-governance-key", hex.EncodeToString(e.gov.Public().(ed25519.PublicKey)),
				"-box", e.node.Gateway, "-box-api", e.node.API, "-manifest", file)
			if l := st.waitFor(t, ctx, "READY:", 2*time.Minute); !strings.HasPrefix(l, "READY: manifest version 1, actors [") || strings.Contains(l, "NOT SERVED") {
				t.Fatalf("READY line: %q", l)
			}
			check := qemu.SpinCheck{
				Client: &client.Client{URL: st.url, Timeout: 2 * time.Minute},
				Echo:   "echo", Spin: "spin", Crunch: "crunch",
				SpinTimeout: spinTimeout, Spinners: 2, CrunchSteps: 50_000_000, EchoCalls: 20, Wait: 30 * time.Second,
				Console: func(ctx context.Context, command, prefix string) (string, error) {
					if _, err := io.WriteString(st.stdin, command+"\n"); err != nil {
						return "", err
					}
					return st.next(ctx, prefix, time.Minute)
				},
				Heartbeats: func() int { return int(st.heartbeats.Load()) },
			}
			rep, err := check.Run(ctx)
			if err != nil {
				t.Fatalf("%v\nso far:\n%s", err, rep)
			}
			t.Logf("hosted stick, %s:\n%s", name, rep)
		})
	}
}
