package runtime

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"

	"github.com/ipfs/go-cid"
)

// Capabilities an actor reaches with __host_call(binding, namespace,
// operation, payload). A grant names a namespace ("crypto": all of its
// operations) or one operation ("crypto.sha256"). The binding is unused and
// must be empty or "default". Payload formats are in ABI.md.

// BlockStore gives actors verified IPFS blocks through the box.
type BlockStore interface {
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	Put(ctx context.Context, codec uint64, data []byte) (cid.Cid, error)
}

// FileFetcher gives actors whole UnixFS files through the box, every block
// verified.
type FileFetcher interface {
	Fetch(ctx context.Context, c cid.Cid) ([]byte, error)
}

// Signer is the stick's result key as actors may use it. Implementations
// must separate these signatures from every other use of the key (see
// ActorMessage).
type Signer interface {
	SignActor(actor cid.Cid, msg []byte) ([]byte, error)
}

// ActorMessage is what a Signer signs for an actor: a domain string, the
// actor's CID and the SHA-256 of its message, so an actor can never make
// the key sign a receipt or anything but its own statement.
func ActorMessage(actor cid.Cid, msg []byte) []byte {
	const domain = "teastick/actor-signature/v1\x00"
	d := sha256.Sum256(msg)
	out := append([]byte(domain), actor.Bytes()...)
	return append(out, d[:]...)
}

// Ed25519Signer signs ActorMessage with an Ed25519 key (hosted builds and
// tests; the stick's key lives in its TPM).
type Ed25519Signer struct{ Key ed25519.PrivateKey }

func (s Ed25519Signer) SignActor(actor cid.Cid, msg []byte) ([]byte, error) {
	return ed25519.Sign(s.Key, ActorMessage(actor, msg)), nil
}

// Capability errors returned to actors.
var (
	errNoProvider = errors.New("no provider configured on this stick")
	errUnknownOp  = errors.New("unknown capability operation")
	errBadPayload = errors.New("malformed payload")
)

// dispatch routes one host call after checking the grant. The payload is
// a view of guest memory, valid only during the call: providers copy what
// they keep. Providers get the call's context and must return when it is
// done; if the call's deadline passed (or it was canceled) meanwhile, the
// call ends there, as wazero ends a running loop, and fails with
// ErrDeadline rather than handing the actor a late answer.
func (v *version) dispatch(ctx context.Context, cs *callState, binding, ns, op string, payload []byte) ([]byte, error) {
	exitIfDone(ctx)
	out, err := v.route(ctx, cs, binding, ns, op, payload)
	exitIfDone(ctx)
	return out, err
}

