package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/measure"
)

// Apply takes a signed manifest: the first one boots the stick's actors,
// later ones upgrade them.
func (s *Stick) Apply(ctx context.Context, raw []byte) error {
	s.mu.Lock()
	first := s.manifest == nil
	s.mu.Unlock()
	if first {
		return s.Boot(ctx, raw)
	}
	return s.Upgrade(ctx, raw)
}

// prepared is one actor fetched, verified and compiled, not yet serving.
type prepared struct {
	a       manifest.Actor
	pending *runtime.Pending
	size    int
	fetched time.Duration
	loaded  time.Duration
	err     error
}

// prepare fetches, verifies and compiles actors concurrently (at most
// LoadParallel at a time); the results are in the order given.
func (s *Stick) prepare(ctx context.Context, list []manifest.Actor) []*prepared {
	out := make([]*prepared, len(list))
	sem := make(chan struct{}, s.cfg.LoadParallel)
	var wg sync.WaitGroup
	for i, a := range list {
		out[i] = &prepared{a: a}
		wg.Add(1)
		go func(p *prepared) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p.err = s.prepareOne(ctx, p)
		}(out[i])
	}
	wg.Wait()
	return out
}

func (s *Stick) prepareOne(ctx context.Context, p *prepared) error {
	if s.cfg.Fetch == nil {
		return ErrNoBox
	}
	c, err := cid.Decode(p.a.CID)
	if err != nil {
		return fmt.Errorf("CID %q: %w", p.a.CID, err)
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	start := time.Now()
	module, err := s.cfg.Fetch(fctx, c)
	if err != nil {
		return err
	}
	p.size = len(module)
	p.fetched = time.Since(start)
	spec, err := runtime.SpecFrom(p.a, module)
	if err != nil {
		return err
	}
	if p.pending, err = s.rt.Prepare(ctx, spec); err != nil {
		return err
	}
	p.loaded = time.Since(start) - p.fetched
	return nil
}

// commit measures a prepared actor into pcr and makes it serve. Measuring
// comes after every check and before the actor can serve: the log names
// exactly the actors that served.
func (s *Stick) commit(p *prepared, pcr uint32) error {
	if p.err != nil {
		return p.err
	}
	c, _ := cid.Decode(p.a.CID)
	if err := s.cfg.Measurer.MeasureActor(pcr, measure.Actor{Name: p.a.Name, CID: c, Capabilities: p.a.Grants}); err != nil {
		p.pending.Abort()
		return fmt.Errorf("measure: %w", err)
	}
	if err := p.pending.Commit(); err != nil {
		return err
	}
	return nil
}

func (s *Stick) setActor(a manifest.Actor, state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &ActorStatus{Name: a.Name, CID: a.CID, Grants: slices.Clone(a.Grants), State: state}
	if err != nil {
		st.Error = err.Error()
	}
	if old, ok := s.actors[a.Name]; ok && state == StateFailed && old.State == StateServing {
		// A failed upgrade keeps the old version serving.
		st.State, st.Serving = StateServing, old.CID
		if old.Serving != "" {
			st.Serving = old.Serving
		}
	}
	s.actors[a.Name] = st
}

// Boot takes the stick's first manifest: it measures it into PCR 8 and
// closes PCR 8, loads every actor it names (measured into PCR 9), closes
// PCR 9 and prints the READY line. An actor that fails is reported and not
// served; the others come up.
func (s *Stick) Boot(ctx context.Context, raw []byte) error {
	s.upgrade.Lock()
	defer s.upgrade.Unlock()
	start := time.Now()
	m, err := s.verifyManifest(raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	booted := s.manifest != nil
	s.mu.Unlock()
	if booted {
		return errors.New("manifest: the stick already booted a manifest; upgrades go through Upgrade")
	}
	mm := s.cfg.Measurer
	if err := mm.MeasureManifest(raw); err != nil {
		return fmt.Errorf("measure manifest: %w", err)
	}
	if err := mm.Separator(measure.PCRConfig); err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	s.mu.Lock()
	s.manifest, s.manifests = m, [][]byte{raw}
	for _, a := range m.Actors {
		s.actors[a.Name] = &ActorStatus{Name: a.Name, CID: a.CID, Grants: a.Grants, State: StateLoading}
	}
	s.mu.Unlock()
	s.logf("manifest: accepted version %d (%d actors), measured into PCR %d", m.Version, len(m.Actors), measure.PCRConfig)

	var served, failed []string
	for _, p := range s.prepare(ctx, m.Actors) {
		if err := s.commit(p, measure.PCRBootActors); err != nil {
			s.setActor(p.a, StateFailed, err)
			failed = append(failed, p.a.Name)
			s.logf("actor: %s NOT SERVED: %v", p.a.Name, err)
			continue
		}
		s.setActor(p.a, StateServing, nil)
		served = append(served, p.a.Name)
		s.logf("actor: %s %s %d bytes, fetched in %d ms, loaded in %d ms, measured into PCR %d, grants [%s]",
			p.a.Name, p.a.CID, p.size, p.fetched.Milliseconds(), p.loaded.Milliseconds(), measure.PCRBootActors, strings.Join(p.a.Grants, ","))
	}
	if err := mm.Separator(measure.PCRBootActors); err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	line := fmt.Sprintf("READY: manifest version %d, actors [%s]", m.Version, strings.Join(served, " "))
	if len(failed) > 0 {
		line += fmt.Sprintf(", NOT SERVED [%s]", strings.Join(failed, " "))
	}
	s.logf("%s in %d ms", line, time.Since(start).Milliseconds())
	return nil
}

// unchanged reports whether an actor entry loads the same thing.
func unchanged(a, b manifest.Actor) bool {
	return a.Name == b.Name && a.CID == b.CID && slices.Equal(a.Grants, b.Grants) && a.Limits == b.Limits
}

// UpgradeError lists the actors an upgrade could not swap; the manifest
// itself was accepted and the old versions of those actors keep serving.
type UpgradeError struct {
	Version uint64
	Failed  map[string]error
}

func (e *UpgradeError) Error() string {
	var parts []string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range e.Failed {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s: %v", n, e.Failed[n]))
	}
	return fmt.Sprintf("upgrade to version %d: %d actors kept their old version: %s", e.Version, len(e.Failed), strings.Join(parts, "; "))
}

// Upgrade moves the stick to a newer signed manifest: the new manifest is
// measured into PCR 10, then each changed actor is fetched, verified,
// measured into PCR 10 and swapped atomically (calls in flight finish on
// the old version); an actor that fails keeps its old version serving and
// the error lists it. Actors the new manifest drops stop serving.
func (s *Stick) Upgrade(ctx context.Context, raw []byte) error {
	s.upgrade.Lock()
	defer s.upgrade.Unlock()
	next, err := s.verifyManifest(raw)
	if err != nil {
		s.m.upgradeFailures.Add(1)
		return err
	}
	s.mu.Lock()
	running := s.manifest
	s.mu.Unlock()
	if running == nil {
		return ErrNotReady
	}
	if err := manifest.CheckUpgrade(running, next); err != nil {
		s.m.upgradeFailures.Add(1)
		return err
	}
	var changed []manifest.Actor
	for _, a := range next.Actors {
		if old, ok := running.Actor(a.Name); ok && unchanged(old, a) {
			continue
		}
		changed = append(changed, a)
	}
	// Fetch and compile before measuring anything: a manifest whose
	// actors cannot load still moves the version, but the measurement
	// order stays manifest, then actors.
	ready := s.prepare(ctx, changed)
	if err := s.cfg.Measurer.MeasureUpgrade(raw); err != nil {
		for _, p := range ready {
			if p.pending != nil {
				p.pending.Abort()
			}
		}
		s.m.upgradeFailures.Add(1)
		return fmt.Errorf("measure manifest: %w", err)
	}
	s.mu.Lock()
	s.manifest = next
	s.manifests = append(s.manifests, raw)
	s.mu.Unlock()
	s.logf("manifest: upgraded to version %d (%d actors changed), measured into PCR %d", next.Version, len(changed), measure.PCRRuntime)
	ue := &UpgradeError{Version: next.Version, Failed: map[string]error{}}
	for _, p := range ready {
		if err := s.commit(p, measure.PCRRuntime); err != nil {
			ue.Failed[p.a.Name] = err
			s.setActor(p.a, StateFailed, err)
			s.logf("actor: %s upgrade to %s FAILED, old version kept: %v", p.a.Name, p.a.CID, err)
			continue
		}
		s.setActor(p.a, StateServing, nil)
		s.logf("actor: %s now %s, measured into PCR %d", p.a.Name, p.a.CID, measure.PCRRuntime)
	}
	for _, old := range running.Actors {
		if _, ok := next.Actor(old.Name); !ok {
			s.rt.Unload(old.Name)
			s.mu.Lock()
			delete(s.actors, old.Name)
			s.mu.Unlock()
			s.logf("actor: %s removed by version %d", old.Name, next.Version)
		}
	}
	s.m.upgrades.Add(1)
	if len(ue.Failed) > 0 {
		return ue
	}
	return nil
}
