// Package core is the stick: what sits between a board (its TPM, its link
// to the box, its console) and the people who use it. The same code runs on
// bare metal (firmware/stick built for GOOS=tamago) and as the hosted stick
// on Linux; the board-specific parts hand it a TPM, a measurer that resumed
// measured boot, a verified fetcher for the box's IPFS node and an actor
// runtime.
//
// Its life:
//
//   - New: generate the channel key (the TLS key of the API, bound into every
//     quote) and the result key (signs receipts), and measure both into PCR 9
//     before anything is served, so a quote names the keys of its boot.
//   - Boot: take the first signed release manifest, measure it (PCR 8, then a
//     separator), fetch, verify, measure (PCR 9) and load each actor it
//     names, each on its own and serving as soon as it is ready; once every
//     actor had its first try, close PCR 9 with a separator and print one
//     READY line. An actor that fails is not served and is reported; the
//     others come up. One the box failed to deliver is retried with backoff
//     and measured into PCR 10 when it comes up.
//   - Serve: Handler is the HTTP API (see firmware/core/openapi.yaml); every invoke
//     result carries a receipt.
//   - Upgrade: a newer manifest is measured into PCR 10 with every changed
//     actor, each swapped atomically; a failure keeps the old version.
//
// Fail closed: a stick whose measured boot failed serves no actor.
package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/firmware/receipt"
	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/tpm/attest"
	"github.com/teastick/teastick/tpm/eventlog"
	"github.com/teastick/teastick/tpm/measure"
)

// Config is what a board hands the core.
type Config struct {
	// Version and Board name the firmware and where it runs.
	Version, Board string
	// TPM is the stick's TPM; nil when there is none.
	TPM transport.TPM
	// Measurer carries measured boot on; nil when it did not succeed, and
	// NotMeasured says why.
	Measurer    *measure.Measurer
	NotMeasured error
	// Governance are the keys whose manifests the stick accepts (built
	// into the image).
	Governance []ed25519.PublicKey
	// Actors configures the actor runtime the core creates; the core sets
	// its Signer to the result key (crypto.sign).
	Actors runtime.Config
	// Fetch returns verified content by CID from the box (its errors name
	// the CID, as netstack/ipfs.Client's do); nil when the stick has no
	// box.
	Fetch func(ctx context.Context, c cid.Cid) ([]byte, error)
	// FetchTimeout bounds fetching one actor (default 2 minutes).
	FetchTimeout time.Duration
	// LoadParallel is how many actors are fetched and compiled at once
	// (default 4; 1 where the link to the box carries one stream, as
	// QEMU's guestfwd does).
	LoadParallel int
	// CompileParallel is how many of those loads compile and run their
	// initializers at once (default LoadParallel). A board with one core
	// and no preemption sets 1: a compile holds the core for seconds, and
	// an initializer running beside it would spend its deadline waiting.
	CompileParallel int
	// Log receives the stick's console lines (nil: discarded).
	Log io.Writer
	// LogLevel is the least level of the runtime's lines that reach Log
	// (nil: info); the console's verbose command lowers it to debug.
	LogLevel slog.Leveler
	// Uptime is the time since reset (default: since New).
	Uptime func() time.Duration
	// MaxInFlight bounds API requests served at once; beyond it the API
	// answers 503 (default 64).
	MaxInFlight int
	// Timeouts bound how long an API client may hold a connection
	// (DefaultTimeouts for each zero field).
	Timeouts Timeouts
	// TPMProbeInterval is how often the stick checks that its TPM still
	// answers when nothing else asks (DefaultTPMProbeInterval when zero;
	// negative: never). Every status request probes it too, and every
	// failed TPM command marks the fault.
	TPMProbeInterval time.Duration
	// RetryMin and RetryMax bound the wait before retrying an actor the
	// box failed to deliver: RetryMin (default 5 s) doubling at each
	// failure up to RetryMax (default 5 minutes), each wait drawn from
	// its upper half.
	RetryMin, RetryMax time.Duration
}

// Actor states in Status.
const (
	StateLoading = "loading"
	StateServing = "serving"
	StateFailed  = "failed"
)

// ActorStatus is one manifest actor as the stick sees it.
type ActorStatus struct {
	Name    string   `json:"name"`
	CID     string   `json:"cid"`
	Grants  []string `json:"grants"`
	State   string   `json:"state"`
	Error   string   `json:"error,omitempty"`
	Engine  string   `json:"engine,omitempty"`
	Calls   uint64   `json:"calls"`
	Failed  uint64   `json:"failures"`
	Faults  uint64   `json:"faults"`
	Busy    uint64   `json:"busy"`
	Denied  uint64   `json:"denied"`
	Serving string   `json:"serving_cid,omitempty"`
	// Attempts counts the tries to load the entry in force (cid).
	Attempts int `json:"attempts,omitempty"`
	// NextTryMS is set while the stick keeps trying to load the entry
	// after a failure of the box: milliseconds until the next try, 0
	// while a try is under way.
	NextTryMS *int64 `json:"next_try_in_ms,omitempty"`

	nextTry time.Time // when the next retry starts
	trying  bool      // a retry is under way
}

