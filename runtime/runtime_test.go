package runtime_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/actortest"
	"github.com/teastick/teastick/runtime/nativediff"
)

// logBuffer captures the runtime's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newRuntime(t testing.TB, cfg runtime.Config) (*runtime.Runtime, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := runtime.New(cfg)
	t.Cleanup(func() { r.Close() })
	return r, lb
}

func load(t testing.TB, r *runtime.Runtime, name string, module []byte, grants []string, lim runtime.Limits) {
	t.Helper()
	err := r.Load(context.Background(), runtime.Spec{Name: name, CID: actortest.CID(module), Grants: grants, Limits: lim, Module: module})
	if err != nil {
		t.Fatal(err)
	}
}

func invoke(r *runtime.Runtime, name, op string, payload []byte) ([]byte, error) {
	return r.Invoke(context.Background(), name, op, payload)
}

// hostCall builds the edge actor's "call" payload.
func hostCall(ns, op string, data []byte) []byte { return nativediff.EdgeCall(ns, op, data) }

var engines = []runtime.Engine{runtime.EngineInterpreter, runtime.EngineAuto}

func TestGoEcho(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			r, lb := newRuntime(t, runtime.Config{Engine: e})
			load(t, r, "echo", actortest.GoActor(t, "echo"), []string{"log"}, runtime.Limits{})
			for _, p := range [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0xa5}, 300_000)} {
				got, err := invoke(r, "echo", "echo", p)
				if err != nil || !bytes.Equal(got, p) {
					t.Fatalf("echo %d bytes: %d bytes, %v", len(p), len(got), err)
				}
			}
			if _, err := invoke(r, "echo", "print", []byte("line from the actor")); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(lb.String(), `actor=echo stream=stdout msg="line from the actor"`) {
				t.Fatalf("stdout not logged under the actor's name:\n%s", lb)
			}
			_, err := invoke(r, "echo", "nope", nil)
			var ae *runtime.ActorError
			if !errors.As(err, &ae) || !strings.Contains(ae.Message, "unknown operation nope") {
				t.Fatalf("unknown operation: %v", err)
			}
			info, _ := r.Actor("echo")
			if info.Stats.Faults != 0 || info.Stats.Calls != 5 || info.Stats.Failures != 1 {
				t.Fatalf("stats %+v", info.Stats)
			}
		})
	}
}

func TestCIDMismatchRefusedBeforeCompiling(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{})
	echo := actortest.GoActor(t, "echo")
	edge := actortest.Wat(t, "edge")
	for name, tc := range map[string]struct {
		c      cid.Cid
		module []byte
	}{
		"other module":             {actortest.CID(edge), echo},
		"one byte changed":         {actortest.CID(edge), append(append([]byte{}, edge[:len(edge)-1]...), edge[len(edge)-1]^1)},
		"garbage, wrong CID":       {actortest.CID(edge), []byte("not wasm")},
		"no CID":                   {cid.Undef, edge},
		"identity multihash":       {cid.NewCidV1(cid.Raw, mustIdentity(edge)), edge},
		"sha2-256 cut to 1 byte":   {cid.NewCidV1(cid.Raw, mustTruncated(edge, 1)), edge},
		"sha2-256 cut to 31 bytes": {cid.NewCidV1(cid.Raw, mustTruncated(edge, 31)), edge},
		"dag-cbor codec":           {cid.NewCidV1(cid.DagCBOR, runtime.RawCID(edge).Hash()), edge},
		"dag-pb of other one":      {actortest.CID(echo), edge},
	} {
		t.Run(name, func(t *testing.T) {
			err := r.Load(context.Background(), runtime.Spec{Name: "x", CID: tc.c, Module: tc.module})
			if !errors.Is(err, runtime.ErrCIDMismatch) || errors.Is(err, runtime.ErrInvalidModule) {
				t.Fatalf("got %v, want ErrCIDMismatch only", err)
			}
		})
	}
	if _, err := invoke(r, "x", "echo", nil); !errors.Is(err, runtime.ErrUnknownActor) {
		t.Fatalf("a refused actor serves: %v", err)
	}
}

