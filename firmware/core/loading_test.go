package core

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
	"github.com/teastick/teastick/tpm/swtpmtest"
	"github.com/teastick/teastick/tpm/verify"
)

// variant is module with a custom section named tag appended (WebAssembly
// core spec 5.5.3): the same actor under another CID. The runtime drops
// custom sections, so it behaves exactly as module.
func variant(module []byte, tag string) []byte {
	section := append([]byte{byte(len(tag))}, tag...)
	out := append([]byte(nil), module...)
	return append(append(out, 0, byte(len(section))), section...)
}

func (b *faultBox) count(c string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fetches[c]
}

func (b *faultBox) inFlight(c string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running[c]
}

func (b *faultBox) setFail(c string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail == nil {
		b.fail = map[string]error{}
	}
	if err == nil {
		delete(b.fail, c)
		return
	}
	b.fail[c] = err
}

// stallOn makes every fetch of c wait until the returned function is
// called (or the fetch gives up).
func (b *faultBox) stallOn(c string) (release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stall == nil {
		b.stall = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	b.stall[c] = ch
	return func() {
		b.mu.Lock()
		delete(b.stall, c)
		b.mu.Unlock()
		close(ch)
	}
}

// waitFor polls cond until it holds; it fails the test after a minute
// (a bound for a stuck test, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func actorStatus(s *Stick, name string) ActorStatus {
	for _, a := range s.Status().Actors {
		if a.Name == name {
			return a
		}
	}
	return ActorStatus{}
}

