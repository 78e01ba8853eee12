package release

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/nativetable"
)

func rawCID(s string) string {
	h, _ := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h).String()
}

// TestNativeTable: the reference lists the native table the stick image
// carries, read from the image's bytes; a manifest marking native an actor
// the image holds no translation of is refused; and reference.json's
// table cannot be edited apart from the image.
func TestNativeTable(t *testing.T) {
	stage0 := testStage0(t)
	// The table is made at run time: a literal one would be in this test
	// binary, which is stage 0 here.
	table, err := nativetable.Encode([]nativetable.Entry{{Name: "echo", CID: rawCID("echo")}})
	if err != nil {
		t.Fatal(err)
	}
	withTable := append(append(bytes.Clone(stage0), 0), table...)
	gov := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	sign := func(stick []byte, actors ...manifest.Actor) []byte {
		return signFor(t, gov, 1, stage0, stick, actors...)
	}
	echo := manifest.Actor{Name: "echo", CID: rawCID("echo"), Native: true, Grants: []string{"log"}}
	kv := manifest.Actor{Name: "kv", CID: rawCID("kv"), Native: true}

	signed := sign(withTable, echo, manifest.Actor{Name: "kv", CID: rawCID("kv")})
	r, err := Make(stage0, withTable, signed, "v", "linux-hosted")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Native) != 1 || r.Native[0].Name != "echo" || r.Native[0].CID != echo.CID {
		t.Fatalf("reference native table %v, want echo %s", r.Native, echo.CID)
	}
	if n := r.NativeActors(); len(n) != 1 || n[0].CID.String() != echo.CID {
		t.Fatalf("NativeActors = %v", n)
	}
	dir := filepath.Join(t.TempDir(), "rel")
	if err := Write(dir, stage0, withTable, signed, r); err != nil {
		t.Fatal(err)
	}
	pub := gov.Public().(ed25519.PublicKey)
	if _, _, err := Verify(dir, pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// reference.json's table edited: the image's differs.
	raw, _ := os.ReadFile(filepath.Join(dir, ReferenceFile))
	var edited map[string]any
	json.Unmarshal(raw, &edited)
	edited["native"] = []map[string]string{{"name": "echo", "cid": echo.CID}, {"name": "kv", "cid": rawCID("kv")}}
	b, _ := json.Marshal(edited)
	os.WriteFile(filepath.Join(dir, ReferenceFile), b, 0o644)
	if _, _, err := Verify(dir, pub); !errors.Is(err, ErrBundle) {
		t.Fatalf("Verify of an edited native table = %v, want ErrBundle", err)
	}

	// An actor marked native whose CID the image does not hold.
	if _, err := Make(stage0, withTable, sign(withTable, echo, kv), "v", "linux-hosted"); !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), `"kv"`) {
		t.Fatalf("Make with kv marked native and not compiled in = %v, want ErrBundle naming kv", err)
	}
	// An image without a table: no native actors, no "native" field.
	plain := append(bytes.Clone(stage0), 0)
	r, err = Make(stage0, plain, sign(plain, manifest.Actor{Name: "echo", CID: echo.CID}), "v", "linux-hosted")
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := json.Marshal(r); r.Native != nil || bytes.Contains(j, []byte(`"native"`)) {
		t.Fatalf("reference of an image without a table: %s", j)
	}
	if _, err := Make(stage0, plain, sign(plain, echo), "v", "linux-hosted"); !errors.Is(err, ErrBundle) {
		t.Fatalf("Make with echo marked native and no table = %v, want ErrBundle", err)
	}
	// Two tables in one image.
	two := append(bytes.Clone(withTable), table...)
	if _, err := Make(stage0, two, sign(two), "v", "linux-hosted"); !errors.Is(err, nativetable.ErrTable) {
		t.Fatalf("Make with two tables = %v, want ErrTable", err)
	}
}
