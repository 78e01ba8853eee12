package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	// Refuse what can be refused without the upgrade lock: a forged,
	// foreign or stale manifest is answered at once, not after the
	// upgrade in progress (which may fetch for minutes). Boot and Upgrade
	// check again under the lock.
	if err := s.precheckManifest(raw); err != nil {
		return err
	}
	s.mu.Lock()
	first := s.manifest == nil
	s.mu.Unlock()
	if first {
		return s.Boot(ctx, raw)
	}
	return s.Upgrade(ctx, raw)
}

// lockUpgrade takes the upgrade lock, or gives up with ErrCancelled when
// ctx ends first: a request cancelled while it waits changes nothing.
func (s *Stick) lockUpgrade(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w (waiting for another manifest change): %w", ErrCancelled, context.Cause(ctx))
	}
	select {
	case s.upgrade <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (waiting for another manifest change): %w", ErrCancelled, context.Cause(ctx))
	}
}

func (s *Stick) unlockUpgrade() { <-s.upgrade }

// prepared is one actor fetched, verified and compiled, not yet serving.
type prepared struct {
	a       manifest.Actor
	tag     uint64 // the version of the manifest whose entry a is
	pending *runtime.Pending
	// local: the module serving a.Name already has a.CID, and its
	// verified bytes load again without the box (grants or limits
	// changed).
	local bool
	// revoked: the version serving a.Name holds a grant a withholds;
	// it stops when the manifest is measured, before a loads.
	revoked bool
	size    int
	engine  string // the engine the runtime runs it on (runtime.Info.Engine)
	fetched time.Duration
	loaded  time.Duration
	err     error
}

// fetchError marks a failure of the box (the fetch, or the bytes it
// served not matching their CID): another try may succeed, so the actor
// is retried. Anything after the fetch (the verified module does not
// compile, a measurement failed) is not: the same bytes fail again.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var fe *fetchError
	return errors.As(err, &fe)
}

// prepareSlot waits for one of the LoadParallel slots (until wait ends),
// then prepares p (until ctx ends).
func (s *Stick) prepareSlot(wait, ctx context.Context, p *prepared) {
	select {
	case s.loadSlots <- struct{}{}:
	case <-wait.Done():
		p.err = &fetchError{fmt.Errorf("waiting to fetch %s: %w", p.a.CID, wait.Err())}
		return
	}
	defer func() { <-s.loadSlots }()
	p.err = s.prepareOne(ctx, p)
}