// A table bounds table.grow as the memory limit bounds memory.grow: a
// table that declares no maximum gets runtime.MaxTableElements
// (tablegrow's initializer traps if a grow past it succeeds).
func TestTableBound(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{})
	m := actortest.Wat(t, "tablegrow")
	if err := r.Load(context.Background(), runtime.Spec{Name: "tablegrow", CID: runtime.RawCID(m), Module: m}); err != nil {
		t.Fatal(err)
	}
}

func TestBadModules(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{})
	for _, tc := range []struct {
		fixture string
		module  []byte
		want    string
	}{
		{fixture: "noexport", want: "no __guest_call export"},
		{fixture: "badsig", want: "__guest_call must be (i32, i32) -> i32"},
		{fixture: "badimport", want: "imports env.open_socket"},
		{fixture: "bigmem", want: "1000"},
		{fixture: "bigtable", want: "200000 initial elements"},
		{fixture: "inittrap", want: "wapc_init"},
		{fixture: "garbage", module: []byte("\x00asm\x01\x00\x00\x00\xff\xff"), want: "invalid actor module"},
		{fixture: "empty", module: []byte{}, want: "invalid actor module"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			m := tc.module
			if m == nil {
				m = actortest.Wat(t, tc.fixture)
			}
			err := r.Load(context.Background(), runtime.Spec{Name: "bad", CID: runtime.RawCID(m), Module: m})
			if !errors.Is(err, runtime.ErrInvalidModule) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidModule naming %q", err, tc.want)
			}
		})
	}
	if len(r.Actors()) != 0 {
		t.Fatalf("bad modules loaded: %v", r.Actors())
	}
	// Names and limits are checked too.
	edge := actortest.Wat(t, "edge")
	if err := r.Load(context.Background(), runtime.Spec{Name: "Bad Name", CID: runtime.RawCID(edge), Module: edge}); !errors.Is(err, runtime.ErrInvalidModule) {
		t.Fatalf("bad name: %v", err)
	}
	err := r.Load(context.Background(), runtime.Spec{Name: "edge", CID: runtime.RawCID(edge), Module: edge, Limits: runtime.Limits{MaxConcurrent: 1000}})
	if !errors.Is(err, runtime.ErrInvalidLimits) {
		t.Fatalf("limits: %v", err)
	}
}

