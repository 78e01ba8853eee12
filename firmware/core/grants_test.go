package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

// randomCall is the edge actor's "call" payload for random.bytes(16).
var randomCall = append([]byte("\x06random\x05bytes"), 0, 0, 0, 16)

// pcr10Manifests counts the manifests measured into PCR 10.
func pcr10Manifests(m *measure.Measurer) int {
	n := 0
	for _, e := range m.Events() {
		if tag, _, err := eventlog.ParseTagged(e.Data); e.PCR == measure.PCRRuntime && err == nil && tag == eventlog.TagManifest {
			n++
		}
	}
	return n
}

// A grants-only upgrade needs nothing from the box: with the box
// withholding the actor's blocks, the grant the new manifest withholds is
// revoked at once, the actor serves again with the new grants, measured
// into PCR 10, and its receipts name the new version.
func TestGrantsOnlyUpgradeWithoutTheBox(t *testing.T) {
	box := &faultBox{}
	edge := box.put(actortest.Wat(t, "edge"))
	cfg, roots := attested(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	v1 := sign(t, 1, manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}})
	if err := s.Boot(context.Background(), v1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); err != nil {
		t.Fatalf("random under version 1: %v", err)
	}
	box.setFail(edge, fmt.Errorf("%s: FAULT: the box withholds the blocks", edge))
	fetched := box.count(edge)
	if err := s.Upgrade(context.Background(), sign(t, 2, manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}})); err != nil {
		t.Fatalf("grants-only upgrade with the box withholding: %v", err)
	}
	if n := box.count(edge) - fetched; n != 0 {
		t.Errorf("a grants-only upgrade fetched the module %d times", n)
	}
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); !errors.Is(err, runtime.ErrDenied) && (err == nil || !strings.Contains(err.Error(), "not granted")) {
		t.Errorf("random after version 2 revoked it: %v", err)
	}
	res, err := s.Invoke(context.Background(), "edge", "echo", []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Receipt.ManifestVersion != 2 || res.Receipt.CID != edge {
		t.Errorf("receipt after version 2: version %d CID %s", res.Receipt.ManifestVersion, res.Receipt.CID)
	}
	got := measuredActors(t, cfg.Measurer, measure.PCRRuntime)
	if len(got) != 1 || got[0].Name != "edge" || got[0].CID.String() != edge || !slices.Equal(got[0].Capabilities, []string{"log"}) {
		t.Errorf("PCR 10 actors after version 2: %+v", got)
	}
	if a := actorStatus(s, "edge"); a.State != StateServing || !slices.Equal(a.Grants, []string{"log"}) {
		t.Errorf("status after version 2: %+v", a)
	}
	// A verifier following the manifests accepts the log.
	if v := verdict(t, s, enrolAK(t, s, roots), v1, edge); !v.OK() {
		t.Errorf("verdict after the grants-only upgrade:\n%s", v)
	}
}

// When an actor's new CID cannot be loaded, its old version keeps serving
// only if it holds no grant the new manifest withholds, and then its
// receipts name the manifest whose entry it is; otherwise it stops when
// the new manifest is measured.
func TestFailedUpgradeKeepsNoWithheldGrant(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	other := box.put(variant(edgeWasm, "other"))
	edge2 := box.put(variant(edgeWasm, "edge v2"))
	other2 := box.put(variant(edgeWasm, "other v2"))
	for _, c := range []string{edge2, other2} {
		box.setFail(c, fmt.Errorf("%s: FAULT: the box withholds the blocks", c))
	}
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	cfg.RetryMin = time.Hour // no retry while the test looks
	s, log := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
		manifest.Actor{Name: "other", CID: other, Grants: []string{"log"}},
	)); err != nil {
		t.Fatal(err)
	}
	// edge: new CID, random withheld. other: new CID, grants widened.
	var ue *UpgradeError
	if err := s.Upgrade(context.Background(), sign(t, 2,
		manifest.Actor{Name: "edge", CID: edge2, Grants: []string{"log"}},
		manifest.Actor{Name: "other", CID: other2, Grants: []string{"log", "random"}},
	)); !errors.As(err, &ue) || len(ue.Failed) != 2 {
		t.Fatalf("upgrade the box withholds: %v", err)
	}
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); !errors.Is(err, ErrNotServed) {
		t.Errorf("edge, whose random version 2 withholds, after its upgrade failed: %v", err)
	}
	if a := actorStatus(s, "edge"); a.State != StateFailed || a.Serving != "" {
		t.Errorf("edge status: %+v", a)
	}
	if !strings.Contains(log.String(), "actor: edge upgrade to "+edge2+" FAILED, old version STOPPED") {
		t.Errorf("console:\n%s", log)
	}
	res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi"))
	if err != nil {
		t.Fatalf("other, whose old grants version 2 keeps: %v", err)
	}
	if res.Receipt.CID != other || res.Receipt.ManifestVersion != 1 {
		t.Errorf("receipt of other's kept version: CID %s version %d, want %s version 1", res.Receipt.CID, res.Receipt.ManifestVersion, other)
	}
	if a := actorStatus(s, "other"); a.State != StateServing || a.Serving != other {
		t.Errorf("other status: %+v", a)
	}
}