func (s *Stick) prepareOne(ctx context.Context, p *prepared) error {
	c, err := cid.Decode(p.a.CID)
	if err != nil {
		return fmt.Errorf("CID %q: %w", p.a.CID, err)
	}
	module, kept := s.rt.Module(p.a.Name, c)
	// An entry marked native whose translation the image holds needs no
	// module bytes: its code is the image's, measured in PCR 4.
	probe, err := runtime.SpecFrom(p.a, nil)
	if err != nil {
		return err
	}
	probe.Native = p.a.Native
	if !kept && !s.rt.RunsNatively(probe) {
		if s.cfg.Fetch == nil {
			return ErrNoBox
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
		defer cancel()
		start := time.Now()
		if module, err = s.cfg.Fetch(fctx, c); err != nil {
			return &fetchError{err}
		}
		p.fetched = time.Since(start)
	}
	p.size = len(module)
	spec, err := runtime.SpecFrom(p.a, module)
	if err != nil {
		return err
	}
	spec.Tag, spec.Native = p.tag, p.a.Native
	// Compiling holds the core on a board without preemption; another
	// actor's initializer, run meanwhile, would spend its deadline
	// waiting. At most CompileParallel compile at once.
	select {
	case s.compileSlots <- struct{}{}:
	case <-ctx.Done():
		return &fetchError{fmt.Errorf("waiting to compile %s: %w", p.a.CID, ctx.Err())}
	}
	defer func() { <-s.compileSlots }()
	compiling := time.Now()
	if p.pending, err = s.rt.Prepare(ctx, spec); err != nil {
		return err
	}
	p.loaded = time.Since(compiling)
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
	// The engine the runtime will really run this version on: a verifier
	// learns from the event whether the image's translation of the CID
	// ran (EngineNative) or the module's bytes under wazero.
	engine := measure.EngineWasm
	if p.pending.Engine() == "native" { // runtime.Info.Engine's name
		engine = measure.EngineNative
	}
	p.engine = p.pending.Engine()
	if err := s.cfg.Measurer.MeasureActor(pcr, measure.Actor{Name: p.a.Name, CID: c, Capabilities: p.a.Grants, Engine: engine}); err != nil {
		p.pending.Abort()
		return fmt.Errorf("measure: %w", err)
	}
	if err := p.pending.Commit(); err != nil {
		return err
	}
	return nil
}

func (s *Stick) setActor(a manifest.Actor, state string, err error) {
	s.setActorNext(a, state, err, time.Time{})
}

// setActorNext is setActor for an actor whose next retry starts at next
// (zero: none), set together so that no status shows one without the
// other.
func (s *Stick) setActorNext(a manifest.Actor, state string, err error, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &ActorStatus{Name: a.Name, CID: a.CID, Grants: slices.Clone(a.Grants), State: state}
	if err != nil {
		st.Error = err.Error()
	}
	old, ok := s.actors[a.Name]
	if ok && state == StateFailed && old.State == StateServing {
		// A failed upgrade keeps the old version serving.
		st.State, st.Serving = StateServing, old.CID
		if old.Serving != "" {
			st.Serving = old.Serving
		}
	}
	if ok && old.CID == a.CID {
		st.Attempts = old.Attempts
	}
	st.Attempts++
	st.nextTry = next
	s.actors[a.Name] = st
}

// Boot takes the stick's first manifest: it measures it into PCR 8 and
// closes PCR 8, then loads every actor it names independently: each is
// measured into PCR 9 and serves as soon as it is ready, whatever the
// others do. Once every actor has served or failed its first attempt it
// closes PCR 9 and prints the READY line, and returns. An actor the box
// failed to deliver is retried in the background with backoff (measured
// into PCR 10 when it comes up); an actor that fails otherwise is
// reported and not served.
func (s *Stick) Boot(ctx context.Context, raw []byte) error {
	if err := s.lockUpgrade(ctx); err != nil {
		return err
	}
	defer s.unlockUpgrade()
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
	// The canonical form, not the file as sent: the same signed manifest
	// in a re-spaced wrapper measures the same (manifest.CanonicalFile).
	canon, err := manifest.CanonicalFile(raw)
	if err != nil {
		return err
	}
	// The TPM's floor first: a manifest it did not record is not
	// measured, and none older is accepted after any reboot.
	if err := s.raiseFloor(m); err != nil {
		return err
	}
	if err := mm.MeasureManifest(canon); err != nil {
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

	// Each actor on its own: fetched, compiled, measured and committed
	// as soon as it can be, so one the box stalls holds back no other.
	var wg sync.WaitGroup
	for _, a := range m.Actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &prepared{a: a, tag: m.Version}
			s.prepareSlot(ctx, ctx, p)
			if wait := s.settle(p, measure.PCRBootActors, s.commit(p, measure.PCRBootActors), false); wait > 0 {
				s.startRetry(a, wait)
			}
		}()
	}
	wg.Wait()
	// Every boot actor has had its first attempt: nothing more goes to
	// PCR 9.
	if err := mm.Separator(measure.PCRBootActors); err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	// READY names what serves now, in manifest order: an actor whose
	// first try failed may already serve from a retry.
	var served, failed []string
	s.mu.Lock()
	s.ready = true
	for _, a := range m.Actors {
		if st := s.actors[a.Name]; st != nil && st.State == StateServing {
			served = append(served, a.Name)
		} else {
			failed = append(failed, a.Name)
		}
	}
	s.mu.Unlock()
	line := fmt.Sprintf("READY: manifest version %d, actors [%s]", m.Version, strings.Join(served, " "))
	if len(failed) > 0 {
		line += fmt.Sprintf(", NOT SERVED [%s]", strings.Join(failed, " "))
	}
	s.logf("%s in %d ms", line, time.Since(start).Milliseconds())
	return nil
}