// Each fault fails its own call, replaces the instance, and leaves the
// actor (and the other actors) serving.
func TestFaultsFailOneCall(t *testing.T) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			r, _ := newRuntime(t, runtime.Config{Engine: e})
			lim := runtime.Limits{Timeout: 1500 * time.Millisecond, MemoryPages: 32, MaxResponse: 4096, MaxConcurrent: 2}
			load(t, r, "edge", actortest.Wat(t, "edge"), nil, lim)
			load(t, r, "bystander", actortest.Wat(t, "edge"), nil, runtime.Limits{})
			stop := make(chan struct{})
			var bystanderErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if got, err := invoke(r, "bystander", "echo", []byte("ok")); err != nil || string(got) != "ok" {
						bystanderErr = fmt.Errorf("bystander: %q %v", got, err)
						return
					}
				}
			})
			for _, tc := range []struct {
				op   string
				want error
				text string
			}{
				{"trap", runtime.ErrTrap, "unreachable"},
				{"loop", runtime.ErrDeadline, "ran past 1.5s"},
				{"grow", runtime.ErrTrap, "unreachable"},
				{"huge", runtime.ErrResponseTooLarge, "may answer at most 4096"},
				{"oob", runtime.ErrTrap, "outside memory"},
				{"request", runtime.ErrTrap, "__guest_request"},
			} {
				before, _ := r.Actor("edge")
				start := time.Now()
				_, err := invoke(r, "edge", tc.op, []byte("x"))
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("%s: got %v, want %v with %q", tc.op, err, tc.want, tc.text)
				}
				if el := time.Since(start); el > 5*time.Second {
					t.Fatalf("%s took %v", tc.op, el)
				}
				after, _ := r.Actor("edge")
				if after.Stats.Faults != before.Stats.Faults+1 {
					t.Fatalf("%s: faults %d -> %d", tc.op, before.Stats.Faults, after.Stats.Faults)
				}
				if got, err := invoke(r, "edge", "echo", []byte("again")); err != nil || string(got) != "again" {
					t.Fatalf("after %s: %q %v", tc.op, got, err)
				}
			}
			close(stop)
			wg.Wait()
			if bystanderErr != nil {
				t.Fatal(bystanderErr)
			}
			// An actor error is not a fault: the instance stays.
			before, _ := r.Actor("edge")
			_, err := invoke(r, "edge", "fail", nil)
			var ae *runtime.ActorError
			if !errors.As(err, &ae) || ae.Message != "edge: asked to fail" || ae.Actor != "edge" {
				t.Fatalf("fail: %v", err)
			}
			after, _ := r.Actor("edge")
			if after.Stats.Faults != before.Stats.Faults || after.Stats.Instances != before.Stats.Instances {
				t.Fatalf("an actor error replaced the instance: %+v -> %+v", before.Stats, after.Stats)
			}
			if got, err := invoke(r, "edge", "nothing", nil); err != nil || got == nil || len(got) != 0 {
				t.Fatalf("nothing: %q %v", got, err)
			}
			if _, err := invoke(r, "edge", "echo", make([]byte, runtime.DefaultLimits.MaxRequest+1)); !errors.Is(err, runtime.ErrRequestTooLarge) {
				t.Fatalf("oversized request: %v", err)
			}
			if _, err := invoke(r, "nobody", "echo", nil); !errors.Is(err, runtime.ErrUnknownActor) {
				t.Fatalf("unknown actor: %v", err)
			}
		})
	}
}

