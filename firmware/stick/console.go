package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// maxLine bounds a console line: enough for a base64 manifest.
const maxLine = 1 << 20

// command is one operator console command.
type command struct {
	help string
	run  func(w io.Writer, args []string)
}

// registered are console commands that files add from init, for build
// variants (a bench command) that main need not know about.
var registered = map[string]command{}

// console reads command lines from r and answers on w until r ends. It is
// the stick's operator console on its serial port.
func console(r io.Reader, w io.Writer, cmds map[string]command) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		if name == "help" {
			names := make([]string, 0, len(cmds))
			for n := range cmds {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Fprintln(w, "console: commands: help")
			for _, n := range names {
				fmt.Fprintf(w, "console:   %-8s %s\n", n, cmds[n].help)
			}
			continue
		}
		c, ok := cmds[name]
		if !ok {
			fmt.Fprintf(w, "console: unknown command %q (try help)\n", name)
			continue
		}
		c.run(w, fields[1:])
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "console: input: %v\n", err)
	}
}