// holdingLog is a TEST PROBE for the console: the write of the first line
// containing at is held until release is closed; held is closed once it
// is.
type holdingLog struct {
	syncBuffer
	at      string
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (h *holdingLog) Write(p []byte) (int, error) {
	if strings.Contains(string(p), h.at) {
		h.once.Do(func() {
			close(h.held)
			<-h.release
		})
	}
	return h.syncBuffer.Write(p)
}

// An actor a manifest drops stops when the manifest is measured: while
// the upgrade is still swapping the actors it changes, the dropped one no
// longer serves, so no receipt names it with the new version.
func TestRemovedActorStopsWhenMeasured(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	gone := box.put(variant(edgeWasm, "gone"))
	edge2 := box.put(variant(edgeWasm, "edge v2"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	log := &holdingLog{at: "manifest: upgraded to version 2", held: make(chan struct{}), release: make(chan struct{})}
	cfg.Log = log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Boot(context.Background(), sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge},
		manifest.Actor{Name: "gone", CID: gone},
	)); err != nil {
		t.Fatal(err)
	}
	upgraded := make(chan error, 1)
	go func() {
		upgraded <- s.Upgrade(context.Background(), sign(t, 2, manifest.Actor{Name: "edge", CID: edge2}))
	}()
	<-log.held // version 2 is measured; edge v2 is not swapped in yet
	res, err := s.Invoke(context.Background(), "gone", "echo", []byte("hi"))
	close(log.release)
	if err == nil {
		t.Errorf("gone served after version 2, which drops it, was measured: receipt version %d", res.Receipt.ManifestVersion)
	}
	if err := <-upgraded; err != nil {
		t.Fatal(err)
	}
}

// An upgrade whose request is cancelled before the stick measured the
// manifest (here: while it waits for another upgrade) changes nothing;
// once measured, an upgrade completes even if its request goes away while
// the box stalls a fetch, since that fetch is not the request's; the
// stick serves on and takes a cancelled manifest again.
func TestCancelledUpgradeChangesNothing(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	edge2 := box.put(variant(edgeWasm, "edge v2"))
	edge3 := box.put(variant(edgeWasm, "edge v3"))
	edge4 := box.put(variant(edgeWasm, "edge v4"))
	cfg := measured(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	if err := s.Boot(context.Background(), sign(t, 1, manifest.Actor{Name: "edge", CID: edge})); err != nil {
		t.Fatal(err)
	}
	v2 := sign(t, 2, manifest.Actor{Name: "edge", CID: edge2})
	v3 := sign(t, 3, manifest.Actor{Name: "edge", CID: edge3})
	v4 := sign(t, 4, manifest.Actor{Name: "edge", CID: edge4})

	// Cancelled while the box stalls the fetch: version 2 was measured
	// before the fetch began, and completes.
	release := box.stallOn(edge2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Upgrade(ctx, v2) }()
	waitFor(t, "the fetch of edge v2", func() bool { return box.inFlight(edge2) == 1 })
	if v := s.ManifestVersion(); v != 2 {
		t.Errorf("version %d while edge v2 is fetched, want 2 (measured before the fetch)", v)
	}
	cancel()
	release()
	if err := <-done; err != nil {
		t.Errorf("upgrade whose request went away after it was measured: %v, want it completed", err)
	}
	if n := pcr10Manifests(cfg.Measurer); n != 1 {
		t.Errorf("%d manifests measured into PCR 10, want 1", n)
	}
	if res, err := s.Invoke(context.Background(), "edge", "echo", []byte("hi")); err != nil || res.Receipt.CID != edge2 || res.Receipt.ManifestVersion != 2 {
		t.Errorf("edge after version 2, its request cancelled while fetching: %v %+v", err, res)
	}

	// Cancelled while waiting for another manifest change (the test
	// holds the upgrade lock, as a change being checked and measured
	// does): version 4 is not applied. Version 3, whose fetch the box
	// holds, no longer holds the lock meanwhile: it completes.
	release = box.stallOn(edge3)
	first := make(chan error, 1)
	go func() { first <- s.Upgrade(context.Background(), v3) }()
	waitFor(t, "the fetch of edge v3", func() bool { return box.inFlight(edge3) == 1 })
	if err := s.lockUpgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- s.Upgrade(ctx, v4) }()
	cancel()
	err := <-done
	s.unlockUpgrade()
	release()
	if err := <-first; err != nil {
		t.Fatalf("version 3: %v", err)
	}
	if !errors.Is(err, ErrCancelled) {
		t.Errorf("upgrade cancelled while waiting: %v, want ErrCancelled", err)
	}
	if v := s.ManifestVersion(); v != 3 {
		t.Errorf("version %d, want 3 (4 was cancelled)", v)
	}
	if n := pcr10Manifests(cfg.Measurer); n != 2 {
		t.Errorf("%d manifests measured into PCR 10, want 2", n)
	}
	if err := s.Upgrade(context.Background(), v4); err != nil {
		t.Fatalf("version 4 again: %v", err)
	}
	if res, err := s.Invoke(context.Background(), "edge", "echo", []byte("hi")); err != nil || res.Receipt.CID != edge4 || res.Receipt.ManifestVersion != 4 {
		t.Errorf("edge after version 4: %v %+v", err, res)
	}
}

// A revocation does not wait for the box: while the box stalls the fetch
// of other's new CID, the same upgrade's withdrawal of edge's random
// grant is in force as soon as the manifest is measured, and other's old
// version, whose grants version 2 keeps, serves on under version 1 until
// its replacement commits.
func TestRevocationDoesNotWaitForTheBox(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	other := box.put(variant(edgeWasm, "other"))
	other2 := box.put(variant(edgeWasm, "other v2"))
	cfg, roots := attested(t)
	cfg.Fetch = box.Fetch
	s, _ := newStick(t, cfg)
	v1 := sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
		manifest.Actor{Name: "other", CID: other, Grants: []string{"log"}},
	)
	if err := s.Boot(context.Background(), v1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); err != nil {
		t.Fatalf("random under version 1: %v", err)
	}
	release := box.stallOn(other2) // FAULT: the box stalls other v2
	upgraded := make(chan error, 1)
	go func() {
		upgraded <- s.Upgrade(context.Background(), sign(t, 2,
			manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}},
			manifest.Actor{Name: "other", CID: other2, Grants: []string{"log"}},
		))
	}()
	waitFor(t, "the fetch of other v2", func() bool { return box.inFlight(other2) == 1 })
	// The box still holds other v2.
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); !errors.Is(err, runtime.ErrDenied) && (err == nil || !strings.Contains(err.Error(), "not granted")) {
		t.Errorf("random while the box stalls the rest of version 2, which withdraws it: %v", err)
	}
	if n := pcr10Manifests(cfg.Measurer); n != 1 {
		t.Errorf("%d manifests measured into PCR 10 while the box stalls, want 1", n)
	}
	if res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi")); err != nil || res.Receipt.CID != other || res.Receipt.ManifestVersion != 1 {
		t.Errorf("other's old version while its new one is fetched: %v %+v", err, res)
	}
	release()
	if err := <-upgraded; err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi")); err != nil || res.Receipt.CID != other2 || res.Receipt.ManifestVersion != 2 {
		t.Errorf("other after version 2: %v %+v", err, res)
	}
	if v := verdict(t, s, enrolAK(t, s, roots), v1, edge, other); !v.OK() {
		t.Errorf("verdict after the upgrade:\n%s", v)
	}
}