// A caller's own cancellation stops a running loop too.
func TestCancelStopsLoop(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{Engine: runtime.EngineInterpreter})
	load(t, r, "edge", actortest.Wat(t, "edge"), nil, runtime.Limits{Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Invoke(ctx, "edge", "loop", nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}

// spyKV is a fault-injection fake provider: it records calls and can block
// or fail them.
type spyKV struct {
	*runtime.MemKV
	mu    sync.Mutex
	calls int
	block chan struct{} // when set, Get waits for it
	fail  error
}

func (s *spyKV) Get(actor, key string) ([]byte, error) {
	s.mu.Lock()
	s.calls++
	block, fail := s.block, s.fail
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	if fail != nil {
		return nil, fail
	}
	return s.MemKV.Get(actor, key)
}

// blockedCall starts a call of actor (the edge fixture) that waits inside
// kv's Get until kv.block is closed, and returns once it is there; the
// channel gets the call's error.
func blockedCall(r *runtime.Runtime, kv *spyKV, actor string) <-chan error {
	done := make(chan error)
	go func() {
		_, err := invoke(r, actor, "call", hostCall("kv", "get", []byte("k")))
		done <- err
	}()
	for kv.callCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	return done
}

func TestUngrantedCallsNeverReachTheProvider(t *testing.T) {
	kv := &spyKV{MemKV: runtime.NewMemKV(runtime.DefaultKVLimits)}
	r, lb := newRuntime(t, runtime.Config{KV: kv})
	load(t, r, "edge", actortest.Wat(t, "edge"), []string{"crypto.sha256"}, runtime.Limits{})
	for i := range 3 {
		_, err := invoke(r, "edge", "call", hostCall("kv", "get", []byte("k")))
		var ae *runtime.ActorError
		if !errors.As(err, &ae) || ae.Message != "kv.get: capability not granted to actor edge" {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Granting one operation grants only that one.
	if _, err := invoke(r, "edge", "call", hostCall("crypto", "verify.ed25519", make([]byte, 96))); err == nil || !strings.Contains(err.Error(), "not granted") {
		t.Fatalf("crypto.verify.ed25519 with only crypto.sha256 granted: %v", err)
	}
	if kv.calls != 0 {
		t.Fatalf("the provider saw %d ungranted calls", kv.calls)
	}
	info, _ := r.Actor("edge")
	if info.Stats.Denied["kv.get"] != 3 || info.Stats.Denied["crypto.verify.ed25519"] != 1 {
		t.Fatalf("denied counts %v", info.Stats.Denied)
	}
	if n := strings.Count(lb.String(), "capability not granted"); n != 2 {
		t.Fatalf("want one log line per refused capability, got %d:\n%s", n, lb)
	}
	d, err := invoke(r, "edge", "call", hostCall("crypto", "sha256", []byte("abc")))
	if want := sha256.Sum256([]byte("abc")); err != nil || !bytes.Equal(d, want[:]) {
		t.Fatalf("granted sha256: %x %v", d, err)
	}
}

func TestCapabilities(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blocks := newMemBlocks()
	r, lb := newRuntime(t, runtime.Config{
		Signer: runtime.Ed25519Signer{Key: priv},
		Blocks: blocks,
		Now:    func() time.Time { return time.Unix(1700000000, 5) },
	})
	edge := actortest.Wat(t, "edge")
	load(t, r, "edge", edge, []string{"clock", "crypto", "ipfs", "kv", "log", "random"}, runtime.Limits{})
	load(t, r, "other", edge, []string{"kv"}, runtime.Limits{})
	call := func(name, ns, op string, data []byte) ([]byte, error) {
		return invoke(r, name, "call", hostCall(ns, op, data))
	}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// kv: per actor.
	put := append(binary.BigEndian.AppendUint16(nil, 3), "key"...)
	must(call("edge", "kv", "put", append(put, "value"...)))
	if got := must(call("edge", "kv", "get", []byte("key"))); string(got) != "value" {
		t.Fatalf("kv get %q", got)
	}
	if _, err := call("other", "kv", "get", []byte("key")); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("another actor's key: %v", err)
	}
	if _, err := call("edge", "kv", "put", append(put, make([]byte, 70<<10)...)); err == nil || !strings.Contains(err.Error(), "value of") {
		t.Fatalf("oversized value: %v", err)
	}
	if _, err := call("edge", "kv", "put", []byte{0}); err == nil || !strings.Contains(err.Error(), "malformed payload") {
		t.Fatalf("malformed put: %v", err)
	}
	must(call("edge", "kv", "delete", []byte("key")))
	if _, err := call("edge", "kv", "get", []byte("key")); err == nil {
		t.Fatal("deleted key still there")
	}

	// crypto
	pub, k2, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(k2, []byte("msg"))
	v := append(append(append([]byte{}, pub...), sig...), "msg"...)
	if got := must(call("edge", "crypto", "verify.ed25519", v)); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("good ed25519 signature: %x", got)
	}
	v[40] ^= 1
	if got := must(call("edge", "crypto", "verify.ed25519", v)); !bytes.Equal(got, []byte{0}) {
		t.Fatalf("bad ed25519 signature: %x", got)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("p256"))
	er, es, _ := ecdsa.Sign(rand.Reader, ek, digest[:])
	pt, _ := ek.PublicKey.Bytes()
	p := append(append(append(pt, er.FillBytes(make([]byte, 32))...), es.FillBytes(make([]byte, 32))...), digest[:]...)
	if got := must(call("edge", "crypto", "verify.p256", p)); !bytes.Equal(got, []byte{1}) {
		t.Fatalf("good p256 signature: %x", got)
	}
	p[100] ^= 1
	if got := must(call("edge", "crypto", "verify.p256", p)); !bytes.Equal(got, []byte{0}) {
		t.Fatalf("bad p256 signature: %x", got)
	}
	s := must(call("edge", "crypto", "sign", []byte("statement")))
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), runtime.ActorMessage(runtime.RawCID(edge), []byte("statement")), s) {
		t.Fatal("crypto.sign: signature does not cover ActorMessage(actor, msg)")
	}
	if _, err := call("edge", "crypto", "md5", nil); err == nil || !strings.Contains(err.Error(), "unknown capability operation") {
		t.Fatalf("unknown op: %v", err)
	}

	// ipfs
	c := string(must(call("edge", "ipfs", "put", []byte("a block"))))
	if got := must(call("edge", "ipfs", "get", []byte(c))); string(got) != "a block" {
		t.Fatalf("ipfs get %q", got)
	}
	if _, err := call("edge", "ipfs", "get", []byte("not a cid")); err == nil {
		t.Fatal("ipfs get of a bad CID succeeded")
	}
	if _, err := call("edge", "ipfs", "cat", []byte(c)); err == nil || !strings.Contains(err.Error(), "no provider") {
		t.Fatalf("ipfs cat with no file fetcher: %v", err)
	}

	// clock, random, log
	if got := must(call("edge", "clock", "now", nil)); binary.BigEndian.Uint64(got) != 1700000000_000000005 {
		t.Fatalf("clock %x", got)
	}
	r1 := must(call("edge", "random", "bytes", []byte{0, 0, 0, 32}))
	r2 := must(call("edge", "random", "bytes", []byte{0, 0, 0, 32}))
	if len(r1) != 32 || bytes.Equal(r1, r2) {
		t.Fatalf("random %x %x", r1, r2)
	}
	if _, err := call("edge", "random", "bytes", []byte{0, 1, 0, 1}); err == nil {
		t.Fatal("random: 65537 bytes granted")
	}
	must(call("edge", "log", "warn", []byte("careful")))
	if !strings.Contains(lb.String(), `level=WARN msg=actor actor=edge stream=log msg=careful`) {
		t.Fatalf("log.warn not in the log:\n%s", lb)
	}
}

