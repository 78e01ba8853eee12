// Command teactl is the operator's tool for teastick sticks: governance
// keys, signed release manifests, publishing actors to the box, release
// bundles, enrolment, attestation, invocation with receipts checked offline,
// and upgrades. `teactl --help` lists the commands and `teactl GROUP
// COMMAND --help` each command's flags (cli.go holds both).
//
// Usage:
//
//	teactl [--json] key generate|public KEYFILE
//	teactl [--json] manifest new|add|sign|verify|show ...
//	teactl [--json] actor publish FILE.wasm --box-api URL
//	teactl [--json] actor invoke URL NAME OP [PAYLOAD|@FILE] --identity FILE --pub KEY [-o RECEIPT]
//	teactl [--json] stick enroll|attest|upgrade URL|auto ...
//	teactl [--json] stick find [--sys DIR]
//	teactl [--json] box setup [--apply] [--networkd-dir DIR]
//	teactl [--json] receipt verify FILE --identity FILE --pub KEY [--release DIR|MANIFEST]
//	teactl [--json] release build|verify ...
//
// Exit status: 0 success; 1 a check failed (bad signature, unknown key,
// invalid manifest, failed attestation, bad receipt); 2 the command line is
// wrong; 3 a file or network operation failed.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
