// Package hostedtest builds and runs the hosted stick (firmware/stick for
// Linux) for tests, as a developer does: `go build`, then the binary with
// its API on a free loopback port.
package hostedtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// Main runs a package's tests (call it from TestMain) and then removes
// the binaries Build made for them.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	for _, bin := range built {
		os.RemoveAll(filepath.Dir(bin))
	}
	mu.Unlock()
	os.Exit(code)
}

// Build builds the hosted stick with main.Version set to version, once
// per version and test binary, and returns the executable's path (in a
// directory Main removes after the tests).
func Build(t testing.TB, version string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if bin, ok := built[version]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "hosted-stick-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "stick")
	out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.Version="+version, "-o", bin,
		"github.com/teastick/teastick/firmware/stick").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("go build of the hosted stick: %v\n%s", err, out)
	}
	built[version] = bin
	return bin
}

// Stick is a hosted stick a test started, its console collected.
type Stick struct {
	// URL is the API's base URL.
	URL string

	t       testing.TB
	cmd     *exec.Cmd
	mu      sync.Mutex
	console strings.Builder
	lines   chan string
}

// Start runs bin with its API on a free loopback port (-listen
// 127.0.0.1:0) and the given arguments, waits for its api: line, and
// stops it when the test ends (printing its console if the test failed).
func Start(t testing.TB, bin string, args ...string) *Stick {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader("")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Stick{t: t, cmd: cmd, lines: make(chan string, 1024)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("stick console:\n%s", s.Console())
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.console.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(s.lines)
	}()
	line := s.WaitFor("api: https://", 30*time.Second)
	s.URL = "https://" + strings.Fields(strings.TrimPrefix(line, "api: https://"))[0]
	return s
}

// Stop ends the stick, as pulling it out would, and waits for it to exit
// (its TPM connection closed).
func (s *Stick) Stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// Console is what the stick printed so far.
func (s *Stick) Console() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.console.String()
}

// WaitFor returns the first console line (from now on) with prefix, and
// fails the test if none comes within d.
func (s *Stick) WaitFor(prefix string, d time.Duration) string {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("stick exited before %q; console:\n%s", prefix, s.Console())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			s.t.Fatalf("no %q within %v; console:\n%s", prefix, d, s.Console())
		}
	}
}