// memBlocks is a BlockStore in memory that verifies as the box client does.
type memBlocks struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemBlocks() *memBlocks { return &memBlocks{m: map[string][]byte{}} }

func (b *memBlocks) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.m[c.KeyString()]
	if !ok {
		return nil, fmt.Errorf("block %s not found", c)
	}
	return d, nil
}

func (b *memBlocks) Put(_ context.Context, codec uint64, data []byte) (cid.Cid, error) {
	c := runtime.RawCID(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[c.KeyString()] = data
	return c, nil
}

func TestWASIOnlyAsGranted(t *testing.T) {
	r, lb := newRuntime(t, runtime.Config{})
	edge := actortest.Wat(t, "edge")
	load(t, r, "none", edge, nil, runtime.Limits{})
	load(t, r, "all", edge, []string{"clock", "log", "random"}, runtime.Limits{})

	errno := func(name, op string, p []byte) byte {
		t.Helper()
		got, err := invoke(r, name, op, p)
		if err != nil || len(got) < 1 {
			t.Fatalf("%s %s: %x %v", name, op, got, err)
		}
		return got[0]
	}
	const enotcapable, enosys = 76, 52
	if e := errno("none", "print", []byte("secret")); e != enotcapable {
		t.Fatalf("stdout without log: errno %d", e)
	}
	if e := errno("all", "print", []byte("visible")); e != 0 {
		t.Fatalf("stdout with log: errno %d", e)
	}
	if strings.Contains(lb.String(), "secret") || !strings.Contains(lb.String(), `actor=all stream=stdout msg=visible`) {
		t.Fatalf("log:\n%s", lb)
	}
	if e := errno("none", "xrandom", nil); e != enotcapable {
		t.Fatalf("random_get without random: errno %d", e)
	}
	if got, _ := invoke(r, "all", "xrandom", nil); got[0] != 0 || bytes.Equal(got[1:], make([]byte, 16)) {
		t.Fatalf("random_get with random: %x", got)
	}
	// Without the clock grant, time is virtual: it starts near zero and
	// only moves when read.
	got, _ := invoke(r, "none", "klock", nil)
	t1, t2 := binary.LittleEndian.Uint64(got), binary.LittleEndian.Uint64(got[8:])
	if t1 > 1e6 || t2 != t1+1000 {
		t.Fatalf("virtual clock %d %d", t1, t2)
	}
	got, _ = invoke(r, "all", "klock", nil)
	if t1, t2 := binary.LittleEndian.Uint64(got), binary.LittleEndian.Uint64(got[8:]); t2 <= t1 {
		t.Fatalf("real monotonic clock %d %d", t1, t2)
	}
	// A 10 s sleep costs nothing on a virtual clock...
	start := time.Now()
	if e := errno("none", "sleep", nil); e != 0 || time.Since(start) > time.Second {
		t.Fatalf("virtual sleep: errno %d after %v", e, time.Since(start))
	}
	if got, _ := invoke(r, "none", "klock", nil); binary.LittleEndian.Uint64(got) < 10e9 {
		t.Fatalf("virtual clock did not advance over the sleep: %d", binary.LittleEndian.Uint64(got))
	}
	// ...and a real one is cut off by the deadline.
	load(t, r, "sleeper", edge, []string{"clock"}, runtime.Limits{Timeout: 200 * time.Millisecond})
	if _, err := invoke(r, "sleeper", "sleep", nil); !errors.Is(err, runtime.ErrDeadline) {
		t.Fatalf("real 10 s sleep under a 200 ms deadline: %v", err)
	}
	if e := errno("all", "zopen", []byte("/etc/passwd")); e != enosys {
		t.Fatalf("path_open: errno %d", e)
	}
	info, _ := r.Actor("none")
	if info.Stats.Denied["log.write"] != 1 || info.Stats.Denied["random.bytes"] != 1 {
		t.Fatalf("denied %v", info.Stats.Denied)
	}
	// Language runtimes ask for random bytes at start whatever the actor
	// does: the refusal is logged at debug level, not as a warning an
	// operator should act on. A refused fd_write is a warning.
	for _, l := range strings.Split(lb.String(), "\n") {
		if strings.Contains(l, "capability=random.bytes") && !strings.Contains(l, "level=DEBUG") ||
			strings.Contains(l, "capability=log.write") && !strings.Contains(l, "level=WARN") {
			t.Errorf("refusal logged at the wrong level: %s", l)
		}
	}
	if !strings.Contains(lb.String(), "capability=random.bytes") {
		t.Errorf("random_get's refusal not logged at debug level:\n%s", lb)
	}
}

func TestBusy(t *testing.T) {
	kv := &spyKV{MemKV: runtime.NewMemKV(runtime.DefaultKVLimits), block: make(chan struct{})}
	r, _ := newRuntime(t, runtime.Config{KV: kv, QueueWait: 50 * time.Millisecond})
	load(t, r, "edge", actortest.Wat(t, "edge"), []string{"kv"}, runtime.Limits{MaxConcurrent: 1})
	done := blockedCall(r, kv, "edge")
	if _, err := invoke(r, "edge", "echo", nil); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("second call with max_concurrent 1: %v", err)
	}
	close(kv.block)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("blocked call: %v", err)
	}
	if _, err := invoke(r, "edge", "echo", nil); err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Actor("edge"); info.Stats.Busy != 1 {
		t.Fatalf("busy count %d", info.Stats.Busy)
	}
}

