// Package translate turns actors into Go at release time (issue 18;
// RATIONALE.md, "Native actors"): each module is checked as the runtime
// checks it at load (runtime.PrepareNative: CID, precheck, the meter's
// rewrite, wazero's validation, shape, links, initializers), its memory
// maximum set to the actor's memory limit, then translated by wasm2go
// (pinned as a Go tool in go.mod, never with -unsafe), and the Go it
// writes given a call-depth bound. Host-only: it runs the go command.
package translate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/teastick/teastick/runtime"
)

// Actor is one actor to translate: the manifest's name, CID and limits,
// and the module bytes the CID names.
type Actor struct {
	Name   string
	CID    cid.Cid
	Module []byte
	Limits runtime.Limits
}

// Go is the go command that runs wasm2go (`go tool wasm2go`, the version
// go.mod pins); Dir is where it runs, inside the teastick module (empty:
// the module root found above the working directory).
var (
	Go  = "go"
	Dir = ""
)

// Write translates actors into outDir: one package per distinct CID
// (outDir/a_<name>: module.go from wasm2go, register.go adding it to
// package native's table) and one package at outDir itself, named by the
// last element of importPath, that imports them all. A build that
// imports importPath gets the table. outDir's earlier contents are
// replaced. Output is a deterministic function of the input.
func Write(outDir, importPath string, actors []Actor) error {
	_, err := WriteContext(context.Background(), outDir, importPath, actors)
	return err
}

// Translated is what Write made of one actor.
type Translated struct {
	Name string
	CID  cid.Cid
	// NoSnapshot says why its instances run their initializers on the
	// stick; empty, they start from the state the initializers left at
	// translation (native.Snapshot).
	NoSnapshot string
}

// WriteContext is Write under ctx, reporting each actor translated.
func WriteContext(ctx context.Context, outDir, importPath string, actors []Actor) ([]Translated, error) {
	dir := Dir
	if dir == "" {
		var err error
		if dir, err = moduleRoot(); err != nil {
			return nil, err
		}
	}
	type job struct {
		a   Actor
		pkg string
	}
	var jobs []job
	seen := map[string]Actor{}
	pkgs := map[string]bool{}
	for _, a := range actors {
		if prev, ok := seen[a.CID.KeyString()]; ok {
			if prev.Limits.MemoryPages != a.Limits.MemoryPages {
				return nil, fmt.Errorf("translate: %s and %s share CID %s under different memory limits", prev.Name, a.Name, a.CID)
			}
			continue
		}
		seen[a.CID.KeyString()] = a
		pkg := "a_" + strings.ReplaceAll(a.Name, "-", "_")
		if a.Name == "" || pkgs[pkg] {
			return nil, fmt.Errorf("translate: actor name %q empty or repeated", a.Name)
		}
		pkgs[pkg] = true
		jobs = append(jobs, job{a, pkg})
	}
	slices.SortFunc(jobs, func(x, y job) int { return strings.Compare(x.pkg, y.pkg) })
	if err := clean(outDir); err != nil {
		return nil, fmt.Errorf("translate: %w", err)
	}
	var imports []string
	var done []Translated
	for _, j := range jobs {
		src, reg, nm, err := translate(ctx, dir, j.pkg, j.a)
		if err != nil {
			return nil, fmt.Errorf("translate %s (%s): %w", j.a.Name, j.a.CID, err)
		}
		d := filepath.Join(outDir, j.pkg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("translate: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, "module.go"), src, 0o644); err != nil {
			return nil, fmt.Errorf("translate: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, "register.go"), reg, 0o644); err != nil {
			return nil, fmt.Errorf("translate: %w", err)
		}
		imports = append(imports, importPath+"/"+j.pkg)
		done = append(done, Translated{Name: j.a.Name, CID: j.a.CID, NoSnapshot: nm.NoSnapshot})
	}
	root, err := rootPackage(importPath, imports)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, "actors.go"), root, 0o644); err != nil {
		return nil, fmt.Errorf("translate: %w", err)
	}
	return done, nil
}

// clean removes what an earlier Write left in outDir (the actors'
// packages, a_*, and actors.go) and keeps everything else: the committed
// doc.go of the repository's table packages (build/_native/stick and rt),
// which lets the packages importing them resolve before any translation,
// and files other tools put there (teactl's nativetable_gen.go, rewritten
// after each Write).
func clean(outDir string) error {
	old, err := filepath.Glob(filepath.Join(outDir, "a_*"))
	if err != nil {
		return err
	}
	for _, p := range append(old, filepath.Join(outDir, "actors.go")) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// translate returns the generated module and its registration.
func translate(ctx context.Context, dir, pkg string, a Actor) (module, register []byte, nm *runtime.NativeModule, err error) {
	nm, err = runtime.PrepareNative(ctx, a.Name, a.CID, a.Module, a.Limits)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.CommandContext(ctx, Go, "tool", "wasm2go", "-pkg", pkg)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(nm.Wasm)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, nil, fmt.Errorf("wasm2go: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	module, register, err = rewrite(stdout.Bytes(), pkg, nm)
	return module, register, nm, err
}

// moduleRoot finds the teastick module's root above the working
// directory.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/teastick/teastick\n")) {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("translate: not inside the teastick module (set translate.Dir)")
		}
		d = p
	}
}
