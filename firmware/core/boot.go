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
	if !kept {
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
	spec.Tag = p.tag
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
			s.settle(p, measure.PCRBootActors, s.commit(p, measure.PCRBootActors), nil)
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
// into pcr: the status, one console line, and a retry when the box was at
// fault. ue, when not nil, collects an upgrade's failures.
func (s *Stick) settle(p *prepared, pcr uint32, err error, ue *UpgradeError) {
	a := p.a
	if err == nil {
		s.setActor(a, StateServing, nil)
		if ue != nil {
			s.logf("actor: %s now %s, measured into PCR %d", a.Name, a.CID, pcr)
		} else {
			s.logf("actor: %s %s %d bytes, fetched in %d ms, loaded in %d ms, measured into PCR %d, grants [%s]",
				a.Name, a.CID, p.size, p.fetched.Milliseconds(), p.loaded.Milliseconds(), pcr, strings.Join(a.Grants, ","))
		}
		return
	}
	next, wait, at := "", time.Duration(0), time.Time{}
	if retryable(err) {
		wait = s.retryDelay(1)
		next, at = fmt.Sprintf("; next try in %s", roundDelay(wait)), time.Now().Add(wait)
	}
	s.setActorNext(a, StateFailed, err, at)
	if ue != nil {
		ue.Failed[a.Name] = err
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
	if wait > 0 {
		s.startRetry(a, wait)
	}
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
// manifest, stops the retries of the entries it replaces or drops, and
// compiles the entries whose CID already serves (only grants or limits
// change) from the verified bytes the runtime kept: nothing so far asks
// the box. Then it raises the TPM's floor and measures the manifest into
// PCR 10, and from that moment the new version is in force, at once: the
// actors it drops stop, so does every actor whose serving version holds a
// grant its new entry withholds, and the grants- or limits-only changes
// serve. Only then does it fetch and compile the entries with a new CID,
// each measured into PCR 10 and swapped atomically as soon as it is ready
// (calls in flight finish on the old version); an old version whose
// grants the new entry keeps serves until then, its receipts naming its
// own manifest. A revocation never waits for the box (RATIONALE.md,
// "Grants follow the manifest"). An actor that failed is listed
// in the returned UpgradeError (the box's failures are retried in the
// background).
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
	defer s.unlockUpgrade()
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
	// No retry of an entry this manifest replaces or removes may load
	// after it is measured: stop them, and wait, before anything else.
	var stopped []manifest.Actor
	for _, old := range running.Actors {
		if a, ok := next.Actor(old.Name); !ok || !unchanged(old, a) {
			if s.stopRetry(old.Name) {
				stopped = append(stopped, old)
			}
		}
	}
	// Each changed entry; those whose CID serves compile now, from the
	// bytes the runtime kept (no box, no load slot). An entry whose
	// serving version holds a grant it withholds is revoked: that
	// version stops when the manifest is measured.
	var local, remote []*prepared
	for _, a := range next.Actors {
		if old, ok := running.Actor(a.Name); ok && unchanged(old, a) {
			continue
		}
		p := &prepared{a: a, tag: next.Version}
		if in, err := s.rt.Actor(a.Name); err == nil && !subset(in.Grants, a.Grants) {
			p.revoked = true
		}
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
	// undo leaves everything as it was: the manifest is not measured.
	undo := func() {
		for _, p := range local {
			if p.pending != nil {
				p.pending.Abort()
			}
		}
		for _, a := range stopped {
			s.resumeRetry(a)
		}
	}
	if ctx.Err() != nil {
		undo()
		s.logf("manifest: upgrade to version %d CANCELLED by its request before it was measured; version %d stays", next.Version, running.Version)
		return fmt.Errorf("%w: upgrade to version %d: %w", ErrCancelled, next.Version, context.Cause(ctx))
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
	// anything is asked of the box.
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
		if p.revoked {
			s.rt.Unload(p.a.Name)
			s.mu.Lock()
			if st := s.actors[p.a.Name]; st != nil {
				st.State, st.Serving = StateLoading, ""
			}
			s.mu.Unlock()
			s.logf("actor: %s old version stopped: version %d withholds grants it held", p.a.Name, next.Version)
		}
	}
	for _, a := range stopped {
		s.logf("actor: %s retries of %s cancelled by version %d", a.Name, a.CID, next.Version)
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
	var settled sync.Mutex
	for _, p := range local {
		s.settle(p, measure.PCRRuntime, s.commit(p, measure.PCRRuntime), ue)
	}
	// Then the new CIDs, each on its own as the box delivers it, under
	// the stick's load context: the request may go away, the upgrade
	// it started completes (or its failures go to the retries).
	for _, p := range remote {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.prepareSlot(s.loadCtx, s.loadCtx, p)
			err := s.commit(p, measure.PCRRuntime)
			settled.Lock()
			defer settled.Unlock()
			s.settle(p, measure.PCRRuntime, err, ue)
		}()
	}
	wg.Wait()
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

// retrier is the one goroutine that retries an actor's manifest entry
// after the box failed to deliver it. There is at most one per actor
// name, and none while Boot or Upgrade loads that name.
type retrier struct {
	a      manifest.Actor
	cancel context.CancelFunc // ends the wait for the next try
	done   chan struct{}
	// mu orders stopping against committing: once stopped is set, a
	// try under way finishes but does not commit, and no other follows.
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
	ctx, cancel := context.WithCancel(s.loadCtx)
	r := &retrier{a: a, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.retriers == nil {
		s.retriers = map[string]*retrier{}
	}
	if old := s.retriers[a.Name]; old != nil {
		// Cannot happen (Boot and Upgrade stop a name's retries
		// before loading it); never run two.
		s.mu.Unlock()
		cancel()
		return
	}
	s.retriers[a.Name] = r
	s.mu.Unlock()
	go s.retry(ctx, r, d)
}

// stopRetry cancels the retries of actor name and waits until they have
// stopped; it reports whether there were any. A try already fetching is
// not cut but waited for and discarded: under QEMU the link to the box
// is one stream, and a response abandoned in the middle would be read as
// the start of the next one.
func (s *Stick) stopRetry(name string) bool {
	s.mu.Lock()
	r := s.retriers[name]
	s.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
	s.mu.Lock()
	if s.retriers[name] == r {
		delete(s.retriers, name)
	}
	if st := s.actors[name]; st != nil {
		st.nextTry, st.trying = time.Time{}, false
	}
	s.mu.Unlock()
	return true
}

// stopRetries stops every retry, cutting tries under way (Close).
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
}

// retry loads r.a again after wait, then with growing waits, until it
// serves or it is stopped (waitCtx ends when it is). A retried actor is
// measured into PCR 10: it loads after its first attempt, like an
// upgrade's actor, and PCR 9 may already be closed.
func (s *Stick) retry(waitCtx context.Context, r *retrier, wait time.Duration) {
	defer close(r.done)
	a := r.a
	for n := 1; ; n++ {
		t := time.NewTimer(wait)
		select {
		case <-waitCtx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		if st := s.actors[a.Name]; st != nil {
			st.nextTry, st.trying = time.Time{}, true
		}
		s.mu.Unlock()
		p := &prepared{a: a, tag: s.ManifestVersion()}
		s.prepareSlot(waitCtx, s.loadCtx, p)
		r.mu.Lock()
		if r.stopped || s.loadCtx.Err() != nil {
			// A newer manifest drops or replaces this entry (it
			// waits for this), or the stick closes: it no longer
			// loads.
			r.mu.Unlock()
			if p.pending != nil {
				p.pending.Abort()
			}
			return
		}
		err := s.commit(p, measure.PCRRuntime)
		r.mu.Unlock()
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
			s.retryDone(r)
			return
		}
		if !retryable(err) {
			s.setActor(a, StateFailed, err)
			s.logf("actor: %s attempt %d FAILED: %v; no more tries", a.Name, attempt, err)
			s.retryDone(r)
			return
		}
		wait = s.retryDelay(n + 1)
		s.setActorNext(a, StateFailed, err, time.Now().Add(wait))
		s.logf("actor: %s attempt %d FAILED: %v; next try in %s", a.Name, attempt, err, roundDelay(wait))
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
