// Package runtime runs actors: WebAssembly modules, named by CID, each
// isolated in its own wazero runtime with only the capabilities its manifest
// entry grants. The same code runs on the stick (wazero's interpreter, on
// bare metal) and on a Linux host (wazero's compiler where it has one).
//
// Actors speak waPC (ABI.md in this directory): the runtime calls the
// guest's __guest_call export, the guest reads its request and writes its
// response through the "wapc" host module, and reaches capabilities with
// __host_call(binding, namespace, operation, payload). A call to a
// capability the actor was not granted returns an error to the actor, is
// counted and logged, and never reaches the provider.
//
// Each actor version holds a small pool of module instances (at most its
// max_concurrent). A call that traps, runs past its deadline or breaks the
// ABI fails alone: its instance is closed and a fresh one takes its place on
// the next call. Upgrade swaps an actor's version atomically: calls in flight
// finish on the old instances, new calls go to the new ones, and a version
// that fails to load never replaces the one serving.
package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/tetratelabs/wazero"

	"github.com/teastick/teastick/image/manifest"
)

// Engine selects how wazero runs modules.
type Engine int

const (
	// EngineAuto: the compiler where wazero supports it (amd64 and arm64
	// hosts), else the interpreter (the stick).
	EngineAuto Engine = iota
	// EngineInterpreter: wazero's interpreter everywhere.
	EngineInterpreter
	// EngineCompiler: wazero's compiler; Load fails where it is unsupported.
	EngineCompiler
)

func (e Engine) String() string {
	switch e {
	case EngineInterpreter:
		return "interpreter"
	case EngineCompiler:
		return "compiler"
	}
	return "auto"
}

// Limits bound one actor. A zero field takes the runtime's default
// (DefaultLimits); a field above MaxLimits is refused.
type Limits struct {
	// MemoryPages caps the actor's linear memory, in 64 KiB pages.
	MemoryPages uint32
	// Timeout bounds one invocation, wall clock (an instance's initializers
	// get at least Config.InitTimeout).
	Timeout time.Duration
	// MaxRequest and MaxResponse bound payloads in bytes.
	MaxRequest  uint32
	MaxResponse uint32
	// MaxConcurrent bounds calls in flight, and so the instance pool.
	MaxConcurrent uint32
}

// DefaultLimits apply to fields a manifest leaves zero.
var DefaultLimits = Limits{
	MemoryPages:   256, // 16 MiB
	Timeout:       2 * time.Second,
	MaxRequest:    1 << 20,
	MaxResponse:   1 << 20,
	MaxConcurrent: 2,
}

// MaxLimits are the largest limits a manifest may ask for.
var MaxLimits = Limits{
	MemoryPages:   4096, // 256 MiB
	Timeout:       60 * time.Second,
	MaxRequest:    16 << 20,
	MaxResponse:   16 << 20,
	MaxConcurrent: 16,
}

// withDefaults fills zero fields and checks the rest.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits
	if l.MemoryPages != 0 {
		d.MemoryPages = l.MemoryPages
	}
	if l.Timeout != 0 {
		d.Timeout = l.Timeout
	}
	if l.MaxRequest != 0 {
		d.MaxRequest = l.MaxRequest
	}
	if l.MaxResponse != 0 {
		d.MaxResponse = l.MaxResponse
	}
	if l.MaxConcurrent != 0 {
		d.MaxConcurrent = l.MaxConcurrent
	}
	switch {
	case d.MemoryPages > MaxLimits.MemoryPages:
		return d, fmt.Errorf("%w: memory_pages %d above %d", ErrInvalidLimits, d.MemoryPages, MaxLimits.MemoryPages)
	case d.Timeout < 0 || d.Timeout > MaxLimits.Timeout:
		return d, fmt.Errorf("%w: timeout %v outside 0..%v", ErrInvalidLimits, d.Timeout, MaxLimits.Timeout)
	case d.MaxRequest > MaxLimits.MaxRequest:
		return d, fmt.Errorf("%w: max_request %d above %d", ErrInvalidLimits, d.MaxRequest, MaxLimits.MaxRequest)
	case d.MaxResponse > MaxLimits.MaxResponse:
		return d, fmt.Errorf("%w: max_response %d above %d", ErrInvalidLimits, d.MaxResponse, MaxLimits.MaxResponse)
	case d.MaxConcurrent > MaxLimits.MaxConcurrent:
		return d, fmt.Errorf("%w: max_concurrent %d above %d", ErrInvalidLimits, d.MaxConcurrent, MaxLimits.MaxConcurrent)
	}
	return d, nil
}