// settle records the outcome of one attempt to load p (err is commit's)
// into pcr: the status and one console line. It returns the wait before
// the next try when the box was at fault, zero otherwise; upgrade marks
// an upgrade's attempt.
func (s *Stick) settle(p *prepared, pcr uint32, err error, upgrade bool) time.Duration {
	a := p.a
	if err == nil {
		s.setActor(a, StateServing, nil)
		if upgrade {
			s.logf("actor: %s now %s (%s), measured into PCR %d", a.Name, a.CID, p.engine, pcr)
		} else {
			s.logf("actor: %s %s %s, %d bytes, fetched in %d ms, loaded in %d ms, measured into PCR %d, grants [%s]",
				a.Name, a.CID, p.engine, p.size, p.fetched.Milliseconds(), p.loaded.Milliseconds(), pcr, strings.Join(a.Grants, ","))
		}
		return 0
	}
	next, wait, at := "", time.Duration(0), time.Time{}
	if retryable(err) {
		wait = s.retryDelay(1)
		next, at = fmt.Sprintf("; next try in %s", roundDelay(wait)), time.Now().Add(wait)
	}
	s.setActorNext(a, StateFailed, err, at)
	if upgrade {
		if p.revoked {
			s.logf("actor: %s upgrade to %s FAILED, old version STOPPED (version %d withholds grants it held): %v%s", a.Name, a.CID, p.tag, err, next)
		} else if _, serving := s.rt.Actor(a.Name); serving == nil {
			s.logf("actor: %s upgrade to %s FAILED, old version kept: %v%s", a.Name, a.CID, err, next)
		} else {
			// New in this upgrade: there is no old version to keep.
			s.logf("actor: %s NOT SERVED (new in this upgrade): %v%s", a.Name, err, next)
		}
	} else {
		s.logf("actor: %s NOT SERVED: %v%s", a.Name, err, next)
	}
	return wait
}

func roundDelay(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// unchanged reports whether an actor entry loads the same thing.
func unchanged(a, b manifest.Actor) bool {
	return a.Name == b.Name && a.CID == b.CID && slices.Equal(a.Grants, b.Grants) && a.Limits == b.Limits
}

// UpgradeError lists the actors an upgrade could not swap; the manifest
// itself was accepted. The old version of such an actor keeps serving
// when it holds no grant the new manifest withholds, and is stopped
// otherwise (RATIONALE.md, "Grants follow the manifest").
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
	return fmt.Sprintf("upgrade to version %d: %d actors not upgraded: %s", e.Version, len(e.Failed), strings.Join(parts, "; "))
}

