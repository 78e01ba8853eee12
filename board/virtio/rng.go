package virtio

// RNG drives the entropy device (spec 5.4): a single virtqueue, requestq,
// to which the driver posts device-writable buffers that the device fills
// with random bytes.
type RNG struct {
	Transport Transport
	queue     Queue

	buf     []byte
	bufAddr uint64

	// Spin bounds how many times Fill polls the used ring for one request
	// before it gives up (the random source runs before timers exist).
	Spin int
}

// maxEmpty bounds consecutive empty answers.
const maxEmpty = 16

// DefaultSpin is the polling bound used when RNG.Spin is zero.
const DefaultSpin = 50_000_000

// Init brings up the entropy device behind regs, with its queue in qmem
// (physical address qaddr) and its receive buffer buf (physical address
// bufAddr).
func (r *RNG) Init(regs Registers, qmem []byte, qaddr uint64, buf []byte, bufAddr uint64) error {
	r.Transport.Regs = regs
	if id, _, err := Probe(regs); err != nil {
		return err
	} else if id != IDEntropy {
		return ErrNoDevice
	}
	if len(buf) == 0 {
		return ErrMemory
	}
	if err := r.Transport.Init(0); err != nil {
		return err
	}
	if err := r.queue.Init(qmem, qaddr, 8); err != nil {
		return err
	}
	if err := r.Transport.SetupQueue(0, &r.queue); err != nil {
		return err
	}
	r.buf, r.bufAddr = buf, bufAddr
	r.Transport.Ready()
	return nil
}

// Fill fills b with bytes from the device. It reports false when the device
// fails, stops answering or returns malformed used elements; b may then be
// partly written and must not be used.
func (r *RNG) Fill(b []byte) bool {
	spin := r.Spin
	if spin == 0 {
		spin = DefaultSpin
	}
	if r.buf == nil {
		return false
	}
	empty := 0
	for len(b) > 0 {
		n := len(b)
		if n > len(r.buf) {
			n = len(r.buf)
		}
		if _, err := r.queue.Post(r.bufAddr, uint32(n), true); err != nil {
			return false
		}
		r.queue.Notify()
		var written uint32
		got := false
		for i := 0; i < spin; i++ {
			_, w, ok, err := r.queue.Used()
			if err != nil {
				return false
			}
			if ok {
				written, got = w, true
				break
			}
		}
		if !got {
			return false
		}
		if r.Transport.Failed() {
			return false
		}
		if written == 0 {
			// A device that keeps answering with nothing is as good as
			// none.
			empty++
			if empty > maxEmpty {
				return false
			}
			continue
		}
		empty = 0
		copy(b, r.buf[:written])
		b = b[written:]
	}
	return true
}
