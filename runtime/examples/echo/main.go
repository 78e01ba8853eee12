//go:build wasip1

// Command echo is the smallest useful actor: it returns what it is given.
package main

import (
	"fmt"

	"github.com/teastick/teastick/runtime/actor"
)

func init() {
	actor.Handle("echo", func(p []byte) ([]byte, error) { return p, nil })
	actor.Handle("print", func(p []byte) ([]byte, error) {
		fmt.Printf("%s\n", p)
		return p, nil
	})
}

func main() {}