// A later manifest's revocations do not wait for the box: while the box
// stalls a fetch of other (an earlier upgrade's load of its new CID, or a
// retry of its boot entry), a manifest that withdraws edge's random grant,
// drops gone and replaces other's entry is measured and in force when its
// upgrade returns, the stalled fetch still under way. Once the box lets
// go, the stale fetch is discarded: nothing of the replaced entry is
// measured after the manifest that replaced it, and the attestation
// verifies against the manifest chain.
func TestLaterManifestRevokesWhileTheBoxStalls(t *testing.T) {
	for _, stalled := range []string{"upgrade load", "retry"} {
		t.Run(strings.ReplaceAll(stalled, " ", "_"), func(t *testing.T) {
			box := &faultBox{}
			edgeWasm := actortest.Wat(t, "edge")
			edge := box.put(edgeWasm)
			gone := box.put(variant(edgeWasm, "gone"))
			other := box.put(variant(edgeWasm, "other"))
			other2 := box.put(variant(edgeWasm, "other v2"))
			other3 := box.put(variant(edgeWasm, "other v3"))
			cfg, roots := attested(t)
			cfg.Fetch = box.Fetch
			cfg.FetchTimeout = time.Hour // the stall ends when the test says
			cfg.RetryMin, cfg.RetryMax = 2*time.Millisecond, 4*time.Millisecond
			log := &syncBuffer{}
			cfg.Log = log
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if stalled == "retry" {
				box.setFail(other, fmt.Errorf("%s: 504 gateway timeout", other))
			}
			v1 := sign(t, 1,
				manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
				manifest.Actor{Name: "gone", CID: gone, Grants: []string{"log"}},
				manifest.Actor{Name: "other", CID: other, Grants: []string{"log"}},
			)
			if err := s.Boot(context.Background(), v1); err != nil {
				t.Fatal(err)
			}
			ak := enrolAK(t, s, roots)
			version, stale := uint64(2), other
			var first chan error
			var release func()
			if stalled == "retry" {
				// FAULT: a retry of other's boot entry is fetching
				// and the box stalls it.
				release = box.stallOn(other)
				box.setFail(other, nil)
				waitFor(t, "a retry of other under way", func() bool { return box.inFlight(other) == 1 })
			} else {
				// FAULT: version 2 changes other's CID and the box
				// stalls its fetch.
				release = box.stallOn(other2)
				first = make(chan error, 1)
				go func() {
					first <- s.Upgrade(context.Background(), sign(t, 2,
						manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
						manifest.Actor{Name: "gone", CID: gone, Grants: []string{"log"}},
						manifest.Actor{Name: "other", CID: other2, Grants: []string{"log"}},
					))
				}()
				waitFor(t, "the fetch of other v2", func() bool { return box.inFlight(other2) == 1 })
				version, stale = 3, other2
			}
			revoking := make(chan error, 1)
			go func() {
				revoking <- s.Upgrade(context.Background(), sign(t, version,
					manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}},
					manifest.Actor{Name: "other", CID: other3, Grants: []string{"log"}},
				))
			}()
			// A bound for a stuck test (the box stalls for an hour),
			// not a timing assertion.
			select {
			case err := <-revoking:
				if err != nil {
					t.Fatalf("version %d: %v", version, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("version %d, which revokes, did not return within a minute while the box stalls %s", version, stale)
			}
			if n := box.inFlight(stale); n != 1 {
				t.Fatalf("%d fetches of %s under way, want the stalled one", n, stale)
			}
			if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); !errors.Is(err, runtime.ErrDenied) && (err == nil || !strings.Contains(err.Error(), "not granted")) {
				t.Errorf("random after version %d withdrew it, the box stalling: %v", version, err)
			}
			if res, err := s.Invoke(context.Background(), "gone", "echo", []byte("hi")); err == nil {
				t.Errorf("gone served after version %d dropped it: receipt version %d", version, res.Receipt.ManifestVersion)
			}
			if res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi")); err != nil || res.Receipt.CID != other3 || res.Receipt.ManifestVersion != version {
				t.Errorf("other after version %d: %v %+v", version, err, res)
			}
			release()
			if first != nil {
				var ue *UpgradeError
				if err := <-first; !errors.As(err, &ue) || !errors.Is(ue.Failed["other"], ErrSuperseded) {
					t.Errorf("version 2, whose load of other version 3 replaced: %v", err)
				}
			}
			waitFor(t, "the stale fetch discarded", func() bool {
				return strings.Contains(log.String(), "actor: other try of "+stale+" ended after a later manifest replaced its entry: discarded")
			})
			for _, e := range actorCIDs(t, cfg.Measurer, measure.PCRRuntime) {
				if e == "other="+stale {
					t.Errorf("the stale load of %s was measured: PCR 10 %v", stale, actorCIDs(t, cfg.Measurer, measure.PCRRuntime))
				}
			}
			if res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi")); err != nil || res.Receipt.CID != other3 {
				t.Errorf("other after the stale fetch ended: %v %+v", err, res)
			}
			if a := actorStatus(s, "other"); a.State != StateServing || a.CID != other3 || a.NextTryMS != nil {
				t.Errorf("other's status after the stale fetch ended: %+v", a)
			}
			if v := verdict(t, s, ak, v1, edge, gone, other); !v.OK() {
				t.Errorf("verdict after version %d:\n%s", version, v)
			}
		})
	}
}