// Spec is what the runtime needs to load one actor: its manifest entry and
// its module bytes.
type Spec struct {
	Name   string
	CID    cid.Cid
	Grants []string
	Limits Limits
	Module []byte
	// Native asks for the actor's translation compiled into this binary
	// (package native, made by runtime/native/translate): it runs
	// natively if the binary holds exactly this CID, translated under the
	// same memory limit; else the interpreter runs it. Info.Engine says
	// which. Module may then be nil (the code is the binary's); when
	// given, it is checked against the CID as always.
	Native bool
	// Tag is opaque to the runtime and returned with each call the
	// version runs (Served): the stick puts there the version of the
	// manifest whose entry this is.
	Tag uint64

	// preinit marks PrepareNative's run: the initializers' imports are
	// recorded and the mutable globals exported (preinit.go).
	preinit *initRecord
}

// Config configures a Runtime. Zero values are usable: no box (the ipfs
// capability answers that none is configured), no result key, an in-memory
// key-value store, crypto/rand, the system clock, and slog's default logger.
type Config struct {
	Engine Engine
	// QueueWait is how long a call waits for one of the actor's
	// max_concurrent slots before failing with ErrBusy (default 250 ms).
	QueueWait time.Duration
	// InitTimeout is the least time an instance's initializers
	// (_initialize, _start, wapc_init) get, whatever the actor's Timeout
	// (default 30 s): a Go actor's runtime starts in them, and on the
	// stick they share the core fairly with the calls in flight (the
	// meter yields), so under load they take many times their own work.
	InitTimeout time.Duration
	Log         *slog.Logger

	// Providers behind the capabilities.
	KV     KV          // per-actor key-value store (default NewMemKV(DefaultKVLimits))
	Blocks BlockStore  // verified IPFS blocks through the box
	Files  FileFetcher // verified UnixFS files through the box
	Signer Signer      // the stick's result key
	Rand   io.Reader   // random capability and WASI random_get
	Now    func() time.Time
}

// Runtime holds the loaded actors.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	start time.Time

	mu     sync.Mutex
	actors map[string]*slot
	closed bool
}

// slot is one actor name; its version changes on upgrade.
type slot struct {
	mu  sync.Mutex
	cur *version
}

// New returns an empty runtime.
func New(cfg Config) *Runtime {
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 250 * time.Millisecond
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.KV == nil {
		cfg.KV = NewMemKV(DefaultKVLimits)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runtime{cfg: cfg, log: cfg.Log, start: cfg.Now(), actors: map[string]*slot{}}
}

func (r *Runtime) runtimeConfig() (wazero.RuntimeConfig, error) {
	switch r.cfg.Engine {
	case EngineInterpreter:
		return wazero.NewRuntimeConfigInterpreter(), nil
	case EngineCompiler:
		if !compilerSupported() {
			return nil, fmt.Errorf("%w: wazero has no compiler for this platform", ErrInvalidModule)
		}
		return wazero.NewRuntimeConfigCompiler(), nil
	}
	return wazero.NewRuntimeConfig(), nil
}

// Load verifies, compiles and instantiates an actor and starts serving it
// under spec.Name. Loading a name already served is an upgrade (Upgrade).
func (r *Runtime) Load(ctx context.Context, spec Spec) error {
	return r.Upgrade(ctx, spec)
}

// Upgrade replaces the actor spec.Name by spec atomically: the new version
// is verified, compiled and started (one instance, its initializers run)
// before it takes any call; calls in flight finish on the old version, which
// is closed when the last of them returns. On any error the old version, if
// any, keeps serving.
func (r *Runtime) Upgrade(ctx context.Context, spec Spec) error {
	p, err := r.Prepare(ctx, spec)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is an actor version verified, compiled and started, not yet
// serving: the stick measures it between Prepare and Commit, so the event
// log names exactly the actors that served.
type Pending struct {
	r    *Runtime
	v    *version
	done bool
}

// Prepare does everything Upgrade does short of serving spec.
func (r *Runtime) Prepare(ctx context.Context, spec Spec) (*Pending, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	v, err := r.newVersion(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("load %s (%s): %w", spec.Name, spec.CID, err)
	}
	return &Pending{r: r, v: v}, nil
}

// Commit makes the prepared version serve, replacing any other.
func (p *Pending) Commit() error {
	if p.done {
		return errors.New("runtime: pending version already committed or aborted")
	}
	p.done = true
	r, v := p.r, p.v
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		v.retire()
		return ErrClosed
	}
	s := r.actors[v.name]
	if s == nil {
		s = &slot{}
		r.actors[v.name] = s
	}
	r.mu.Unlock()
	s.mu.Lock()
	old := s.cur
	s.cur = v
	s.mu.Unlock()
	// Debug: the stick prints its own line for each (actor: NAME ...,
	// with what it measured); twice would be noise on its console.
	if old != nil {
		r.log.Debug("actor upgraded", "actor", v.name, "from", old.cid.String(), "to", v.cid.String())
		old.retire()
	} else {
		r.log.Debug("actor loaded", "actor", v.name, "cid", v.cid.String(), "grants", v.grants)
	}
	return nil
}

// Engine is the engine the prepared version runs on, as Info will report
// it once committed: "native", "interpreter" or "compiler". The stick
// measures it before Commit.
func (p *Pending) Engine() string { return p.v.engine }

// Abort discards the prepared version.
func (p *Pending) Abort() {
	if !p.done {
		p.done = true
		p.v.retire()
	}
}

// Unload stops serving an actor; calls in flight finish first.
func (r *Runtime) Unload(name string) error {
	r.mu.Lock()
	s := r.actors[name]
	delete(r.actors, name)
	r.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %q", ErrUnknownActor, name)
	}
	s.mu.Lock()
	v := s.cur
	s.cur = nil
	s.mu.Unlock()
	if v != nil {
		v.retire()
	}
	return nil
}