func (s *spyKV) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestUpgrade(t *testing.T) {
	kv := &spyKV{MemKV: runtime.NewMemKV(runtime.DefaultKVLimits), block: make(chan struct{})}
	r, _ := newRuntime(t, runtime.Config{KV: kv})
	edge := actortest.Wat(t, "edge")
	load(t, r, "svc", edge, []string{"kv"}, runtime.Limits{MaxConcurrent: 4, Timeout: time.Minute})

	// A call in flight on the old version...
	done := blockedCall(r, kv, "svc")
	// ...a failed upgrade changes nothing...
	bad := actortest.Wat(t, "inittrap")
	if err := r.Upgrade(context.Background(), runtime.Spec{Name: "svc", CID: runtime.RawCID(bad), Module: bad}); !errors.Is(err, runtime.ErrInvalidModule) {
		t.Fatalf("bad upgrade: %v", err)
	}
	if err := r.Upgrade(context.Background(), runtime.Spec{Name: "svc", CID: runtime.RawCID(edge), Module: bad}); !errors.Is(err, runtime.ErrCIDMismatch) {
		t.Fatalf("tampered upgrade: %v", err)
	}
	if info, _ := r.Actor("svc"); !info.CID.Equals(runtime.RawCID(edge)) {
		t.Fatalf("serving %s after failed upgrades", info.CID)
	}
	// ...a good one takes new calls at once.
	echo := actortest.GoActor(t, "echo")
	if err := r.Upgrade(context.Background(), runtime.Spec{Name: "svc", CID: actortest.CID(echo), Module: echo}); err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Actor("svc"); !info.CID.Equals(actortest.CID(echo)) || info.Stats.Calls != 0 {
		t.Fatalf("after upgrade: %s %+v", info.CID, info.Stats)
	}
	// The Go echo has no "call" operation: new calls reach the new version.
	if _, err := invoke(r, "svc", "call", nil); err == nil || !strings.Contains(err.Error(), "unknown operation call") {
		t.Fatalf("new call went to the old version: %v", err)
	}
	// The old call finishes on the old version, normally.
	close(kv.block)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "kv: not found") {
		t.Fatalf("call in flight across the upgrade: %v", err)
	}
	if err := r.Unload("svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(r, "svc", "echo", nil); !errors.Is(err, runtime.ErrUnknownActor) {
		t.Fatalf("after unload: %v", err)
	}
}