// A load goes on under a later manifest that keeps its entry: that
// manifest's revocation is in force while the box stalls the earlier
// upgrade's fetch, and the load, measured after the later manifest (whose
// entry it is too), commits once the box delivers and verifies.
func TestLoadGoesOnUnderALaterManifestThatKeepsIt(t *testing.T) {
	box := &faultBox{}
	edgeWasm := actortest.Wat(t, "edge")
	edge := box.put(edgeWasm)
	other := box.put(variant(edgeWasm, "other"))
	other2 := box.put(variant(edgeWasm, "other v2"))
	cfg, roots := attested(t)
	cfg.Fetch = box.Fetch
	cfg.FetchTimeout = time.Hour // the stall ends when the test says
	s, _ := newStick(t, cfg)
	v1 := sign(t, 1,
		manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
		manifest.Actor{Name: "other", CID: other, Grants: []string{"log"}},
	)
	if err := s.Boot(context.Background(), v1); err != nil {
		t.Fatal(err)
	}
	ak := enrolAK(t, s, roots)
	release := box.stallOn(other2) // FAULT: the box stalls other v2
	first := make(chan error, 1)
	go func() {
		first <- s.Upgrade(context.Background(), sign(t, 2,
			manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log", "random"}},
			manifest.Actor{Name: "other", CID: other2, Grants: []string{"log"}},
		))
	}()
	waitFor(t, "the fetch of other v2", func() bool { return box.inFlight(other2) == 1 })
	revoking := make(chan error, 1)
	go func() {
		revoking <- s.Upgrade(context.Background(), sign(t, 3,
			manifest.Actor{Name: "edge", CID: edge, Grants: []string{"log"}},
			manifest.Actor{Name: "other", CID: other2, Grants: []string{"log"}},
		))
	}()
	select { // a bound for a stuck test, not a timing assertion
	case err := <-revoking:
		if err != nil {
			t.Fatalf("version 3: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("version 3, which revokes, did not return within a minute while the box stalls other v2")
	}
	if _, err := s.Invoke(context.Background(), "edge", "call", randomCall); !errors.Is(err, runtime.ErrDenied) && (err == nil || !strings.Contains(err.Error(), "not granted")) {
		t.Errorf("random after version 3 withdrew it, the box stalling: %v", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("version 2, whose load version 3 kept: %v", err)
	}
	if res, err := s.Invoke(context.Background(), "other", "echo", []byte("hi")); err != nil || res.Receipt.CID != other2 || res.Receipt.ManifestVersion != 3 {
		t.Errorf("other after its load committed under version 3: %v %+v", err, res)
	}
	if got := actorCIDs(t, cfg.Measurer, measure.PCRRuntime); !slices.Contains(got, "other="+other2) {
		t.Errorf("PCR 10 actors: %v, want other=%s", got, other2)
	}
	if v := verdict(t, s, ak, v1, edge, other); !v.OK() {
		t.Errorf("verdict after version 3:\n%s", v)
	}
}
