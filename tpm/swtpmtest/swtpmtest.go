// Package swtpmtest starts and provisions software TPMs (swtpm) for host
// tests and for the QEMU launcher. It is host-only: it runs swtpm and
// swtpm_setup (Debian packages swtpm and swtpm-tools, `make tpm-prep`).
//
// A started swtpm serves TPM commands on a Unix socket in raw TPM byte
// format (a command in, a response out), the framing a TIS FIFO carries too.
package swtpmtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/teastick/teastick/tpm/tpmsock"
)

// ErrMissingTool is returned when swtpm or swtpm_setup is not installed.
var ErrMissingTool = errors.New("swtpmtest: swtpm tools missing (Debian packages swtpm swtpm-tools; run `make tpm-prep`)")

// Options configure one software TPM.
type Options struct {
	// Provision runs swtpm_setup before start: SHA-256 bank only, an RSA
	// and an ECC EK with certificates signed by swtpm's local CA, and a
	// platform certificate. Without it the TPM is fresh: four PCR banks,
	// no EK certificate.
	Provision bool
	// CADir holds the local CA (created on first use). Two TPMs provisioned
	// with the same CADir chain to the same CA. Empty: a CA per TPM, in
	// the state directory.
	CADir string
	// StateDir is where the TPM keeps its state. Empty: a new directory
	// under t.TempDir (Start) or required (Run).
	StateDir string
}

// Provision provisions a TPM state directory with swtpm_setup: SHA-256 PCR
// bank only, EKs with certificates from the local CA kept in caDir, and a
// platform certificate. The CA's certificates are CABundle(caDir).
func Provision(stateDir, caDir string) error {
	if _, err := exec.LookPath("swtpm_setup"); err != nil {
		return fmt.Errorf("%w: %v", ErrMissingTool, err)
	}
	localca, err := exec.LookPath("swtpm_localca")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMissingTool, err)
	}
	for _, d := range []string{stateDir, caDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("swtpmtest: provision: %w", err)
		}
	}
	caDir, err = filepath.Abs(caDir)
	if err != nil {
		return fmt.Errorf("swtpmtest: provision: %w", err)
	}
	cfgDir, err := os.MkdirTemp("", "swtpm-setup")
	if err != nil {
		return fmt.Errorf("swtpmtest: provision: %w", err)
	}
	defer os.RemoveAll(cfgDir)
	files := map[string]string{
		"swtpm-localca.conf":    fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", caDir),
		"swtpm-localca.options": "--platform-manufacturer teastick\n--platform-version 2.1\n--platform-model swtpm\n",
		"swtpm_setup.conf":      fmt.Sprintf("create_certs_tool = %[2]s\ncreate_certs_tool_config = %[1]s/swtpm-localca.conf\ncreate_certs_tool_options = %[1]s/swtpm-localca.options\nactive_pcr_banks = sha256\n", cfgDir, localca),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("swtpmtest: provision: %w", err)
		}
	}
	logFile := filepath.Join(cfgDir, "setup.log")
	cmd := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", stateDir,
		"--pcr-banks", "sha256", "--create-ek-cert", "--create-platform-cert",
		"--overwrite", "--config", filepath.Join(cfgDir, "swtpm_setup.conf"), "--logfile", logFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("swtpmtest: swtpm_setup: %v: %s%s", err, out, log)
	}
	return nil
}

// CABundle returns the PEM certificates of the local CA in caDir (root and
// issuer), the trust anchors for EK certificates it signed.
func CABundle(caDir string) ([]byte, error) {
	var out []byte
	for _, f := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(caDir, f))
		if err != nil {
			return nil, fmt.Errorf("swtpmtest: CA bundle: %w", err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// Server is a running swtpm.
type Server struct {
	StateDir string
	CADir    string
	// Socket is the TPM command socket (raw TPM commands).
	Socket string
	// Ctrl is swtpm's control socket (its own protocol).
	Ctrl string

	sockDir string
	cmd     *exec.Cmd
	done    chan error
	once    sync.Once
}

// Run provisions (if asked) and starts swtpm with opts.StateDir as its state.
// The caller must Stop it.
func Run(ctx context.Context, opts Options) (*Server, error) {
	if _, err := exec.LookPath("swtpm"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMissingTool, err)
	}
	if opts.StateDir == "" {
		return nil, errors.New("swtpmtest: no state directory")
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("swtpmtest: state: %w", err)
	}
	caDir := opts.CADir
	if caDir == "" {
		caDir = filepath.Join(opts.StateDir, "ca")
	}
	if opts.Provision {
		if err := Provision(opts.StateDir, caDir); err != nil {
			return nil, err
		}
	}
	// Unix socket paths are limited to 108 bytes: keep them short.
	sockDir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		return nil, fmt.Errorf("swtpmtest: %w", err)
	}
	s := &Server{StateDir: opts.StateDir, CADir: caDir, sockDir: sockDir,
		Socket: filepath.Join(sockDir, "tpm"), Ctrl: filepath.Join(sockDir, "ctrl")}
	logFile := filepath.Join(opts.StateDir, "swtpm.log")
	s.cmd = exec.CommandContext(ctx, "swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+opts.StateDir,
		"--server", "type=unixio,path="+s.Socket,
		"--ctrl", "type=unixio,path="+s.Ctrl,
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+logFile+",level=1")
	s.cmd.WaitDelay = time.Second
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("swtpmtest: start swtpm: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", s.Socket); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			log, _ := os.ReadFile(logFile)
			os.RemoveAll(sockDir)
			return nil, fmt.Errorf("swtpmtest: swtpm exited: %v: %s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.Stop()
	return nil, errors.New("swtpmtest: swtpm did not open its socket")
}

// Stop ends swtpm and removes its sockets (not its state).
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
		os.RemoveAll(s.sockDir)
	})
}

// CABundle returns the PEM certificates of the CA that signed the TPM's EK
// certificate (only for provisioned TPMs).
func (s *Server) CABundle() ([]byte, error) { return CABundle(s.CADir) }

// Start runs a swtpm for one test, in a state directory under t.TempDir
// unless opts.StateDir says otherwise, and stops it at cleanup. A missing
// tool fails the test with the Debian package that provides it.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	s, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Open connects to the TPM's command socket (tpmsock.Dial).
func (s *Server) Open() (transport.TPMCloser, error) {
	return tpmsock.Dial(s.Socket)
}

// OpenT connects to the TPM for a test and closes the connection at cleanup.
func (s *Server) OpenT(t testing.TB) transport.TPMCloser {
	t.Helper()
	c, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Log returns swtpm's log, for test failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.StateDir, "swtpm.log"))
	return strings.TrimSpace(string(b))
}
