// Package kernel is a compute benchmark written once and run both as native
// Go and inside an actor (runtime benchmarks compare the two): integer
// matrix products over pseudo-random matrices, the kind of tight loop an
// interpreter pays most for.
package kernel

// Run multiplies two n×n matrices rounds times and returns a checksum.
func Run(n, rounds int) uint64 {
	a := make([]uint32, n*n)
	b := make([]uint32, n*n)
	c := make([]uint32, n*n)
	x := uint32(2463534242)
	for i := range a {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		a[i] = x & 0xffff
		b[i] = (x >> 16) & 0xffff
	}
	var sum uint64
	for range rounds {
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var acc uint32
				for k := 0; k < n; k++ {
					acc += a[i*n+k] * b[k*n+j]
				}
				c[i*n+j] = acc
			}
		}
		for i, v := range c {
			sum += uint64(v) ^ uint64(i)
		}
		a, c = c, a
	}
	return sum
}
