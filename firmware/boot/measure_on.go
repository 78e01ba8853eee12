//go:build !nomeasure

package main

// measurement is on in every image but benchmark-only nomeasure builds.
const measurement = true