// acquire returns the version serving name, counted as in use until
// release.
func (r *Runtime) acquire(name string) (*version, error) {
	r.mu.Lock()
	s, closed := r.actors[name], r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownActor, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.cur
	if v == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownActor, name)
	}
	v.hold()
	return v, nil
}

// Invoke calls operation on the actor name with payload and returns its
// response. Errors wrap the sentinels in errors.go.
func (r *Runtime) Invoke(ctx context.Context, name, operation string, payload []byte) ([]byte, error) {
	out, _, err := r.InvokeVersion(ctx, name, operation, payload)
	return out, err
}

// Served names the version of an actor that ran a call.
type Served struct {
	CID    cid.Cid
	Grants []string
	Tag    uint64
}

// InvokeVersion is Invoke that also returns which version ran the call
// (during an upgrade, the old or the new one), for receipts.
func (r *Runtime) InvokeVersion(ctx context.Context, name, operation string, payload []byte) ([]byte, Served, error) {
	v, err := r.acquire(name)
	if err != nil {
		return nil, Served{}, err
	}
	defer v.release()
	out, err := v.invoke(ctx, operation, payload)
	return out, Served{CID: v.cid, Grants: slices.Clone(v.grants), Tag: v.tag}, err
}

// Module returns the module bytes of the version serving name when its
// CID is c: bytes verified against c when they loaded, so a new version
// of the same module (other grants, other limits) needs no fetch.
func (r *Runtime) Module(name string, c cid.Cid) ([]byte, bool) {
	v, err := r.acquire(name)
	if err != nil {
		return nil, false
	}
	defer v.release()
	if !v.cid.Equals(c) || v.module == nil {
		return nil, false
	}
	return v.module, true
}

// Info describes a loaded actor.
type Info struct {
	Name   string
	CID    cid.Cid
	Grants []string
	Limits Limits
	Engine string
	Stats  Stats
}

// Actor describes the version serving name.
func (r *Runtime) Actor(name string) (Info, error) {
	v, err := r.acquire(name)
	if err != nil {
		return Info{}, err
	}
	defer v.release()
	return v.info(), nil
}

// Limits returns the limits of the version serving name (defaults
// applied): what a caller checks a request against, without the counters
// Actor gathers.
func (r *Runtime) Limits(name string) (Limits, error) {
	v, err := r.acquire(name)
	if err != nil {
		return Limits{}, err
	}
	defer v.release()
	return v.limits, nil
}

// Actors describes every loaded actor, sorted by name.
func (r *Runtime) Actors() []Info {
	r.mu.Lock()
	names := make([]string, 0, len(r.actors))
	for n := range r.actors {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	out := make([]Info, 0, len(names))
	for _, n := range names {
		if in, err := r.Actor(n); err == nil {
			out = append(out, in)
		}
	}
	return out
}

// Close stops every actor after its calls in flight return.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	slots := r.actors
	r.actors = map[string]*slot{}
	r.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		v := s.cur
		s.cur = nil
		s.mu.Unlock()
		if v != nil {
			v.retire()
		}
	}
	return nil
}

// SpecFrom turns a manifest entry and its fetched module into a Spec.
func SpecFrom(a manifest.Actor, module []byte) (Spec, error) {
	c, err := cid.Decode(a.CID)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: actor %q: CID %q: %v", ErrCIDMismatch, a.Name, a.CID, err)
	}
	return Spec{
		Name:   a.Name,
		CID:    c,
		Grants: a.Grants,
		Limits: Limits{
			MemoryPages:   a.Limits.MemoryPages,
			Timeout:       time.Duration(a.Limits.TimeoutMillis) * time.Millisecond,
			MaxRequest:    a.Limits.MaxRequest,
			MaxResponse:   a.Limits.MaxResponse,
			MaxConcurrent: a.Limits.MaxConcurrent,
		},
		Module: module,
	}, nil
}
