package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/teastick/teastick/tpm/swtpmtest"
)

// SWTPM is a software TPM 2.0 (swtpm) serving one QEMU machine through a
// Unix socket, its state kept in Dir (one directory per stick: the TPM's
// endorsement key and NV contents live there).
type SWTPM struct {
	Dir string
	// Provision runs swtpm_setup on a new state: SHA-256 bank only, EK
	// certificates from a local CA in CADir (default Dir/ca), as the
	// stick's measured boot expects.
	Provision bool
	CADir     string

	cmd  *exec.Cmd
	done chan error
}

// Socket is the control socket QEMU's tpm-emulator backend connects to.
func (s *SWTPM) Socket() string { return filepath.Join(s.Dir, "swtpm.sock") }

// Start runs swtpm in the background. QEMU sends it the power-on and
// resets it at machine start; the firmware sends TPM2_Startup.
func (s *SWTPM) Start(ctx context.Context) error {
	if _, err := exec.LookPath("swtpm"); err != nil {
		return fmt.Errorf("qemu: swtpm not found (Debian package swtpm; `make deps` installs it): %w", err)
	}
	if strings.ContainsRune(s.Dir, ',') {
		return fmt.Errorf("qemu: swtpm state directory %q: swtpm's options cannot carry a comma in a path", s.Dir)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("qemu: swtpm state: %w", err)
	}
	if s.Provision {
		if _, err := os.Stat(filepath.Join(s.Dir, "tpm2-00.permall")); os.IsNotExist(err) {
			ca := s.CADir
			if ca == "" {
				ca = filepath.Join(s.Dir, "ca")
			}
			if err := swtpmtest.Provision(s.Dir, ca); err != nil {
				return fmt.Errorf("qemu: %w", err)
			}
		}
	}
	os.Remove(s.Socket())
	s.cmd = exec.CommandContext(ctx, "swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+s.Dir,
		"--ctrl", "type=unixio,path="+s.Socket(),
		"--log", "file="+filepath.Join(s.Dir, "swtpm.log")+",level=1",
		"--terminate")
	s.cmd.WaitDelay = time.Second
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("qemu: start swtpm: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(s.Socket()); err == nil {
			return nil
		}
		select {
		case err := <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "swtpm.log"))
			return fmt.Errorf("qemu: swtpm exited: %v: %s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Stop()
	return errors.New("qemu: swtpm did not create its socket")
}

// Stop ends swtpm.
func (s *SWTPM) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Args are QEMU's arguments attaching the TPM as the arm virt machine's
// tpm-tis-device (on the platform bus at 0x0c000000 when it is the first
// dynamic device).
func (s *SWTPM) Args() []string {
	return []string{
		"-chardev", "socket,id=chrtpm,path=" + qemuEscape(s.Socket()),
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis-device,tpmdev=tpm0",
	}
}