// Stick is the running stick.
type Stick struct {
	cfg Config
	rt  *runtime.Runtime
	att *attest.Attester
	tpm *tpmMonitor // nil without a TPM
	// stop ends the TPM probe.
	stop     chan struct{}
	stopOnce sync.Once

	channel    *ecdsa.PrivateKey
	channelDER []byte

	results *receipt.Signer

	certOnce sync.Once
	cert     *attest.Certification
	certErr  error

	// enrolment is gathered once per boot (GET /v1/enrol is
	// unauthenticated, and the EK is an RSA key the TPM derives anew
	// each time it is asked).
	enrolMu   sync.Mutex
	enrolment *attest.Enrolment

	// upgrade serialises manifest changes (boot and upgrades): a token
	// channel, so that a request waiting for it can be cancelled
	// (lockUpgrade).
	upgrade chan struct{}

	mu        sync.Mutex
	manifest  *manifest.Manifest
	manifests [][]byte // accepted signed manifests, boot first
	actors    map[string]*ActorStatus
	ready     bool

	inflight chan struct{}
	started  time.Time
	m        metrics

	// loadSlots bounds actor loads at once (LoadParallel); loadCtx ends
	// with Close and parents every loader; retriers are the actors being
	// loaded by an upgrade or retried, by name (guarded by mu); loaders
	// counts their goroutines, stopped ones included (Close waits).
	loadSlots chan struct{}
	loadCtx   context.Context
	loadStop  context.CancelFunc
	retriers  map[string]*retrier
	loaders   sync.WaitGroup
	// compileSlots bounds the loads compiling at once (CompileParallel).
	compileSlots chan struct{}
	// floor is the rollback counter in the TPM (rollback.go).
	floor floor
}

// ConfigRecord is the configuration a stick measures into PCR 8 before
// any manifest: its version and board, as its status reports them. A
// verifier rebuilds it from those two strings.
func ConfigRecord(version, board string) []byte {
	return []byte("version=" + version + "\nboard=" + board + "\n")
}

// New makes the stick's keys. It does not touch the network.
func New(cfg Config) (*Stick, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Minute
	}
	if cfg.LoadParallel <= 0 {
		cfg.LoadParallel = 4
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	if cfg.TPMProbeInterval == 0 {
		cfg.TPMProbeInterval = DefaultTPMProbeInterval
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 5 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	s := &Stick{cfg: cfg, actors: map[string]*ActorStatus{}, started: time.Now(), stop: make(chan struct{})}
	s.loadSlots = make(chan struct{}, cfg.LoadParallel)
	s.upgrade = make(chan struct{}, 1)
	if cfg.CompileParallel <= 0 || cfg.CompileParallel > cfg.LoadParallel {
		s.cfg.CompileParallel = cfg.LoadParallel
	}
	s.compileSlots = make(chan struct{}, s.cfg.CompileParallel)
	s.loadCtx, s.loadStop = context.WithCancel(context.Background())
	if s.cfg.Uptime == nil {
		s.cfg.Uptime = func() time.Duration { return time.Since(s.started) }
	}
	s.inflight = make(chan struct{}, cfg.MaxInFlight)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("core: channel key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	s.channel, s.channelDER = k, der
	if s.results, err = receipt.NewSigner(rand.Reader); err != nil {
		return nil, fmt.Errorf("core: result key: %w", err)
	}
	if m := cfg.Measurer; m != nil && m.Err() == nil {
		// Both keys go into PCR 9 before anything is served: a quote
		// then names the keys of this boot, and no key made elsewhere
		// can pass for them. A failure closes the Measurer: the stick
		// serves nothing.
		if err := m.MeasureKeys(measure.Keys{Channel: der, Result: s.results.Public()}); err != nil {
			s.logf("tpm: NOT MEASURED: keys: %v: serving no actors", err)
		} else {
			s.logf("tpm: keys measured into PCR %d: channel sha256:%x, result key %x", measure.PCRBootActors, sha256.Sum256(der), s.results.Public())
		}
	}
	if cfg.TPM != nil {
		s.tpm = &tpmMonitor{tpm: cfg.TPM, uptime: s.cfg.Uptime, onFault: func(err error) {
			s.logf("tpm: FAULT: %v: attestation, enrolment and manifests refused until reboot; actors keep serving", err)
		}}
		s.att = &attest.Attester{TPM: s.tpm}
		if err := s.Measured(); err != nil {
			// Nobody started this TPM (TPM2_Startup is measured boot's
			// first step, and a stick that was not measured must not
			// send it: PCRs it extended itself would pass for a
			// measured boot). Its commands would fail as a fault
			// would; the stick refuses everything anyway.
			s.floor.err = fmt.Errorf("%w: not read: %w", ErrRollbackCounter, err)
		} else {
			s.openFloor()
			if cfg.TPMProbeInterval > 0 {
				go s.tpm.run(cfg.TPMProbeInterval, s.stop)
			}
		}
	}
	cfg.Actors.Signer = actorSigner{s.results}
	if cfg.Actors.Log == nil {
		// The runtime's log (actors' output, denials) goes to the
		// console. Without a time: a stick has no wall clock.
		cfg.Actors.Log = slog.New(slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{
			Level: cfg.LogLevel,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
	}
	s.rt = runtime.New(cfg.Actors)
	return s, nil
}

// ChannelKey is the key of the API's TLS channel.
func (s *Stick) ChannelKey() *ecdsa.PrivateKey { return s.channel }

// ChannelDigest is SHA-256 of the channel key's PKIX DER, which the stick
// prints at boot and a quote binds.
func (s *Stick) ChannelDigest() [32]byte { return sha256.Sum256(s.channelDER) }

// Runtime is the actor runtime.
func (s *Stick) Runtime() *runtime.Runtime { return s.rt }

// Close stops the actors, their retries and the TPM probe.
func (s *Stick) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.stopRetries()
	return s.rt.Close()
}

// TPMFault returns nil while the stick's TPM answers, ErrNoTPM without
// one, and an error wrapping ErrTPMFault once it stopped answering.
func (s *Stick) TPMFault() error {
	if s.tpm == nil {
		return ErrNoTPM
	}
	return s.tpm.Fault()
}

// actorSigner gives actors the result key (crypto.sign): Ed25519 over
// runtime.ActorMessage, which no receipt can collide with.
type actorSigner struct{ r *receipt.Signer }

func (a actorSigner) SignActor(actor cid.Cid, msg []byte) ([]byte, error) {
	return a.r.SignStatement(runtime.ActorMessage(actor, msg))
}

func (s *Stick) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, format+"\n", args...)
}

// ErrNotMeasured: measured boot did not succeed, so the stick serves no
// actors and accepts no manifest.
var ErrNotMeasured = errors.New("not measured")

// Measured reports nil when measured boot holds, else why not.
func (s *Stick) Measured() error {
	m := s.cfg.Measurer
	if m == nil {
		why := s.cfg.NotMeasured
		if why == nil {
			why = errors.New("no measured boot")
		}
		return fmt.Errorf("%w: %v", ErrNotMeasured, why)
	}
	if err := m.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotMeasured, err)
	}
	return nil
}

