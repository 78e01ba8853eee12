package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

var update = flag.Bool("update", false, "rewrite golden files")

func rawCID(t testing.TB, data string) string {
	t.Helper()
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func digest(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func sample(t testing.TB) *Manifest {
	return &Manifest{
		Schema:  Schema,
		Version: 7,
		Firmware: Firmware{
			Stage0: digest("stage0"),
			Stick:  digest("stick"),
		},
		Actors: []Actor{
			{Name: "echo", CID: rawCID(t, "echo.wasm"), Grants: []string{"log"}},
			{Name: "notary", CID: rawCID(t, "notary.wasm"), Grants: []string{"crypto.sign", "log"},
				Limits: Limits{MemoryPages: 16, TimeoutMillis: 500, MaxRequest: 1 << 20, MaxResponse: 4096, MaxConcurrent: 2}},
		},
	}
}

func TestGolden(t *testing.T) {
	b, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/signed.json"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("signed manifest differs from %s (run go test -update if the format changed on purpose)\n%s", golden, b)
	}
	m, err := Verify(want, key(1).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 7 || len(m.Actors) != 2 || m.Actors[1].Limits.MaxConcurrent != 2 {
		t.Fatalf("parsed %+v", m)
	}
}

func TestVerify(t *testing.T) {
	gov := key(1).Public().(ed25519.PublicKey)
	good, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := []struct {
		name    string
		in      string
		trusted []ed25519.PublicKey
		want    error
	}{
		{"good", s, []ed25519.PublicKey{gov}, nil},
		{"good among several keys", s, []ed25519.PublicKey{key(9).Public().(ed25519.PublicKey), gov}, nil},
		{"wrong governance key", s, []ed25519.PublicKey{key(2).Public().(ed25519.PublicKey)}, ErrUnknownKey},
		{"no trusted key", s, nil, ErrUnknownKey},
		{"version changed after signing", strings.Replace(s, `"version":7`, `"version":8`, 1), []ed25519.PublicKey{gov}, ErrSignature},
		{"grant added after signing", strings.Replace(s, `"grants":["log"]`, `"grants":["ipfs","log"]`, 1), []ed25519.PublicKey{gov}, ErrSignature},
		{"signature bit flipped", flipSig(t, s), []ed25519.PublicKey{gov}, ErrSignature},
		{"white space in the signed part", strings.Replace(s, `"version":7`, `"version": 7`, 1), []ed25519.PublicKey{gov}, ErrNotCanonical},
		{"duplicate field in the signed part", strings.Replace(s, `"version":7`, `"version":7,"version":7`, 1), []ed25519.PublicKey{gov}, ErrNotCanonical},
		{"field spelled in another case", strings.Replace(s, `"version":7`, `"Version":7`, 1), []ed25519.PublicKey{gov}, ErrNotCanonical},
		{"unknown field in the signed part", strings.Replace(s, `"version":7`, `"version":7,"debug":true`, 1), []ed25519.PublicKey{gov}, ErrMalformed},
		{"unknown field in an actor", strings.Replace(s, `"name":"echo"`, `"name":"echo","privileged":true`, 1), []ed25519.PublicKey{gov}, ErrMalformed},
		{"unknown field outside", strings.Replace(s, `"signature"`, `"extra":1,"signature"`, 1), []ed25519.PublicKey{gov}, ErrMalformed},
		{"other algorithm", strings.Replace(s, `"ed25519"`, `"rsa"`, 1), []ed25519.PublicKey{gov}, ErrSignature},
		{"trailing data", s + "{}", []ed25519.PublicKey{gov}, ErrMalformed},
		{"not JSON", "hello", []ed25519.PublicKey{gov}, ErrMalformed},
		{"empty", "", []ed25519.PublicKey{gov}, ErrMalformed},
		{"no signed part", `{"signature":{}}`, []ed25519.PublicKey{gov}, ErrMalformed},
		{"too large", s + strings.Repeat(" ", MaxSize), []ed25519.PublicKey{gov}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify([]byte(tc.in), tc.trusted...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func flipSig(t *testing.T, s string) string {
	i := strings.Index(s, `"sig":"`) + len(`"sig":"`)
	if i < len(`"sig":"`) {
		t.Fatal("no sig field")
	}
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *Manifest)
	}{
		{"wrong schema", func(m *Manifest) { m.Schema = "v0" }},
		{"version zero", func(m *Manifest) { m.Version = 0 }},
		{"short digest", func(m *Manifest) { m.Firmware.Stick = "abcd" }},
		{"uppercase digest", func(m *Manifest) { m.Firmware.Stage0 = strings.ToUpper(m.Firmware.Stage0) }},
		{"bad actor name", func(m *Manifest) { m.Actors[0].Name = "Echo!" }},
		{"duplicate actor", func(m *Manifest) { m.Actors[1].Name = "echo" }},
		{"not a CID", func(m *Manifest) { m.Actors[0].CID = "bafynotacid" }},
		{"CID not canonical (v0 text of v1)", func(m *Manifest) {
			c, _ := cid.Decode(m.Actors[0].CID)
			m.Actors[0].CID, _ = c.StringOfBase('z')
		}},
		{"CID with a truncated sha2-256 digest", func(m *Manifest) {
			h, _ := multihash.Sum([]byte("echo.wasm"), multihash.SHA2_256, 1)
			m.Actors[0].CID = cid.NewCidV1(cid.Raw, h).String()
		}},
		{"CID with an identity multihash", func(m *Manifest) {
			h, _ := multihash.Sum([]byte("echo.wasm"), multihash.IDENTITY, -1)
			m.Actors[0].CID = cid.NewCidV1(cid.Raw, h).String()
		}},
		{"unsorted grants", func(m *Manifest) { m.Actors[1].Grants = []string{"log", "crypto.sign"} }},
		{"duplicate grant", func(m *Manifest) { m.Actors[0].Grants = []string{"log", "log"} }},
		{"malformed grant", func(m *Manifest) { m.Actors[0].Grants = []string{"Log!"} }},
		{"too many actors", func(m *Manifest) {
			for i := 0; i <= MaxActors; i++ {
				m.Actors = append(m.Actors, Actor{Name: "a" + strings.Repeat("b", i%20) + string(rune('a'+i%26)) + string(rune('a'+i/26)), CID: m.Actors[0].CID})
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sample(t)
			tc.mutate(m)
			if err := m.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			if _, err := Sign(m, key(1)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Sign accepted an invalid manifest: %v", err)
			}
		})
	}
}

func TestCheckUpgrade(t *testing.T) {
	cur := sample(t)
	tests := []struct {
		name    string
		version uint64
		want    error
	}{
		{"newer", 8, nil},
		{"same", 7, ErrStale},
		{"older", 3, ErrStale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := sample(t)
			next.Version = tc.version
			if err := CheckUpgrade(cur, next); !errors.Is(err, tc.want) {
				t.Fatalf("CheckUpgrade = %v, want %v", err, tc.want)
			}
		})
	}
	if err := CheckUpgrade(nil, cur); err != nil {
		t.Fatalf("first manifest refused: %v", err)
	}
}

func TestEmptyActorList(t *testing.T) {
	m := sample(t)
	m.Actors = nil
	b, err := Sign(m, key(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(b, key(1).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Actors) != 0 {
		t.Fatal("actors appeared")
	}
}

func FuzzVerify(f *testing.F) {
	good, _ := Sign(sample(f), key(1))
	f.Add(good)
	f.Add([]byte(`{"signed":{},"signature":{}}`))
	pub := key(1).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Verify(b, pub)
		if err != nil {
			return
		}
		// anything accepted is valid and re-signs to a verifiable file
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		again, err := Sign(m, key(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(again, pub); err != nil {
			t.Fatal(err)
		}
	})
}

// respaced is the manifest file b with its outer wrapper re-spaced and its
// keys in another order, the signed part byte for byte as it was.
func respaced(t testing.TB, b []byte) []byte {
	t.Helper()
	var f struct {
		Signed    json.RawMessage `json:"signed"`
		Signature Signature       `json:"signature"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf("\n  {\r\n\t\"signature\" : { \"sig\": %q,\n \"key\":%q , \"alg\" :%q },\n\t\"signed\" :\t%s\n}\n\n",
		f.Signature.Sig, f.Signature.Key, f.Signature.Alg, f.Signed))
}

func TestCanonicalFileIgnoresTheWrapper(t *testing.T) {
	b, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	other := respaced(t, b)
	if bytes.Equal(other, b) {
		t.Fatal("re-spacing changed nothing")
	}
	if _, err := Verify(other, key(1).Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("re-spaced file does not verify: %v", err)
	}
	c1, err := CanonicalFile(b)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := CanonicalFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1, c2) {
		t.Fatalf("same signed manifest, different canonical forms:\n%s\n%s", c1, c2)
	}
	// a file as Sign writes it is already canonical
	if !bytes.Equal(c1, b) {
		t.Fatalf("Sign's output is not its own canonical form:\n%s\n%s", b, c1)
	}
	// canonical of canonical is itself
	if c3, err := CanonicalFile(c1); err != nil || !bytes.Equal(c3, c1) {
		t.Fatalf("not idempotent: %v\n%s", err, c3)
	}
}

func TestCanonicalFileSeesEverySignedField(t *testing.T) {
	base, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	want, err := CanonicalFile(base)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(m *Manifest){
		"version":        func(m *Manifest) { m.Version++ },
		"stage0":         func(m *Manifest) { m.Firmware.Stage0 = digest("other stage0") },
		"stick":          func(m *Manifest) { m.Firmware.Stick = digest("other stick") },
		"actor name":     func(m *Manifest) { m.Actors[0].Name = "echo2" },
		"actor cid":      func(m *Manifest) { m.Actors[0].CID = rawCID(t, "other.wasm") },
		"grants":         func(m *Manifest) { m.Actors[0].Grants = []string{"clock", "log"} },
		"limits":         func(m *Manifest) { m.Actors[1].Limits.MaxConcurrent = 3 },
		"actors dropped": func(m *Manifest) { m.Actors = m.Actors[:1] },
	} {
		m := sample(t)
		change(m)
		b, err := Sign(m, key(1))
		if err != nil {
			t.Fatal(name, err)
		}
		got, err := CanonicalFile(respaced(t, b))
		if err != nil {
			t.Fatal(name, err)
		}
		if bytes.Equal(got, want) {
			t.Errorf("%s changed, canonical form did not", name)
		}
	}
	// another signer of the same manifest: another signature block
	other, err := Sign(sample(t), key(2))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CanonicalFile(other); err != nil || bytes.Equal(got, want) {
		t.Errorf("another signature, same canonical form (%v)", err)
	}
}

func TestCanonicalFileRefusesWhatParseRefuses(t *testing.T) {
	b, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"empty":             nil,
		"not json":          []byte("manifest"),
		"trailing data":     append(bytes.Clone(b), []byte(`{}`)...),
		"signed re-spaced":  bytes.Replace(b, []byte(`{"schema":`), []byte(`{ "schema":`), 1),
		"unknown top field": bytes.Replace(b, []byte(`{"signed":`), []byte(`{"x":1,"signed":`), 1),
	} {
		if _, err := CanonicalFile(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzCanonicalFile: manifest files come from the API. CanonicalFile never
// panics, and what it returns is itself canonical, parses to the same
// manifest and signature, and is stable.
func FuzzCanonicalFile(f *testing.F) {
	b, err := Sign(sample(f), key(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(respaced(f, b))
	f.Add([]byte(`{"signed":{},"signature":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := CanonicalFile(b)
		if err != nil {
			return
		}
		m1, s1, _, err := Parse(b)
		if err != nil {
			t.Fatalf("CanonicalFile accepted what Parse refuses: %v", err)
		}
		m2, s2, _, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c)
		}
		if !reflect.DeepEqual(m1, m2) || *s1 != *s2 {
			t.Fatalf("canonical form carries another manifest:\n%s\n%s", b, c)
		}
		if c2, err := CanonicalFile(c); err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form is not stable: %v\n%s\n%s", err, c, c2)
		}
	})
}

// TestNative: an entry marked native carries "native":true right after its
// CID in the signed part, round-trips through Sign and Verify, and an entry
// not marked keeps the bytes it had before the field existed.
func TestNative(t *testing.T) {
	pub := key(1).Public().(ed25519.PublicKey)
	m := sample(t)
	m.Actors[1].Native = true
	b, err := Sign(m, key(1))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"name":"notary","cid":"%s","native":true,"grants":`, m.Actors[1].CID)
	if !bytes.Contains(b, []byte(want)) {
		t.Fatalf("signed part lacks %s:\n%s", want, b)
	}
	if bytes.Count(b, []byte(`"native"`)) != 1 {
		t.Fatalf("the entry not marked native carries the field:\n%s", b)
	}
	got, err := Verify(b, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got.Actors[0].Native || !got.Actors[1].Native {
		t.Fatalf("native flags after Verify: %v %v", got.Actors[0].Native, got.Actors[1].Native)
	}
	if n := got.Native(); len(n) != 1 || n[0].Name != "notary" {
		t.Fatalf("Native() = %v", n)
	}
	// An unmarked manifest signs to exactly the golden bytes (TestGolden):
	// adding the field changed no existing manifest.
	plain, err := Sign(sample(t), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte("native")) {
		t.Fatalf("unmarked manifest mentions native:\n%s", plain)
	}

	s := string(b)
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"explicit false", strings.Replace(string(plain), `"grants":["log"]`, `"native":false,"grants":["log"]`, 1), ErrNotCanonical},
		{"after the grants", strings.Replace(s, `"native":true,"grants":["crypto.sign","log"]`, `"grants":["crypto.sign","log"],"native":true`, 1), ErrNotCanonical},
		{"a number", strings.Replace(s, `"native":true`, `"native":1`, 1), ErrMalformed},
		{"a string", strings.Replace(s, `"native":true`, `"native":"true"`, 1), ErrMalformed},
		{"spelled in another case", strings.Replace(s, `"native":true`, `"Native":true`, 1), ErrNotCanonical},
		{"added after signing", strings.Replace(string(plain), `"grants":["log"]`, `"native":true,"grants":["log"]`, 1), ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify([]byte(tc.in), pub); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	// native on an entry without a CID: nothing to translate.
	m = sample(t)
	m.Actors[0].CID, m.Actors[0].Native = "", true
	if err := m.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "native without a CID") {
		t.Fatalf("Validate = %v, want ErrInvalid naming native without a CID", err)
	}
}
