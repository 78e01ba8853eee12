// Command teactl is the operator's tool for teastick sticks: governance
// keys and signed release manifests today; publishing actors, releases,
// enrolment, attestation and invocation as those parts land.
//
// Usage:
//
//	teactl [--json] key generate KEYFILE
//	teactl [--json] key public KEYFILE
//	teactl [--json] manifest new --version N (--stage0 ELF | --stage0-sha256 HEX) (--stick ELF | --stick-sha256 HEX) -o DRAFT
//	teactl [--json] manifest add DRAFT --name NAME --cid CID [--grant G]... [--memory-pages N] [--timeout-ms N]
//	                             [--max-request N] [--max-response N] [--max-concurrent N]
//	teactl [--json] manifest sign DRAFT --key KEYFILE -o MANIFEST
//	teactl [--json] manifest verify MANIFEST --pub PUBKEY
//	teactl [--json] manifest show FILE
//
// Exit status: 0 success; 1 a check failed (bad signature, unknown key,
// invalid manifest); 2 the command line is wrong; 3 a file or network
// operation failed.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