func TestNotaryAndSDK(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	r, _ := newRuntime(t, runtime.Config{Signer: runtime.Ed25519Signer{Key: priv}})
	notary := actortest.GoActor(t, "notary")
	load(t, r, "notary", notary, []string{"crypto"}, runtime.Limits{})
	in := []byte("the quick brown fox")
	out, err := invoke(r, "notary", "notarize", in)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		SHA256    string `json:"sha256"`
		Size      int    `json:"size"`
		Signature []byte `json:"signature"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	d := sha256.Sum256(in)
	if st.SHA256 != fmt.Sprintf("%x", d) || st.Size != len(in) {
		t.Fatalf("statement %s", out)
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), runtime.ActorMessage(actortest.CID(notary), d[:]), st.Signature) {
		t.Fatal("notary signature does not verify")
	}
	// Without crypto.sign the actor gets the stick's refusal as an error.
	load(t, r, "hash-only", notary, []string{"crypto.sha256"}, runtime.Limits{})
	if _, err := invoke(r, "hash-only", "notarize", in); err == nil || !strings.Contains(err.Error(), "crypto.sign: capability not granted to actor hash-only") {
		t.Fatalf("notarize without crypto.sign: %v", err)
	}
	if got, err := invoke(r, "hash-only", "hash", in); err != nil || !bytes.Equal(got, d[:]) {
		t.Fatalf("hash: %x %v", got, err)
	}
}

// mustTruncated is b's SHA2-256 multihash with the digest cut to n bytes.
func mustTruncated(b []byte, n int) []byte {
	h, err := multihash.Sum(b, multihash.SHA2_256, n)
	if err != nil {
		panic(err)
	}
	return h
}

func mustIdentity(b []byte) []byte {
	// An identity multihash: code 0x00, length, bytes.
	out := append([]byte{0x00}, binary.AppendUvarint(nil, uint64(len(b)))...)
	return append(out, b...)
}

// Limits gives the serving version's limits, defaults applied, as Actor
// does, and refuses an unknown actor.
func TestLimits(t *testing.T) {
	r, _ := newRuntime(t, runtime.Config{})
	load(t, r, "edge", actortest.Wat(t, "edge"), nil, runtime.Limits{MaxRequest: 4096})
	lim, err := r.Limits("edge")
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.Actor("edge")
	if err != nil {
		t.Fatal(err)
	}
	if lim != info.Limits || lim.MaxRequest != 4096 || lim.MaxResponse == 0 || lim.Timeout == 0 {
		t.Fatalf("Limits %+v, Actor's %+v", lim, info.Limits)
	}
	if _, err := r.Limits("nobody"); !errors.Is(err, runtime.ErrUnknownActor) {
		t.Fatalf("unknown actor: %v", err)
	}
}
