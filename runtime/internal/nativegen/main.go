// Command nativegen translates the actors the runtime's tests run (every
// WAT fixture in runtime/testdata that loads, every example actor in
// runtime/examples, the AssemblyScript guest) into one directory with
// runtime/native/translate, so that tests built with the tag nativegen
// compile them in and compare the native engine with the interpreter
// (runtime/native_test.go). runtime/runtime.mk runs it before `make
// test`; fixtures the runtime refuses are skipped, and named.
//
//	go run ./runtime/internal/nativegen -out build/_native/rt
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"github.com/teastick/teastick/netstack/ipfs"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/examples"
	"github.com/teastick/teastick/runtime/native/translate"
	"github.com/teastick/teastick/runtime/nativediff"
)

// ImportPath is where the tests import the translations from: build/ is
// gitignored, and the leading underscore keeps `./...` (go vet, go test)
// out of the generated code.
const ImportPath = "github.com/teastick/teastick/build/_native/rt"

func main() {
	out := flag.String("out", "build/_native/rt", "output directory (the package "+ImportPath+")")
	only := flag.String("only", "", "comma-separated names to translate (default: all)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("nativegen: ")
	ctx := context.Background()
	rtDir, err := filepath.Abs("runtime")
	if err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "nativegen-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	var actors []translate.Actor
	add := func(name string, cmd *exec.Cmd, wasm string) {
		if len(want) > 0 && !want[name] {
			return
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("building %s: %s: %v", name, cmd, err)
		}
		m, err := os.ReadFile(wasm)
		if err != nil {
			log.Fatal(err)
		}
		c, _ := ipfs.Add(m)
		// A WAT fixture may be one the runtime refuses (default limits,
		// as the tests load them): it has nothing to translate, and the
		// tests check the refusal is the same. translate.Write checks
		// every actor again (and fails on any refusal).
		if strings.HasPrefix(name, "wat-") {
			pctx, cancel := context.WithTimeout(ctx, nativediff.PrepareTimeout(name))
			_, err := runtime.PrepareNative(pctx, name, c, m, runtime.Limits{})
			cancel()
			if err != nil {
				log.Printf("skipping %s: %v", name, err)
				return
			}
		}
		actors = append(actors, translate.Actor{Name: name, CID: c, Module: m})
	}
	wats, _ := filepath.Glob(filepath.Join(rtDir, "testdata", "*.wat"))
	sort.Strings(wats)
	for _, w := range wats {
		name := "wat-" + strings.TrimSuffix(filepath.Base(w), ".wat")
		o := filepath.Join(tmp, name+".wasm")
		add(name, exec.Command("wat2wasm", w, "-o", o), o)
	}
	ents, err := os.ReadDir(filepath.Join(rtDir, "examples"))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := "go-" + e.Name()
		o := filepath.Join(tmp, name+".wasm")
		add(name, examples.Build(ctx, filepath.Join(goruntime.GOROOT(), "bin", "go"), rtDir, e.Name(), o), o)
	}
	o := filepath.Join(tmp, "ascript.wasm")
	cmd := exec.Command("sh", filepath.Join(rtDir, "testdata", "ascript", "build.sh"), o)
	cmd.Dir = filepath.Join(rtDir, "testdata", "ascript")
	add("ascript", cmd, o)

	t0 := time.Now()
	done, err := translate.WriteContext(ctx, *out, ImportPath, actors)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("nativegen: translated %d actors into %s in %v\n", len(actors), *out, time.Since(t0).Round(time.Millisecond))
	for _, d := range done {
		fmt.Printf("nativegen: %s %s\n", d.Name, snapshotNote(d))
	}
}

// snapshotNote says how d's instances start on the stick.
func snapshotNote(d translate.Translated) string {
	if d.NoSnapshot != "" {
		return "runs its initializers: " + d.NoSnapshot
	}
	return "pre-initialized"
}
