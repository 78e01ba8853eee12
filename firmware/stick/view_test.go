package main

import (
	"strings"
	"testing"
	"time"
)

// TestHeartbeatView checks the console's two views: quiet (the default)
// prints one heartbeat line in quietEvery beats, verbose every beat, and
// the verbose command switches between them while the heartbeat runs.
func TestHeartbeatView(t *testing.T) {
	uptime := func() time.Duration { return 0 }
	count := func(s string) int { return strings.Count(s, "heartbeat ") }

	v := newView()
	var out strings.Builder
	heartbeat(&out, 2*quietEvery+5, 0, v, uptime)
	if n := count(out.String()); n != 2 {
		t.Fatalf("quiet view: %d heartbeat lines in %d beats, want 2:\n%s", n, 2*quietEvery+5, out.String())
	}
	if !strings.Contains(out.String(), "heartbeat 60 uptime 0 ms\n") {
		t.Fatalf("quiet view: %q", out.String())
	}

	var answer strings.Builder
	v.command().run(&answer, []string{"on"})
	if answer.String() != "console: verbose on: a heartbeat every second and debug lines\n" {
		t.Fatalf("verbose on answered %q", answer.String())
	}
	if v.level.Level().String() != "DEBUG" {
		t.Fatalf("verbose on: runtime log level %v", v.level.Level())
	}
	out.Reset()
	heartbeat(&out, 5, 0, v, uptime)
	if n := count(out.String()); n != 5 {
		t.Fatalf("verbose view: %d heartbeat lines in 5 beats:\n%s", n, out.String())
	}

	answer.Reset()
	v.command().run(&answer, []string{"off"})
	v.command().run(&answer, []string{"loud"})
	if answer.String() != "console: verbose off: state changes, errors and a heartbeat a minute\nverbose: usage: verbose on|off\n" {
		t.Fatalf("verbose off, loud answered %q", answer.String())
	}
	if v.level.Level().String() != "INFO" {
		t.Fatalf("verbose off: runtime log level %v", v.level.Level())
	}
}
