package main

import (
	"io"
	"strings"
	"testing"
)

func TestConsole(t *testing.T) {
	cmds := map[string]command{
		"uptime": {help: "time since reset", run: func(w io.Writer, args []string) {
			io.WriteString(w, "console: uptime 42 ms args="+strings.Join(args, ",")+"\n")
		}},
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"command with arguments", "uptime a b\n", []string{"console: uptime 42 ms args=a,b"}},
		{"blank lines ignored", "\n\n   \nuptime\n", []string{"console: uptime 42 ms args="}},
		{"unknown command", "reboot now\n", []string{`console: unknown command "reboot" (try help)`}},
		{"help lists commands", "help\n", []string{"console: commands: help", "console:   uptime   time since reset"}},
		{"overlong line ends the console with an error", strings.Repeat("x", maxLine+1) + "\nuptime\n", []string{"console: input: bufio.Scanner: token too long"}},
		{"last line without newline", "uptime", []string{"console: uptime 42 ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			console(strings.NewReader(tc.in), &out, cmds)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
		})
	}
}