// Upgrade moves the stick to a newer signed manifest. It checks the
// manifest and compiles the entries whose CID already serves (only grants
// or limits change) from the verified bytes the runtime kept: nothing so
// far asks the box. Then it stops the loaders and retriers of the entries
// it replaces or drops, without waiting for a fetch they have under way
// (such a fetch finishes, but its actor never commits), raises the TPM's
// floor and measures the manifest into PCR 10, and from that moment the
// new version is in force, at once: the actors it drops stop, so does
// every actor whose serving version holds a grant its new entry
// withholds, and the grants- or limits-only changes serve. Then it starts
// a loader for each entry with a new CID and releases the upgrade lock:
// a later manifest, and its revocations, never wait for the box
// (RATIONALE.md, "Grants follow the manifest"). Each loader fetches and
// compiles its entry, measures it into PCR 10 and swaps it atomically
// (calls in flight finish on the old version); an old version whose
// grants the new entry keeps serves until then, its receipts naming its
// own manifest. Upgrade returns once every loader has had its first try,
// holding no lock meanwhile; an actor that failed is listed in the
// returned UpgradeError (the box's failures are retried in the
// background; an entry a later manifest replaced first with
// ErrSuperseded).
//
// The upgrade happens iff the manifest is measured. A request cancelled
// (ctx) before that, while waiting for another manifest change or during
// the checks, changes nothing and returns ErrCancelled; after it the
// upgrade completes whatever ctx does: its fetches run under the stick's
// load context, bounded by FetchTimeout, not under the request's.
func (s *Stick) Upgrade(ctx context.Context, raw []byte) error {
	if err := s.lockUpgrade(ctx); err != nil {
		return err
	}
	locked := true
	defer func() {
		if locked {
			s.unlockUpgrade()
		}
	}()
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
	canon, err := manifest.CanonicalFile(raw)
	if err != nil {
		s.m.upgradeFailures.Add(1)
		return fmt.Errorf("measure manifest: %w", err)
	}
	// Each changed entry; those whose CID serves compile now, from the
	// bytes the runtime kept (no box, no load slot).
	var local, remote []*prepared
	for _, a := range next.Actors {
		if old, ok := running.Actor(a.Name); ok && unchanged(old, a) {
			continue
		}
		p := &prepared{a: a, tag: next.Version}
		if c, err := cid.Decode(a.CID); err == nil {
			_, p.local = s.rt.Module(a.Name, c)
		}
		if p.local {
			local = append(local, p)
		} else {
			remote = append(remote, p)
		}
	}
	var wg sync.WaitGroup
	for _, p := range local {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.err = s.prepareOne(ctx, p)
		}()
	}
	wg.Wait()
	abort := func() {
		for _, p := range local {
			if p.pending != nil {
				p.pending.Abort()
			}
		}
	}
	if ctx.Err() != nil {
		abort()
		s.logf("manifest: upgrade to version %d CANCELLED by its request before it was measured; version %d stays", next.Version, running.Version)
		return fmt.Errorf("%w: upgrade to version %d: %w", ErrCancelled, next.Version, context.Cause(ctx))
	}
	// No loader or retrier of an entry this manifest replaces or drops
	// may commit after it is measured: stop them. A fetch under way is
	// neither cut (under QEMU a response abandoned midway would be read
	// as the next one) nor waited for: its loader finds itself stopped,
	// under its lock, before it would commit.
	var stopped []*retrier
	for _, old := range running.Actors {
		if a, ok := next.Actor(old.Name); !ok || !unchanged(old, a) {
			if r := s.stopRetry(old.Name); r != nil {
				stopped = append(stopped, r)
			}
		}
	}
	// undo leaves everything as it was: the manifest is not measured.
	undo := func() {
		abort()
		for _, r := range stopped {
			s.resumeRetry(r.a)
		}
	}
	// The TPM's floor first (see Boot): a raise that fails accepts
	// nothing, and the retries stopped above go on.
	if err := s.raiseFloor(next); err != nil {
		undo()
		s.m.upgradeFailures.Add(1)
		return err
	}
	if err := s.cfg.Measurer.MeasureUpgrade(canon); err != nil {
		undo()
		s.m.upgradeFailures.Add(1)
		return fmt.Errorf("measure manifest: %w", err)
	}
	// The new version is in force. What it drops, or no longer grants
	// what serves, stops now, before anything serves under it and before
	// anything is asked of the box. What serves is settled: nothing of a
	// replaced entry commits any more.
	for _, old := range running.Actors {
		if _, ok := next.Actor(old.Name); !ok {
			s.rt.Unload(old.Name)
			s.mu.Lock()
			delete(s.actors, old.Name)
			s.mu.Unlock()
			s.logf("actor: %s removed by version %d", old.Name, next.Version)
		}
	}
	for _, p := range append(slices.Clone(local), remote...) {
		if in, err := s.rt.Actor(p.a.Name); err == nil && !subset(in.Grants, p.a.Grants) {
			p.revoked = true
			s.rt.Unload(p.a.Name)
			s.mu.Lock()
			if st := s.actors[p.a.Name]; st != nil {
				st.State, st.Serving = StateLoading, ""
			}
			s.mu.Unlock()
			s.logf("actor: %s old version stopped: version %d withholds grants it held", p.a.Name, next.Version)
		}
	}
	for _, r := range stopped {
		if r.first != nil {
			s.logf("actor: %s load of %s cancelled by version %d", r.a.Name, r.a.CID, next.Version)
		} else {
			s.logf("actor: %s retries of %s cancelled by version %d", r.a.Name, r.a.CID, next.Version)
		}
	}
	s.mu.Lock()
	s.manifest = next
	s.manifests = append(s.manifests, raw)
	for _, p := range remote {
		if _, ok := s.actors[p.a.Name]; !ok {
			s.actors[p.a.Name] = &ActorStatus{Name: p.a.Name, CID: p.a.CID, Grants: slices.Clone(p.a.Grants), State: StateLoading}
		}
	}
	s.mu.Unlock()
	s.logf("manifest: upgraded to version %d (%d actors changed), measured into PCR %d", next.Version, len(local)+len(remote), measure.PCRRuntime)
	ue := &UpgradeError{Version: next.Version, Failed: map[string]error{}}
	for _, p := range local {
		err := s.commit(p, measure.PCRRuntime)
		if wait := s.settle(p, measure.PCRRuntime, err, true); wait > 0 {
			s.startRetry(p.a, wait)
		}
		if err != nil {
			ue.Failed[p.a.Name] = err
		}
	}
	// Then the new CIDs, each by its own loader as the box delivers it,
	// under the stick's load context: the request may go away, the
	// upgrade it started completes (or its failures go to the retries),
	// unless a later manifest replaces the entry first. The lock goes
	// now: that later manifest waits for no fetch of this one.
	var loaders []*retrier
	for _, p := range remote {
		loaders = append(loaders, s.startLoader(p))
	}
	s.unlockUpgrade()
	locked = false
	for _, r := range loaders {
		if err := <-r.first; err != nil {
			ue.Failed[r.a.Name] = err
		}
	}
	s.m.upgrades.Add(1)
	if len(ue.Failed) > 0 {
		return ue
	}
	return nil
}