func (v *version) route(ctx context.Context, cs *callState, binding, ns, op string, payload []byte) ([]byte, error) {
	if binding != "" && binding != "default" {
		return nil, fmt.Errorf("binding %q: %w", binding, errUnknownOp)
	}
	if !cs.granted(ns, op) {
		if cs.deny(ns, op) {
			// An initializer runs before the actor is measured and has
			// no request to answer: no capability, granted or not.
			return nil, fmt.Errorf("%s.%s: %w to an initializer of actor %s", ns, op, ErrDenied, v.name)
		}
		return nil, fmt.Errorf("%s.%s: %w to actor %s", ns, op, ErrDenied, v.name)
	}
	cfg := &v.rt.cfg
	switch ns {
	case "log":
		return nil, v.capLog(op, payload)
	case "kv":
		return v.capKV(op, payload)
	case "crypto":
		return v.capCrypto(ctx, op, payload)
	case "ipfs":
		return v.capIPFS(ctx, op, payload)
	case "clock":
		if op != "now" {
			break
		}
		return binary.BigEndian.AppendUint64(nil, uint64(cfg.Now().UnixNano())), nil
	case "random":
		if op != "bytes" {
			break
		}
		if len(payload) != 4 {
			return nil, fmt.Errorf("random.bytes: %w: want a 4-byte big-endian length", errBadPayload)
		}
		n := binary.BigEndian.Uint32(payload)
		if n > 64<<10 {
			return nil, fmt.Errorf("random.bytes: %d bytes asked, at most 65536", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(cfg.Rand, b); err != nil {
			return nil, fmt.Errorf("random.bytes: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s.%s: %w", ns, op, errUnknownOp)
}

func (v *version) capLog(op string, payload []byte) error {
	lvl := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "write": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	l, ok := lvl[op]
	if !ok {
		return fmt.Errorf("log.%s: %w", op, errUnknownOp)
	}
	if len(payload) > maxLogLine {
		payload = payload[:maxLogLine]
	}
	v.rt.log.Log(context.Background(), l, "actor", "actor", v.name, "stream", "log", "msg", string(payload))
	return nil
}

// maxBlock is the largest block ipfs.put takes (the trustless gateway's
// and bitswap's largest), refused before it is copied.
const maxBlock = 2 << 20

// hashStep is how many bytes crypto.sha256 hashes between looks at the
// call's deadline (about 10 ms on the stick).
const hashStep = 1 << 20

func (v *version) capCrypto(ctx context.Context, op string, p []byte) ([]byte, error) {
	switch op {
	case "sha256":
		h := sha256.New()
		for len(p) > 0 {
			exitIfDone(ctx)
			n := min(len(p), hashStep)
			h.Write(p[:n])
			p = p[n:]
		}
		return h.Sum(nil), nil
	case "verify.ed25519":
		// public key (32) || signature (64) || message
		if len(p) < 96 {
			return nil, fmt.Errorf("crypto.verify.ed25519: %w: want key(32) || sig(64) || message", errBadPayload)
		}
		return boolByte(ed25519.Verify(ed25519.PublicKey(p[:32]), p[96:], p[32:96])), nil
	case "verify.p256":
		// uncompressed point (65) || r (32) || s (32) || SHA-256 digest (32)
		if len(p) != 65+64+32 {
			return nil, fmt.Errorf("crypto.verify.p256: %w: want point(65) || r(32) || s(32) || digest(32)", errBadPayload)
		}
		x, y := elliptic.Unmarshal(elliptic.P256(), p[:65]) //nolint:staticcheck // point validation
		if x == nil {
			return nil, fmt.Errorf("crypto.verify.p256: %w: not a P-256 point", errBadPayload)
		}
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		r, s := new(big.Int).SetBytes(p[65:97]), new(big.Int).SetBytes(p[97:129])
		return boolByte(ecdsa.Verify(pub, p[129:], r, s)), nil
	case "sign":
		if v.rt.cfg.Signer == nil {
			return nil, fmt.Errorf("crypto.sign: %w", errNoProvider)
		}
		return v.rt.cfg.Signer.SignActor(v.cid, p)
	}
	return nil, fmt.Errorf("crypto.%s: %w", op, errUnknownOp)
}

func boolByte(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

func (v *version) capIPFS(ctx context.Context, op string, p []byte) ([]byte, error) {
	cfg := &v.rt.cfg
	switch op {
	case "get", "cat":
		c, err := cid.Decode(string(p))
		if err != nil {
			return nil, fmt.Errorf("ipfs.%s: %w: %v", op, errBadPayload, err)
		}
		if op == "get" {
			if cfg.Blocks == nil {
				return nil, fmt.Errorf("ipfs.get: %w", errNoProvider)
			}
			return cfg.Blocks.Get(ctx, c)
		}
		if cfg.Files == nil {
			return nil, fmt.Errorf("ipfs.cat: %w", errNoProvider)
		}
		return cfg.Files.Fetch(ctx, c)
	case "put":
		if cfg.Blocks == nil {
			return nil, fmt.Errorf("ipfs.put: %w", errNoProvider)
		}
		if len(p) > maxBlock {
			return nil, fmt.Errorf("ipfs.put: block of %d bytes, at most %d", len(p), maxBlock)
		}
		c, err := cfg.Blocks.Put(ctx, cid.Raw, append([]byte(nil), p...))
		if err != nil {
			return nil, err
		}
		return []byte(c.String()), nil
	}
	return nil, fmt.Errorf("ipfs.%s: %w", op, errUnknownOp)
}

func (v *version) capKV(op string, p []byte) ([]byte, error) {
	kv := v.rt.cfg.KV
	switch op {
	case "get":
		return kv.Get(v.name, string(p))
	case "delete":
		return nil, kv.Delete(v.name, string(p))
	case "put":
		// key length (2, big-endian) || key || value
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			return nil, fmt.Errorf("kv.put: %w: want len(2) || key || value", errBadPayload)
		}
		n := int(binary.BigEndian.Uint16(p))
		return nil, kv.Put(v.name, string(p[2:2+n]), p[2+n:])
	}
	return nil, fmt.Errorf("kv.%s: %w", op, errUnknownOp)
}

// KV stores each actor's values under its own name; no actor reaches
// another's.
type KV interface {
	Get(actor, key string) ([]byte, error)
	Put(actor, key string, value []byte) error
	Delete(actor, key string) error
}

// KVLimits bound the in-memory store.
type KVLimits struct {
	MaxKey      int // bytes
	MaxValue    int // bytes
	MaxPerActor int // bytes of keys and values per actor
}

// DefaultKVLimits suit the stick's RAM.
var DefaultKVLimits = KVLimits{MaxKey: 256, MaxValue: 64 << 10, MaxPerActor: 1 << 20}

// ErrKVNotFound and ErrKVFull are what actors see.
var (
	ErrKVNotFound = errors.New("kv: not found")
	ErrKVFull     = errors.New("kv: over the actor's quota")
)

// MemKV is an in-memory KV. Values live as long as the stick runs; upgrades
// keep them (the namespace is the actor's name, not its CID).
type MemKV struct {
	lim  KVLimits
	mu   sync.Mutex
	data map[string]map[string][]byte
	used map[string]int
}

// NewMemKV returns an empty store.
func NewMemKV(lim KVLimits) *MemKV {
	return &MemKV{lim: lim, data: map[string]map[string][]byte{}, used: map[string]int{}}
}

func (m *MemKV) Get(actor, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[actor][key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrKVNotFound, key)
	}
	return append([]byte(nil), v...), nil
}

func (m *MemKV) Put(actor, key string, value []byte) error {
	if key == "" || len(key) > m.lim.MaxKey {
		return fmt.Errorf("kv: key of %d bytes (1..%d)", len(key), m.lim.MaxKey)
	}
	if len(value) > m.lim.MaxValue {
		return fmt.Errorf("kv: value of %d bytes, at most %d", len(value), m.lim.MaxValue)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ns := m.data[actor]
	if ns == nil {
		ns = map[string][]byte{}
		m.data[actor] = ns
	}
	used := m.used[actor] + len(value)
	if old, ok := ns[key]; ok {
		used -= len(old)
	} else {
		used += len(key)
	}
	if used > m.lim.MaxPerActor {
		return fmt.Errorf("%w: %d of %d bytes", ErrKVFull, used, m.lim.MaxPerActor)
	}
	ns[key] = append([]byte(nil), value...)
	m.used[actor] = used
	return nil
}

func (m *MemKV) Delete(actor, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.data[actor][key]; ok {
		m.used[actor] -= len(key) + len(old)
		delete(m.data[actor], key)
	}
	return nil
}
