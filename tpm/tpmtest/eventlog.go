package tpmtest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ToolPCRs writes log to a file, runs tpm2_eventlog (Debian tpm2-tools) on
// it and returns the SHA-256 PCR values the tool replays. It fails the test
// when the tool is missing or rejects the log.
func ToolPCRs(t testing.TB, log []byte) map[uint32][32]byte {
	t.Helper()
	if _, err := exec.LookPath("tpm2_eventlog"); err != nil {
		t.Fatalf("tpm2_eventlog not found (Debian package tpm2-tools; `make tpm-prep`): %v", err)
	}
	path := filepath.Join(t.TempDir(), "eventlog.bin")
	if err := os.WriteFile(path, log, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tpm2_eventlog", path).Output()
	if err != nil {
		t.Fatalf("tpm2_eventlog: %v\n%s", err, out)
	}
	pcrs := map[uint32][32]byte{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	inSHA256 := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "sha256:":
			inSHA256 = true
		case inSHA256 && strings.HasPrefix(line, "    "):
			idx, val, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				t.Fatalf("tpm2_eventlog line %q", line)
			}
			n, err := strconv.Atoi(strings.TrimSpace(idx))
			v, err2 := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(val), "0x"))
			if err != nil || err2 != nil || len(v) != 32 {
				t.Fatalf("tpm2_eventlog line %q", line)
			}
			pcrs[uint32(n)] = [32]byte(v)
		default:
			inSHA256 = false
		}
	}
	if len(pcrs) == 0 {
		t.Fatalf("tpm2_eventlog printed no SHA-256 PCRs:\n%s", out)
	}
	return pcrs
}