// subset reports whether every grant in have is also in allowed.
func subset(have, allowed []string) bool {
	for _, g := range have {
		if !slices.Contains(allowed, g) {
			return false
		}
	}
	return true
}

// resumeRetry schedules again the retries of a, stopped for an upgrade
// that was then cancelled.
func (s *Stick) resumeRetry(a manifest.Actor) {
	d := s.retryDelay(1)
	s.mu.Lock()
	if st := s.actors[a.Name]; st != nil {
		st.nextTry = time.Now().Add(d)
	}
	s.mu.Unlock()
	s.startRetry(a, d)
}

// retrier is the one goroutine that loads an upgrade's new entry (a
// loader: first is set) or retries an actor's manifest entry after the
// box failed to deliver it. There is at most one per actor name in
// Stick.retriers; one a newer manifest stopped may still be finishing a
// fetch, outside the map, and never commits.
type retrier struct {
	a      manifest.Actor
	cancel context.CancelFunc // ends the wait for the next try
	done   chan struct{}
	// first, for a loader, receives the outcome of its first try
	// (ErrSuperseded if it was stopped before it committed); p is that
	// try's entry as the upgrade prepared it.
	first chan error
	p     *prepared
	// mu orders stopping against committing: once stopped is set, a
	// try under way finishes but does not commit, and no other follows.
	// The outcome of a try (commit, status, console) is recorded under
	// mu, so none is recorded for an entry no longer in force.
	mu      sync.Mutex
	stopped bool
}

// retryDelay is the wait before retry n (1, 2, ...): RetryMin doubling
// up to RetryMax, with "equal jitter" (a uniform draw from the upper half)
// so that actors that failed together do not retry together.
func (s *Stick) retryDelay(n int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}

// startRetry schedules retries of a, whose first attempt just failed, the
// first after d.
func (s *Stick) startRetry(a manifest.Actor, d time.Duration) {
	s.run(&retrier{a: a}, d)
}

// startLoader starts the loader of p, an upgrade's entry with a new CID:
// its first try starts at once, and its outcome arrives on first.
func (s *Stick) startLoader(p *prepared) *retrier {
	r := &retrier{a: p.a, p: p, first: make(chan error, 1)}
	if !s.run(r, 0) {
		r.first <- fmt.Errorf("%w: another load of %s is under way", ErrSuperseded, p.a.Name)
	}
	return r
}

// run registers r and starts it; it reports false if r could not start.
func (s *Stick) run(r *retrier, d time.Duration) bool {
	ctx, cancel := context.WithCancel(s.loadCtx)
	r.cancel, r.done = cancel, make(chan struct{})
	s.mu.Lock()
	if s.retriers == nil {
		s.retriers = map[string]*retrier{}
	}
	if old := s.retriers[r.a.Name]; old != nil {
		// Cannot happen (Boot and Upgrade stop a name's loaders
		// before loading it); never run two.
		s.mu.Unlock()
		cancel()
		return false
	}
	s.retriers[r.a.Name] = r
	s.loaders.Add(1)
	s.mu.Unlock()
	go s.retry(ctx, r, d)
	return true
}

// stopRetry stops the loader or retrier of actor name and returns it (nil
// if there was none) without waiting for it: a try already fetching is
// not cut (under QEMU the link to the box is one stream, and a response
// abandoned in the middle would be read as the start of the next one)
// but finishes in the background, and its actor never commits: r.stopped
// is set under r.mu, under which a try commits.
func (s *Stick) stopRetry(name string) *retrier {
	s.mu.Lock()
	r := s.retriers[name]
	if r != nil {
		delete(s.retriers, name)
	}
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	s.mu.Lock()
	if st := s.actors[name]; st != nil {
		st.nextTry, st.trying = time.Time{}, false
	}
	s.mu.Unlock()
	return r
}