// attested is a measured stick's TPM with its CA, so that a test can
// enrol the AK and verify attestations as a verifier does.
func attested(t *testing.T) (Config, *x509.CertPool) {
	t.Helper()
	ca := t.TempDir()
	sw := swtpmtest.Start(t, swtpmtest.Options{Provision: true, CADir: ca})
	bundle, err := swtpmtest.CABundle(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	return measuredOn(t, sw), roots
}

// enrolAK runs enrolment against s and returns the AK a verifier trusts.
func enrolAK(t *testing.T, s *Stick, roots *x509.CertPool) []byte {
	t.Helper()
	req, err := s.Enrol()
	if err != nil {
		t.Fatal(err)
	}
	ch, pending, err := verify.Enrol(req, roots)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.Activate(ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := pending.Finish(secret)
	if err != nil {
		t.Fatal(err)
	}
	return ak
}

// verdict attests s and verifies the evidence against boot manifest m
// (PCR 8) and a reference whose boot manifest keeps only m's actors at
// the allowed CIDs.
func verdict(t *testing.T, s *Stick, ak, m []byte, allowed ...string) *verify.Verdict {
	t.Helper()
	nonce := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	a, err := s.Attest(nonce[:16])
	if err != nil {
		t.Fatal(err)
	}
	boot, _, _, err := manifest.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	var kept []manifest.Actor
	for _, e := range boot.Actors {
		if slices.Contains(allowed, e.CID) {
			kept = append(kept, e)
		}
	}
	ref := &verify.Reference{Events: verify.BootEvents(testImage, []byte("version=test\n"), m), Boot: sign(t, boot.Version, kept...), Upgrades: a.Manifests[1:]}
	return verify.Verify(a.Evidence, verify.Expect{AKPublic: ak, Nonce: nonce[:16], ChannelKey: s.channelDER, Reference: ref})
}

// measuredActors are the actors measured on pcr, in log order.
func measuredActors(t *testing.T, m *measure.Measurer, pcr uint32) []measure.Actor {
	t.Helper()
	var out []measure.Actor
	for _, e := range m.Events() {
		if e.PCR != pcr || e.Type != eventlog.EV_EVENT_TAG {
			continue
		}
		tag, payload, err := eventlog.ParseTagged(e.Data)
		if err != nil || tag != eventlog.TagActor {
			continue
		}
		var a measure.Actor
		if err := a.UnmarshalBinary(payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// actorEvents names the actors measured on pcr, in log order.
func actorEvents(t *testing.T, m *measure.Measurer, pcr uint32) []string {
	t.Helper()
	var names []string
	for _, a := range measuredActors(t, m, pcr) {
		names = append(names, a.Name)
	}
	return names
}

// actorCIDs is actorEvents as name=CID.
func actorCIDs(t *testing.T, m *measure.Measurer, pcr uint32) []string {
	t.Helper()
	var out []string
	for _, a := range measuredActors(t, m, pcr) {
		out = append(out, a.Name+"="+a.CID.String())
	}
	return out
}

// A box that stalls one actor's blocks at boot holds back no other actor:
// they serve (measured into PCR 9) while the stalled one is loading, an
// attestation taken meanwhile verifies (PCR 9 still open), and READY
// comes once the stalled actor has had its try.
func TestBootStalledActorHoldsNoOther(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	slow := box.put(variant(edgeWasm, "slow"))
	release := box.stallOn(slow)
	cfg, roots := attested(t)
	cfg.Fetch = box.Fetch
	s, log := newStick(t, cfg)
	ak := enrolAK(t, s, roots)
	m := sign(t, 1,
		manifest.Actor{Name: "slow", CID: slow},
		manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}},
	)
	booted := make(chan error, 1)
	go func() { booted <- s.Boot(context.Background(), m) }()

	waitFor(t, "edge serving", func() bool { return actorStatus(s, "edge").State == StateServing })
	if a := actorStatus(s, "slow"); a.State != StateLoading {
		t.Errorf("slow, stalled by the box: %+v", a)
	}
	if s.Ready() {
		t.Error("READY before the stalled actor had its try")
	}
	h := s.Handler()
	if code, out := call(t, h, "POST", "/v1/actors/edge/invoke", `{"operation":"echo","payload":"aGk="}`); code != 200 || out["result"] != "aGk=" {
		t.Errorf("edge while slow loads: %d %v", code, out)
	}
	if code, out := call(t, h, "POST", "/v1/actors/slow/invoke", `{"operation":"echo"}`); code != 503 || errCode(out) != "actor_not_served" {
		t.Errorf("slow while it loads: %d %v", code, out)
	} else if msg, _ := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "slow is still loading") || strings.HasSuffix(msg, ": ") {
		t.Errorf("slow while it loads says %q, want that it is still loading", msg)
	}
	if v := verdict(t, s, ak, m, edge, slow); !v.OK() {
		t.Errorf("attestation while PCR 9 is open:\n%s", v)
	}

	release()
	if err := <-booted; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "READY: manifest version 1, actors [slow edge] in ") {
		t.Errorf("console:\n%s", log)
	}
	if got := actorEvents(t, cfg.Measurer, measure.PCRBootActors); strings.Join(got, " ") != "edge slow" {
		t.Errorf("PCR 9 actors in log order %v, want completion order [edge slow]", got)
	}
	if a := actorStatus(s, "slow"); a.State != StateServing || a.NextTryMS != nil || a.Attempts != 1 {
		t.Errorf("slow after the stall: %+v", a)
	}
	if v := verdict(t, s, ak, m, edge, slow); !v.OK() {
		t.Errorf("attestation after READY:\n%s", v)
	}
	v := verdict(t, s, ak, m, edge)
	if v.OK() {
		t.Fatalf("a CID the manifest does not allow verified:\n%s", v)
	}
	for _, c := range v.Failed() {
		if c.Name != verify.CheckActor || c.PCR != measure.PCRBootActors {
			t.Errorf("unexpected failure: %v", c)
		}
	}
}

// An actor the box fails to deliver is retried with backoff, its status
// saying when the next try is, and serves once the box answers, measured
// into PCR 10. An actor whose verified bytes do not load is not retried.
func TestBootRetriesWhatTheBoxFailed(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	flaky := box.put(variant(edgeWasm, "flaky"))
	broken := box.put([]byte("verified bytes, not WebAssembly"))
	box.setFail(flaky, errors.New("502 bad gateway"))
	cfg, roots := attested(t)
	cfg.Fetch = box.Fetch
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 40*time.Millisecond
	s, log := newStick(t, cfg)
	ak := enrolAK(t, s, roots)
	m := sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge},
		manifest.Actor{Name: "flaky", CID: flaky},
		manifest.Actor{Name: "broken", CID: broken},
	)
	if err := s.Boot(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "READY: manifest version 1, actors [edge], NOT SERVED [flaky broken]") {
		t.Fatalf("console:\n%s", log)
	}
	a := actorStatus(s, "flaky")
	if a.State != StateFailed || a.NextTryMS == nil || *a.NextTryMS > cfg.RetryMax.Milliseconds() || !strings.Contains(a.Error, "502") {
		t.Errorf("flaky after its first try: %+v", a)
	}
	if b := actorStatus(s, "broken"); b.State != StateFailed || b.NextTryMS != nil {
		t.Errorf("broken (verified bytes that do not load): %+v", b)
	}
	waitFor(t, "three retries of flaky", func() bool { return box.count(flaky) >= 4 })
	box.setFail(flaky, nil)
	waitFor(t, "flaky serving", func() bool { return actorStatus(s, "flaky").State == StateServing })

	a = actorStatus(s, "flaky")
	if a.NextTryMS != nil || a.Error != "" || a.Attempts < 4 || a.Serving != flaky {
		t.Errorf("flaky once served: %+v", a)
	}
	if code, out := call(t, s.Handler(), "POST", "/v1/actors/flaky/invoke", `{"operation":"echo","payload":"aGk="}`); code != 200 || out["result"] != "aGk=" {
		t.Errorf("invoke flaky: %d %v", code, out)
	}
	if n := box.count(broken); n != 1 {
		t.Errorf("broken fetched %d times, want once", n)
	}
	console := log.String()
	for _, want := range []string{
		"actor: flaky NOT SERVED: 502 bad gateway; next try in ",
		"actor: flaky attempt 2 FAILED: 502 bad gateway; next try in ",
		"measured into PCR 10 on attempt ",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
	if n := strings.Count(console, "actor: broken"); n != 1 {
		t.Errorf("%d lines about broken, want 1:\n%s", n, console)
	}
	if got := actorEvents(t, cfg.Measurer, measure.PCRRuntime); strings.Join(got, " ") != "flaky" {
		t.Errorf("PCR 10 actors %v, want [flaky]", got)
	}
	if v := verdict(t, s, ak, m, edge, flaky); !v.OK() {
		t.Errorf("attestation with a retried actor:\n%s", v)
	}
	if v := verdict(t, s, ak, m, edge); v.OK() {
		t.Errorf("the retried actor's CID verified without the manifest allowing it:\n%s", v)
	}
}

