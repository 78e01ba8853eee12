// Package manifesttest helps tests of code that measures or compares
// signed manifests.
package manifesttest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/teastick/teastick/image/manifest"
)

// Respaced is the signed manifest file b with its outer wrapper re-spaced
// and its keys reordered; the signed part is kept byte for byte, so it is
// the same signed manifest in another file.
func Respaced(t testing.TB, b []byte) []byte {
	t.Helper()
	var f struct {
		Signed    json.RawMessage    `json:"signed"`
		Signature manifest.Signature `json:"signature"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf("\n{ \"signature\" : {\"key\": %q, \"sig\" : %q,\r\n\t\"alg\": %q},\n  \"signed\":%s }\n",
		f.Signature.Key, f.Signature.Sig, f.Signature.Alg, f.Signed))
}
