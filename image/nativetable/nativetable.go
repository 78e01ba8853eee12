// Package nativetable is the list of actors translated to Go at release
// time and compiled into a stick image (its native table: name and CID of
// each), in a form the release tool reads back from the image's bytes.
//
// The build writes the table into the generated package that imports the
// translations (GoFile, beside what runtime/native/translate.Write made);
// that package's init stores it in Embedded, which the stick compares with
// the translations that registered (runtime/native) and prints. The string
// is so kept in the image, and image/release finds it there (Find) to list
// the image's native actors in reference.json: the table a verifier gets
// is read from the very image whose digest the manifest names and stage 0
// measures into PCR 4, not from a file beside it that could differ.
//
// # Encoding
//
// One string, found in the image by its prefix:
//
//	TEASTICK-NATIVE-TABLE/1:<8 lowercase hex digits: n>:<n bytes of JSON>:END
//
// The JSON is a list of {"name":..,"cid":..}, sorted by CID, no CID twice,
// in compact encoding/json form; Decode refuses any other spelling.
package nativetable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
)

// Prefix starts an encoded table.
const Prefix = "TEASTICK-NATIVE-TABLE/1:"

const suffix = ":END"

// nameRE is the manifest's rule for actor names (image/manifest).
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// MaxEntries bounds a table (the manifest's limit on actors).
const MaxEntries = 64

// maxJSON bounds the JSON part (8 hex digits could say 4 GiB).
const maxJSON = 64 << 10

// ErrTable means an encoded table is malformed or an image holds more
// than one.
var ErrTable = errors.New("nativetable: malformed native table")

// Embedded is the table of the image this program is, set by the
// generated package's init (empty: built without native actors).
var Embedded string

// Entry is one translated actor.
type Entry struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
}

// Encode returns the encoded table of entries (sorted by CID here).
func Encode(entries []Entry) (string, error) {
	es := slices.Clone(entries)
	if es == nil {
		es = []Entry{}
	}
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.CID, b.CID) })
	if err := check(es); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(es); err != nil {
		return "", err
	}
	j := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return fmt.Sprintf("%s%08x:%s%s", Prefix, len(j), j, suffix), nil
}

func check(es []Entry) error {
	if len(es) > MaxEntries {
		return fmt.Errorf("%w: %d entries, at most %d", ErrTable, len(es), MaxEntries)
	}
	for i, e := range es {
		c, err := cid.Decode(e.CID)
		if err != nil || c.String() != e.CID {
			return fmt.Errorf("%w: entry %d: CID %q is not a canonical CID", ErrTable, i, e.CID)
		}
		if !nameRE.MatchString(e.Name) {
			return fmt.Errorf("%w: entry %d: name %q", ErrTable, i, e.Name)
		}
		if i > 0 && es[i-1].CID >= e.CID {
			return fmt.Errorf("%w: CIDs not sorted and unique", ErrTable)
		}
	}
	return nil
}

// Decode parses an encoded table that fills s exactly.
func Decode(s string) ([]Entry, error) {
	es, n, err := decodeAt(s)
	if err != nil {
		return nil, err
	}
	if n != len(s) {
		return nil, fmt.Errorf("%w: %d bytes after the table", ErrTable, len(s)-n)
	}
	return es, nil
}

// decodeAt parses the table at the start of s and returns its length.
func decodeAt(s string) ([]Entry, int, error) {
	if !strings.HasPrefix(s, Prefix) {
		return nil, 0, fmt.Errorf("%w: no prefix", ErrTable)
	}
	rest := s[len(Prefix):]
	if len(rest) < 9 || rest[8] != ':' {
		return nil, 0, fmt.Errorf("%w: length", ErrTable)
	}
	for _, r := range rest[:8] {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return nil, 0, fmt.Errorf("%w: length", ErrTable)
		}
	}
	n, err := strconv.ParseUint(rest[:8], 16, 32)
	if err != nil || n > maxJSON || uint64(len(rest)-9) < n+uint64(len(suffix)) {
		return nil, 0, fmt.Errorf("%w: length", ErrTable)
	}
	j := rest[9 : 9+n]
	if rest[9+n:9+n+uint64(len(suffix))] != suffix {
		return nil, 0, fmt.Errorf("%w: no end marker", ErrTable)
	}
	var es []Entry
	dec := json.NewDecoder(strings.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&es); err != nil || es == nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrTable, err)
	}
	again, err := Encode(es)
	if err != nil {
		return nil, 0, err
	}
	total := len(Prefix) + 9 + int(n) + len(suffix)
	if again != s[:total] {
		return nil, 0, fmt.Errorf("%w: not in canonical form", ErrTable)
	}
	return es, total, nil
}

// Find returns the native table an image's bytes carry: nil when it
// carries none (every occurrence of Prefix is followed by no valid
// table: the prefix constant itself is in every image), an error when it
// carries more than one.
func Find(image []byte) ([]Entry, error) {
	var found []Entry
	n := 0
	for rest := image; ; {
		i := bytes.Index(rest, []byte(Prefix))
		if i < 0 {
			break
		}
		rest = rest[i:]
		end := min(len(rest), len(Prefix)+9+maxJSON+len(suffix))
		if es, size, err := decodeAt(string(rest[:end])); err == nil {
			if n++; n > 1 {
				return nil, fmt.Errorf("%w: the image carries more than one", ErrTable)
			}
			found = es
			rest = rest[size:]
			continue
		}
		rest = rest[len(Prefix):]
	}
	return found, nil
}

// GoFile returns the Go source of a file for package pkg (the package
// runtime/native/translate.Write made at the root of its output
// directory, importing every translation) whose init sets Embedded to
// the encoded entries. The release tool writes it beside that package's
// files (teactl release translate).
func GoFile(pkg string, entries []Entry) ([]byte, error) {
	enc, err := Encode(entries)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`// Code generated by teastick's release build (image/nativetable). DO NOT EDIT.

package %s

import "github.com/teastick/teastick/image/nativetable"

// The native table of this build, found in the image by image/release.
func init() {
	nativetable.Embedded = `+"`%s`"+`
}
`, pkg, enc)), nil
}
