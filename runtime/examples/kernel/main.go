//go:build wasip1

// Command kernel runs the shared compute kernel as an actor: payload n(4)
// rounds(4) big-endian, response the checksum (8, big-endian).
package main

import (
	"encoding/binary"
	"errors"

	"github.com/teastick/teastick/runtime/actor"
	"github.com/teastick/teastick/runtime/internal/kernel"
)

func init() {
	actor.Handle("run", func(p []byte) ([]byte, error) {
		if len(p) != 8 {
			return nil, errors.New("kernel: payload is n(4) rounds(4)")
		}
		n, rounds := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if n == 0 || n > 512 || rounds > 1000 {
			return nil, errors.New("kernel: n in 1..512, rounds up to 1000")
		}
		return binary.BigEndian.AppendUint64(nil, kernel.Run(int(n), int(rounds))), nil
	})
}

func main() {}
