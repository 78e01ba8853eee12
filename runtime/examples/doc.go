// Package examples holds the example actors, each a main package built with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared (runtime/actortest builds them
// for tests):
//
//   - echo: "echo" returns its payload; "print" also writes it to stdout.
//     Grants: log.
//   - notary: "hash" returns the SHA-256 of its payload, "notarize" a JSON
//     statement of it signed with the stick's result key. Grants: crypto.
//   - wordcount: "count" reads the UnixFS file whose CID is its payload
//     through the box, every block verified, and returns its line, word and
//     byte counts and most frequent words. Grants: ipfs.cat.
//   - kernel: "run" runs runtime/internal/kernel, the compute benchmark also run as
//     native Go. Grants: none.
package examples

import (
	"context"
	"os"
	"os/exec"
)

// Build returns the command that builds example name into out with the go
// command goBin, from dir, the repository's runtime directory: a WASI
// reactor (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, -trimpath so the
// module and its CID do not depend on where the repository is).
func Build(ctx context.Context, goBin, dir, name, out string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./examples/"+name)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	return cmd
}
