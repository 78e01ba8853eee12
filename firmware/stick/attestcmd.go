package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teastick/teastick/firmware/core"
)

// governanceKey is the hex Ed25519 public key whose signatures the stick
// accepts on release manifests, set at build time (-X
// main.governanceKey=...; make GOVERNANCE_KEY=...). Without it the stick
// accepts no manifest.
var governanceKey string

// stickConfig is the configuration the stick measures into PCR 8.
func stickConfig(board string) []byte { return core.ConfigRecord(Version, board) }

// imageDigest is the measurement of a stick image.
func imageDigest(image []byte) [32]byte { return sha256.Sum256(image) }

func parseGovernanceKey(s string) ([]ed25519.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("governance key %q is not a hex Ed25519 public key", s)
	}
	return []ed25519.PublicKey{b}, nil
}

// b64line writes "name: <base64 of v as JSON>".
func b64line(w io.Writer, name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(w, "%s: FAILED: %v\n", name, err)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", name, base64.StdEncoding.EncodeToString(b))
}

// challenge is what a verifier sends back at enrolment (verify.Challenge).
type challenge struct {
	CredentialBlob  []byte
	EncryptedSecret []byte
}

// consoleCommands are the operator console's view of the stick core: the
// same operations as the API, as text lines on the serial port (base64
// JSON where the API carries JSON).
func consoleCommands(s *core.Stick) map[string]command {
	return map[string]command{
		"manifest": {help: "BASE64: accept a signed release manifest (the first boots the actors, later ones upgrade)", run: func(w io.Writer, args []string) {
			if len(args) != 1 {
				fmt.Fprintln(w, "manifest: usage: manifest BASE64")
				return
			}
			raw, err := base64.StdEncoding.DecodeString(args[0])
			if err != nil {
				fmt.Fprintf(w, "manifest: refused: not base64: %v\n", err)
				return
			}
			if err := s.Apply(context.Background(), raw); err != nil {
				fmt.Fprintf(w, "manifest: refused: %v\n", err)
			}
		}},
		"enrol": {help: "print the enrolment request (EK certificate, EK and AK public)", run: func(w io.Writer, _ []string) {
			req, err := s.Enrol()
			if err != nil {
				fmt.Fprintf(w, "enrol: refused: %v\n", err)
				return
			}
			b64line(w, "enrol", req)
		}},
		"activate": {help: "BASE64: answer the verifier's credential challenge", run: func(w io.Writer, args []string) {
			var c challenge
			raw, err := base64.StdEncoding.DecodeString(firstArg(args))
			if err == nil {
				err = json.Unmarshal(raw, &c)
			}
			if err != nil || len(args) != 1 {
				fmt.Fprintf(w, "activate: usage: activate BASE64 (%v)\n", err)
				return
			}
			secret, err := s.Activate(c.CredentialBlob, c.EncryptedSecret)
			if err != nil {
				fmt.Fprintf(w, "activate: FAILED: %v\n", err)
				return
			}
			fmt.Fprintf(w, "activate: %s\n", base64.StdEncoding.EncodeToString(secret))
		}},
		"attest": {help: "NONCE-HEX: quote the PCRs for this nonce, with the event log, and the AK's certification of the rollback counter", run: func(w io.Writer, args []string) {
			nonce, err := hex.DecodeString(firstArg(args))
			if err != nil || len(args) != 1 {
				fmt.Fprintf(w, "attest: usage: attest NONCE-HEX (%d to %d bytes)\n", core.MinNonce, core.MaxNonce)
				return
			}
			a, err := s.Attest(nonce)
			if err != nil {
				fmt.Fprintf(w, "attest: refused: %v\n", err)
				return
			}
			// The counter first: a console verifier takes the
			// "attest:" line as the end of the answer.
			if a.RollbackCounter == nil {
				_, err := s.RollbackCounter()
				fmt.Fprintf(w, "attest-counter: none (%v)\n", err)
			} else {
				v, _ := s.RollbackCounter()
				b, _ := json.Marshal(a.RollbackCounter)
				fmt.Fprintf(w, "attest-counter: %d %s\n", v, base64.StdEncoding.EncodeToString(b))
			}
			b64line(w, "attest", a.Evidence)
		}},
		"invoke": {help: "NAME OPERATION [PAYLOAD]: call an actor (payload as text; 0x... for hex)", run: func(w io.Writer, args []string) {
			cmdInvoke(s, w, args)
		}},
		"actors": {help: "list the manifest's actors, their state and counters", run: func(w io.Writer, _ []string) {
			st := s.Status()
			fmt.Fprintf(w, "actors: %d in the manifest\n", len(st.Actors))
			for _, a := range st.Actors {
				fmt.Fprintf(w, "actors: %s %s %s %s calls=%d failures=%d faults=%d busy=%d denied=%d %s\n",
					a.Name, a.CID, a.State, a.Engine, a.Calls, a.Failed, a.Faults, a.Busy, a.Denied, a.Error)
			}
		}},
	}
}

func cmdInvoke(s *core.Stick, w io.Writer, args []string) {
	if len(args) < 2 {
		fmt.Fprintln(w, "invoke: usage: invoke NAME OPERATION [PAYLOAD]")
		return
	}
	payload := []byte(strings.Join(args[2:], " "))
	if p := string(payload); strings.HasPrefix(p, "0x") {
		b, err := hex.DecodeString(p[2:])
		if err != nil {
			fmt.Fprintf(w, "invoke: bad hex payload: %v\n", err)
			return
		}
		payload = b
	}
	start := time.Now()
	res, err := s.Invoke(context.Background(), args[0], args[1], payload)
	el := time.Since(start)
	if err != nil {
		fmt.Fprintf(w, "invoke: %s.%s FAILED in %d us: %v\n", args[0], args[1], el.Microseconds(), err)
		return
	}
	out := res.Output
	shown := string(out)
	if !utf8.Valid(out) || strings.ContainsAny(shown, "\n\r\x00") {
		shown = "0x" + hex.EncodeToString(out)
	}
	fmt.Fprintf(w, "invoke: %s.%s %d bytes in %d us (receipt %d): %s\n", args[0], args[1], len(out), el.Microseconds(), res.Receipt.Counter, shown)
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
