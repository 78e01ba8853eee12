package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teastick/teastick/image/nativetable"
	"github.com/teastick/teastick/runtime/actortest"
)

// release translate: the actors a draft marks native, their modules
// checked against the draft's CIDs, become a Go package that carries the
// native table; a module that is not the CID's, and a draft that marks
// nothing, are refused.
func TestReleaseTranslate(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	mods := p("actors")
	os.MkdirAll(mods, 0o755)
	edge := actortest.Wat(t, "edge")
	os.WriteFile(filepath.Join(mods, "edge.wasm"), edge, 0o644)
	os.WriteFile(filepath.Join(mods, "plain.wasm"), actortest.Wat(t, "traps"), 0o644)
	os.WriteFile(filepath.Join(mods, "printer.wasm"), actortest.Wat(t, "initprint"), 0o644)
	printerCID := actortest.CID(actortest.Wat(t, "initprint")).String()
	edgeCID := actortest.CID(edge).String()
	plainCID := actortest.CID(actortest.Wat(t, "traps")).String()
	mustOK(t, teactl("manifest", "new", "--version", "1", "--stage0-sha256", strings.Repeat("0", 64), "--stick-sha256", strings.Repeat("0", 64), "-o", p("draft.json")), "new")
	mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "plain", "--cid", plainCID), "add")
	wantFail(t, teactl("release", "translate", p("draft.json"), "--modules", mods, "-o", p("out")), exitUsage, "marks no actor native", "a draft without native entries")
	r := mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "edge", "--cid", edgeCID, "--grant", "log", "--native"), "add --native")
	if !strings.Contains(r.stdout, "native") {
		t.Errorf("manifest add --native says %q", r.stdout)
	}

	mustOK(t, teactl("manifest", "add", p("draft.json"), "--name", "printer", "--cid", printerCID, "--grant", "log", "--native"), "add --native")

	// Each translated actor says how its instances start on the stick.
	out := p("out")
	r = mustOK(t, teactl("release", "translate", p("draft.json"), "--modules", mods, "-o", out, "--import", "example.com/gen/out"), "translate")
	if !strings.Contains(r.stdout, "edge "+edgeCID+", pre-initialized") || strings.Contains(r.stdout, "plain") ||
		!strings.Contains(r.stdout, "printer "+printerCID+", runs its initializers on the stick: its initializers call wasi_snapshot_preview1.fd_write") {
		t.Errorf("translate reports %q, want edge pre-initialized and printer not, and nothing of plain", r.stdout)
	}
	gen, err := os.ReadFile(filepath.Join(out, "nativetable_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := nativetable.Find(gen)
	names := map[string]string{}
	for _, e := range table {
		names[e.Name] = e.CID
	}
	if err != nil || len(table) != 2 || names["edge"] != edgeCID || names["printer"] != printerCID {
		t.Fatalf("generated table %v, %v; want edge %s and printer %s", table, err, edgeCID, printerCID)
	}
	if _, err := os.Stat(filepath.Join(out, "a_edge", "module.go")); err != nil {
		t.Errorf("no translation of edge: %v", err)
	}

	// The module under edge's name is another one: refused before any
	// translation.
	os.WriteFile(filepath.Join(mods, "edge.wasm"), actortest.Wat(t, "traps"), 0o644)
	wantFail(t, teactl("release", "translate", p("draft.json"), "--modules", mods, "-o", p("out2")), exitCheck, "the draft names "+edgeCID, "a module that is not the CID's")
	if _, err := os.Stat(p("out2")); err == nil {
		t.Error("a refused translation wrote its directory")
	}
}
