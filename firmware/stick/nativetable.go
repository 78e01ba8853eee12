package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/teastick/teastick/image/nativetable"
	"github.com/teastick/teastick/runtime/native"
)

// writeNative prints the image's native table at boot: the actors it
// can run natively (where the manifest marks exactly their CID), as the
// table the release tool reads from this image (image/nativetable) lists
// them. A table that disagrees with the translations that registered
// means a broken build: the stick says so, and a verifier would refuse
// any native actor the table does not list.
func writeNative(w io.Writer) {
	reg := native.All()
	var have []string
	for _, a := range reg {
		have = append(have, a.CID.String())
	}
	var table []nativetable.Entry
	var err error
	if nativetable.Embedded != "" {
		table, err = nativetable.Decode(nativetable.Embedded)
	}
	var listed, lines []string
	for _, e := range table {
		listed = append(listed, e.CID)
		lines = append(lines, fmt.Sprintf("%s %s", e.Name, e.CID))
	}
	slices.Sort(have)
	slices.Sort(listed)
	switch {
	case err != nil:
		fmt.Fprintf(w, "native: BROKEN BUILD: the image's native table: %v\n", err)
	case !slices.Equal(have, listed):
		fmt.Fprintf(w, "native: BROKEN BUILD: %d translations registered, the image's table lists %d: a verifier refuses native actors it does not list\n", len(have), len(listed))
	case len(reg) == 0:
		fmt.Fprintf(w, "native: none compiled in: every actor runs in the interpreter\n")
	default:
		fmt.Fprintf(w, "native: %d actors compiled in (served natively where the manifest marks exactly their CID): %s\n", len(reg), strings.Join(lines, ", "))
	}
}