// A new manifest cancels the retries of the actors it drops or changes
// (and only those), and an upgrade the box fails keeps the old version
// serving until a retry brings the new one.
func TestUpgradeCancelsRetries(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	gone := box.put(variant(edgeWasm, "gone"))
	kept := box.put(variant(edgeWasm, "kept"))
	fixed := box.put(variant(edgeWasm, "fixed"))
	edge2 := box.put(variant(edgeWasm, "edge v2"))
	for _, c := range []string{gone, kept, edge2} {
		box.setFail(c, fmt.Errorf("%s: 504 gateway timeout", c))
	}
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	cfg.RetryMin, cfg.RetryMax = 2*time.Millisecond, 4*time.Millisecond
	s, log := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge},
		manifest.Actor{Name: "gone", CID: gone},
		manifest.Actor{Name: "kept", CID: kept},
	)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retries of gone and kept", func() bool { return box.count(gone) >= 3 && box.count(kept) >= 3 })

	// Version 2 drops gone and keeps kept as it was.
	if err := s.Upgrade(context.Background(), sign(t, 2,
		manifest.Actor{Name: "edge", CID: edge},
		manifest.Actor{Name: "kept", CID: kept},
	)); err != nil {
		t.Fatal(err)
	}
	goneAfter, keptAfter := box.count(gone), box.count(kept)
	waitFor(t, "kept retried after version 2", func() bool { return box.count(kept) >= keptAfter+5 })
	if n := box.count(gone); n != goneAfter {
		t.Errorf("gone fetched %d more times after version 2 dropped it", n-goneAfter)
	}
	if a := actorStatus(s, "gone"); a.Name != "" {
		t.Errorf("gone still in the status: %+v", a)
	}
	if !strings.Contains(log.String(), "actor: gone retries of "+gone+" cancelled by version 2") {
		t.Errorf("console:\n%s", log)
	}

	// Version 3 replaces kept's entry while a retry of it is fetching
	// (the box stalls it): the upgrade stops the retries without waiting
	// for that fetch, which is not cut (on a one-stream link its bytes
	// would be read as the next answer's) and whose actor never serves.
	release := box.stallOn(kept)
	box.setFail(kept, nil)
	waitFor(t, "a retry of kept under way", func() bool { return box.inFlight(kept) == 1 })
	if err := s.Upgrade(context.Background(), sign(t, 3,
		manifest.Actor{Name: "edge", CID: edge},
		manifest.Actor{Name: "kept", CID: fixed},
	)); err != nil {
		t.Fatal(err)
	}
	if n := box.inFlight(kept); n != 1 {
		t.Errorf("the stopped retry's fetch was cut (%d under way)", n)
	}
	release()
	waitFor(t, "the stopped retry's fetch to end", func() bool { return box.inFlight(kept) == 0 })
	waitFor(t, "the stopped retry to discard its fetch", func() bool {
		return strings.Contains(log.String(), "actor: kept try of "+kept+" ended after a later manifest replaced its entry: discarded")
	})
	keptAfter = box.count(kept)
	for _, e := range actorCIDs(t, cfg.Measurer, measure.PCRRuntime) {
		if e == "kept="+kept {
			t.Error("the stopped retry's actor was measured")
		}
	}
	if n := box.inFlight(kept); n != 0 {
		t.Errorf("%d fetches of kept's old CID under way after version 3", n)
	}
	if !strings.Contains(log.String(), "actor: kept retries of "+kept+" cancelled by version 3") {
		t.Errorf("console:\n%s", log)
	}
	if a := actorStatus(s, "kept"); a.State != StateServing || a.Serving != fixed || a.NextTryMS != nil {
		t.Errorf("kept after version 3: %+v", a)
	}

	// Version 4's edge cannot be fetched: the old edge keeps serving, the
	// new one is retried and swapped in once the box delivers it.
	var ue *UpgradeError
	if err := s.Upgrade(context.Background(), sign(t, 4,
		manifest.Actor{Name: "edge", CID: edge2},
		manifest.Actor{Name: "kept", CID: fixed},
	)); !errors.As(err, &ue) || ue.Failed["edge"] == nil {
		t.Fatalf("upgrade whose edge the box fails: %v", err)
	}
	if a := actorStatus(s, "edge"); a.State != StateServing || a.Serving != edge || a.CID != edge2 || a.NextTryMS == nil {
		t.Errorf("edge after a failed upgrade: %+v", a)
	}
	waitFor(t, "edge v2 retried", func() bool { return box.count(edge2) >= 3 })
	box.setFail(edge2, nil)
	waitFor(t, "edge v2 serving", func() bool { return actorStatus(s, "edge").Serving == edge2 })
	if n := box.count(kept); n != keptAfter {
		t.Errorf("kept's old CID fetched %d more times after version 3 replaced it", n-keptAfter)
	}
	// The last retrier forgets itself just after its actor serves.
	waitFor(t, "no retriers left with every actor serving", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.retriers) == 0
	})
}
