package main

import (
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/image/manifest"
	"github.com/teastick/teastick/image/nativetable"
	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/native/translate"
)

// NativeImport is the import path of the package release translate writes
// (build/_native/stick from the repository's root): the stick's
// `native` build tag imports it (firmware/stick/native_on.go). Its
// directory starts with "_" so that `go test ./...` and `go vet ./...`
// never pick the generated code up.
const NativeImport = "github.com/teastick/teastick/build/_native/stick"

// release translate [DRAFT] --modules DIR -o OUT: the actors the draft
// marks native (every module in DIR when no draft is given), checked
// against their CIDs, translated to Go into OUT (runtime/native/translate)
// with the native table the image then carries (image/nativetable).
func releaseTranslate(e *env, args []string) error {
	fs := e.flags("release translate", "[DRAFT] --modules DIR [-o build/_native/stick]")
	modules := fs.String("modules", "", "directory of built actors: NAME.wasm (or CID.wasm) for each actor to translate")
	out := fs.String("o", "build/_native/stick", "directory of the generated package, "+NativeImport+" from the repository's root")
	importPath := fs.String("import", NativeImport, "import path of the -o directory")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || *modules == "" {
		return usageErr("release translate takes at most one DRAFT and needs --modules")
	}
	var entries []manifest.Actor
	if len(pos) == 1 {
		m, err := readDraft(pos[0])
		if err != nil {
			return err
		}
		entries = m.Native()
		if len(entries) == 0 {
			return usageErr("%s marks no actor native (\"native\": true)", pos[0])
		}
	} else {
		// Every module in the directory, named by its file, under the
		// runtime's default limits.
		files, err := filepath.Glob(filepath.Join(*modules, "*.wasm"))
		if err != nil {
			return ioErr(err)
		}
		slices.Sort(files)
		for _, f := range files {
			code, err := os.ReadFile(f)
			if err != nil {
				return ioErr(err)
			}
			c, _ := ipfs.Add(code)
			entries = append(entries, manifest.Actor{Name: strings.TrimSuffix(filepath.Base(f), ".wasm"), CID: c.String(), Native: true})
		}
		if len(entries) == 0 {
			return usageErr("no *.wasm in %s", *modules)
		}
	}
	var actors []translate.Actor
	var table []nativetable.Entry
	for _, a := range entries {
		module, err := findModule(*modules, a)
		if err != nil {
			return err
		}
		spec, err := runtime.SpecFrom(a, module)
		if err != nil {
			return checkErr(err)
		}
		actors = append(actors, translate.Actor{Name: a.Name, CID: spec.CID, Module: module, Limits: spec.Limits})
		table = append(table, nativetable.Entry{Name: a.Name, CID: a.CID})
	}
	start := time.Now()
	e.progress("translating %d actors into %s (wasm2go, then the table)", len(actors), *out)
	done, err := translate.WriteContext(context.Background(), *out, *importPath, actors)
	if err != nil {
		return checkErr(err)
	}
	if err := writeTable(*out, table); err != nil {
		return ioErr(err)
	}
	var lines []string
	starts := map[string]string{} // by the CID as the manifest spells it
	for _, d := range done {
		s := "pre-initialized (initializers ran at translation)"
		if d.NoSnapshot != "" {
			s = "runs its initializers on the stick: " + d.NoSnapshot
		}
		for j, a := range actors {
			if a.CID.Equals(d.CID) {
				starts[table[j].CID] = s
			}
		}
	}
	for _, t := range table {
		lines = append(lines, fmt.Sprintf("  %s %s, %s\n", t.Name, t.CID, starts[t.CID]))
	}
	e.result(map[string]any{"dir": *out, "import": *importPath, "native": table, "starts": starts, "seconds": time.Since(start).Seconds()},
		fmt.Sprintf("translated %d actors into %s in %v (build the stick with BUILD_TAGS=native):\n%s", len(actors), *out, time.Since(start).Round(time.Millisecond), strings.Join(lines, "")))
	return nil
}

// findModule reads the module of entry a from dir (NAME.wasm, else
// CID.wasm) and checks it against a's CID as the stick would, with the
// same chunking as teactl actor publish.
func findModule(dir string, a manifest.Actor) ([]byte, error) {
	want, err := cid.Decode(a.CID)
	if err != nil {
		return nil, checkErr(fmt.Errorf("actor %s: %w", a.Name, err))
	}
	var tried []string
	for _, name := range []string{a.Name + ".wasm", a.CID + ".wasm"} {
		p := filepath.Join(dir, name)
		code, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			tried = append(tried, p)
			continue
		}
		if err != nil {
			return nil, ioErr(err)
		}
		if got, _ := ipfs.Add(code); !got.Equals(want) {
			return nil, checkErr(fmt.Errorf("actor %s: %s has CID %s, the draft names %s", a.Name, p, got, a.CID))
		}
		return code, nil
	}
	return nil, ioErr(fmt.Errorf("actor %s: no module (looked for %s)", a.Name, strings.Join(tried, ", ")))
}

// writeTable adds the native table to the package translate.Write made in
// dir (image/nativetable.GoFile): the image then carries it.
func writeTable(dir string, entries []nativetable.Entry) error {
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, nil, parser.PackageClauseOnly)
	if err != nil {
		return fmt.Errorf("native table: %s: %w", dir, err)
	}
	if len(pkgs) != 1 {
		return fmt.Errorf("native table: %s holds %d packages, want the one translate.Write made", dir, len(pkgs))
	}
	var name string
	for n := range pkgs {
		name = n
	}
	src, err := nativetable.GoFile(name, entries)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "nativetable_gen.go"), src, 0o644)
}
