//go:build nativegen

package benchmode_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	_ "github.com/teastick/teastick/build/_native/rt"
	"github.com/teastick/teastick/runtime"
	"github.com/teastick/teastick/runtime/benchmode"
)

// TestRunNative runs bench mode as the stick's "bench native" does, with
// the examples' translations in the binary (tag nativegen; make
// runtime-prep): every example runs natively, and its cold start is the
// stick's, with no module bytes to check ("built in").
func TestRunNative(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four Go actors")
	}
	mods := examples(t)
	rt := runtime.New(runtime.Config{Engine: runtime.EngineInterpreter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer rt.Close()
	var out bytes.Buffer
	if err := benchmode.RunOptions(context.Background(), io.MultiWriter(&out, testWriter{t}), rt, mods,
		benchmode.Options{Native: true, EmptyCalls: 20, KernelN: 16, KernelRuns: 1, HashRuns: 1}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, name := range []string{"echo", "kernel", "notary", "wordcount"} {
		re := regexp.MustCompile(`(?m)^bench: cold-start ` + name + ` [0-9]+ ms, again [0-9]+ ms \(built in, native\)$`)
		if !re.MatchString(text) {
			t.Errorf("no native cold start of %s without module bytes", name)
		}
	}
	if !strings.Contains(text, "actor native") {
		t.Error("the kernel did not run natively")
	}
}