// stopRetries stops every loader and retrier, cutting tries under way,
// and waits for them (Close).
func (s *Stick) stopRetries() {
	s.loadStop()
	s.mu.Lock()
	var names []string
	for n := range s.retriers {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		s.stopRetry(n)
	}
	s.loaders.Wait()
}

// retry runs r: a loader's first try at once, a retrier's after wait;
// then tries again with growing waits, until the actor serves or fails
// otherwise, or r is stopped (waitCtx ends when it is). A retried actor
// is measured into PCR 10: it loads after its first attempt, like an
// upgrade's actor, and PCR 9 may already be closed.
func (s *Stick) retry(waitCtx context.Context, r *retrier, wait time.Duration) {
	defer s.loaders.Done()
	defer close(r.done)
	a := r.a
	for n := 1; ; n++ {
		first := r.first != nil && n == 1
		if !first {
			t := time.NewTimer(wait)
			select {
			case <-waitCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			r.report(first, fmt.Errorf("%w (version %d)", ErrSuperseded, s.ManifestVersion()))
			return
		}
		if !first {
			s.mu.Lock()
			if st := s.actors[a.Name]; st != nil {
				st.nextTry, st.trying = time.Time{}, true
			}
			s.mu.Unlock()
		}
		r.mu.Unlock()
		p := r.p
		if !first {
			p = &prepared{a: a, tag: s.ManifestVersion()}
		}
		s.prepareSlot(waitCtx, s.loadCtx, p)
		r.mu.Lock()
		if r.stopped || s.loadCtx.Err() != nil {
			// A newer manifest drops or replaces this entry (it
			// did not wait for this fetch), or the stick closes:
			// it no longer loads.
			closing := s.loadCtx.Err() != nil
			r.mu.Unlock()
			if p.pending != nil {
				p.pending.Abort()
			}
			if !closing {
				s.logf("actor: %s try of %s ended after a later manifest replaced its entry: discarded", a.Name, a.CID)
			}
			r.report(first, fmt.Errorf("%w (version %d)", ErrSuperseded, s.ManifestVersion()))
			return
		}
		err := s.commit(p, measure.PCRRuntime)
		if first {
			wait = s.settle(p, measure.PCRRuntime, err, true)
			r.mu.Unlock()
			r.report(true, err)
			if wait == 0 {
				s.retryDone(r)
				return
			}
			continue
		}
		s.mu.Lock()
		attempt := 1
		if st := s.actors[a.Name]; st != nil {
			attempt = st.Attempts + 1
		}
		s.mu.Unlock()
		if err == nil {
			s.setActor(a, StateServing, nil)
			s.logf("actor: %s %s %d bytes, fetched in %d ms, loaded in %d ms, measured into PCR %d on attempt %d, grants [%s]",
				a.Name, a.CID, p.size, p.fetched.Milliseconds(), p.loaded.Milliseconds(), measure.PCRRuntime, attempt, strings.Join(a.Grants, ","))
			r.mu.Unlock()
			s.retryDone(r)
			return
		}
		if !retryable(err) {
			s.setActor(a, StateFailed, err)
			s.logf("actor: %s attempt %d FAILED: %v; no more tries", a.Name, attempt, err)
			r.mu.Unlock()
			s.retryDone(r)
			return
		}
		retries := n // retries so far, this one included
		if r.first != nil {
			retries-- // a loader's first try is not a retry
		}
		wait = s.retryDelay(retries + 1)
		s.setActorNext(a, StateFailed, err, time.Now().Add(wait))
		s.logf("actor: %s attempt %d FAILED: %v; next try in %s", a.Name, attempt, err, roundDelay(wait))
		r.mu.Unlock()
	}
}

// report sends the outcome of a loader's first try.
func (r *retrier) report(first bool, err error) {
	if first {
		r.first <- err
	}
}

// retryDone forgets r once it has nothing more to do.
func (s *Stick) retryDone(r *retrier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retriers[r.a.Name] == r {
		delete(s.retriers, r.a.Name)
	}
}

// withNextTry is a copy of a for the status at now, NextTryMS filled in.
func (a *ActorStatus) withNextTry(now time.Time) ActorStatus {
	c := *a
	switch {
	case a.trying:
		c.NextTryMS = new(int64)
	case !a.nextTry.IsZero():
		ms := max(a.nextTry.Sub(now).Milliseconds(), 0)
		c.NextTryMS = &ms
	}
	return c
}