// ImageDigest is the stick image digest stage 0 measured (the EV_IPL event
// on PCR 4).
func (s *Stick) ImageDigest() (d [32]byte, ok bool) {
	if s.cfg.Measurer == nil {
		return d, false
	}
	for _, e := range s.cfg.Measurer.Events() {
		if e.PCR == measure.PCRImage && e.Type == eventlog.EV_IPL {
			return e.Digest, true
		}
	}
	return d, false
}

// ManifestVersion is the running manifest's version, 0 before one.
func (s *Stick) ManifestVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.manifest == nil {
		return 0
	}
	return s.manifest.Version
}

// Ready reports whether the boot sequence finished (READY was printed).
func (s *Stick) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Manifest errors beyond package manifest's.
var (
	ErrNoGovernance = errors.New("this image has no governance key built in")
	ErrWrongImage   = errors.New("wrong image")
	ErrNoBox        = errors.New("no box: the stick cannot fetch actors")
	ErrNotReady     = errors.New("no manifest yet: the stick has not booted its actors")
	// ErrCancelled: the request that carried a manifest ended (the
	// client went away) before the stick measured it; nothing changed.
	ErrCancelled = errors.New("manifest not applied: the request was cancelled before the stick measured it")
	// ErrSuperseded: an upgrade's load of an entry was stopped before it
	// committed, because a later manifest replaced or dropped the entry.
	ErrSuperseded = errors.New("load stopped: a later manifest replaced or dropped this entry")
)

// verifyManifest checks a signed manifest against the governance keys and
// the running image.
func (s *Stick) verifyManifest(raw []byte) (*manifest.Manifest, error) {
	if err := s.Measured(); err != nil {
		return nil, err
	}
	if len(s.cfg.Governance) == 0 {
		return nil, ErrNoGovernance
	}
	if s.tpm != nil {
		// Accepting a manifest means measuring it: not without the TPM.
		if err := s.tpm.Fault(); err != nil {
			return nil, err
		}
	}
	m, err := manifest.Verify(raw, s.cfg.Governance...)
	if err != nil {
		return nil, err
	}
	if err := s.checkFloor(m); err != nil {
		return nil, err
	}
	running, ok := s.ImageDigest()
	if !ok || hex.EncodeToString(running[:]) != m.Firmware.Stick {
		return nil, fmt.Errorf("%w: this stick runs image sha256:%x, the manifest allows sha256:%s", ErrWrongImage, running, m.Firmware.Stick)
	}
	return m, nil
}

// Counter pairs for metrics.
type metrics struct {
	invokes, invokeErrors, rejected, overload atomic.Uint64
	upgrades, upgradeFailures, attests        atomic.Uint64
	requests                                  sync.Map // "code" -> *atomic.Uint64
}

func (m *metrics) request(code int) {
	k := fmt.Sprint(code)
	v, ok := m.requests.Load(k)
	if !ok {
		v, _ = m.requests.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}
