package runtime

import (
	"context"
	"fmt"
	"reflect"

	"github.com/tetratelabs/wazero/api"
)

// Warm starts instances of the actor name until n of them (at most its
// max_concurrent) wait idle, so that up to n concurrent calls pay no
// instantiation. It returns how many instances it started and the linear
// memory wazero allocated for them, in bytes (benchmarks subtract it from
// the heap the instances cost). It fails with ErrBusy rather than wait
// while the actor has calls in flight.
func (r *Runtime) Warm(ctx context.Context, name string, n int) (started int, linear uint64, err error) {
	v, err := r.acquire(name)
	if err != nil {
		return 0, 0, err
	}
	defer v.release()
	// Hold every slot: with no call in flight every instance is idle, so
	// the pool never holds more than max_concurrent.
	held := 0
	defer func() {
		for range held {
			v.slots <- struct{}{}
		}
	}()
	for range cap(v.slots) {
		select {
		case <-v.slots:
			held++
		default:
			return 0, 0, fmt.Errorf("%w: %s has calls in flight", ErrBusy, v.name)
		}
	}
	n = min(n, cap(v.idle))
	for len(v.idle) < n {
		in, err := v.newInstance(ctx)
		if err != nil {
			return started, linear, err
		}
		started++
		if in.nat != nil {
			linear += uint64(cap(*in.nat.inst.Memory()))
		} else {
			linear += linearAllocation(in.mod.Memory())
		}
		v.idle <- in
	}
	return started, linear, nil
}

// linearAllocation is what wazero allocated for a linear memory: the
// capacity of its buffer, which growth by append leaves above its size
// (read through reflection: wazero does not export it).
func linearAllocation(m api.Memory) uint64 {
	v := reflect.ValueOf(m)
	if v.Kind() == reflect.Pointer {
		if f := v.Elem().FieldByName("Buffer"); f.IsValid() && f.Kind() == reflect.Slice {
			return uint64(f.Cap())
		}
	}
	return uint64(m.Size())
}
