//go:build nomeasure

package main

// measurement is off: a benchmark-only build that measures nothing, to
// price measured boot. Never ship it: the Makefile warns when it is built.
const measurement = false
