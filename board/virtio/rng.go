package virtio

// RNG drives the entropy device (spec 5.4): a single virtqueue, requestq,
// to which the driver posts device-writable buffers that the device fills
// with random bytes.
//
// One request is in flight at a time, in one DMA buffer. The device is not
// trusted with the ring: an answer that breaks the ring protocol (a used
// element naming another descriptor, a used index that runs ahead) is
// counted, and the device is reset (spec 2.4), which gives the request back;
// an answer claiming more bytes than were asked for is counted and its
// bytes are not used. Fill never panics on what the device does: it retries
// within fixed bounds, then reports failure.
type RNG struct {
	Transport Transport
	queue     Queue

	qmem    []byte
	qaddr   uint64
	buf     []byte
	bufAddr uint64

	// pending: the device holds a request (a Fill that gave up waiting
	// leaves it there; the next Fill waits for it rather than post
	// another into the same buffer)
	pending bool
	// needReset: the device broke the ring protocol; it is reset before
	// the next request
	needReset bool

	// Spin bounds how many times Fill polls the used ring for one request
	// before it gives up (the random source runs before timers exist).
	Spin int

	// BadAnswers counts malformed answers; Resets the device resets they
	// caused.
	BadAnswers, Resets uint64
}

// rngQueueSize is the requestq's size: one request is in flight at a time.
const rngQueueSize = 8

// RNGQueueMemory is the queue memory RNG.Init needs for either transport.
var RNGQueueMemory = LegacyQueueBytes(rngQueueSize)

// maxEmpty bounds consecutive empty answers.
const maxEmpty = 16

// maxBad bounds the malformed answers, each followed by a reset, one Fill
// tolerates.
const maxBad = 4

// DefaultSpin is the polling bound used when RNG.Spin is zero.
const DefaultSpin = 50_000_000

// Init brings up the entropy device behind regs, with its queue in qmem
// (physical address qaddr) and its receive buffer buf (physical address
// bufAddr). qmem must be RNGQueueMemory bytes at a LegacyPageSize boundary
// for a legacy device; 16-byte aligned and QueueBytes(8) are enough for a
// version 2 one.
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
	r.qmem, r.qaddr = qmem, qaddr
	if err := r.bringUp(); err != nil {
		return err
	}
	r.buf, r.bufAddr = buf[:len(buf):len(buf)], bufAddr
	return nil
}

// bringUp (re)initialises the device and its queue: no request in flight.
func (r *RNG) bringUp() error {
	r.pending = false
	if err := r.Transport.Init(0); err != nil {
		return err
	}
	if err := r.Transport.InitQueue(&r.queue, r.qmem, r.qaddr, rngQueueSize); err != nil {
		return err
	}
	if err := r.Transport.SetupQueue(0, &r.queue); err != nil {
		return err
	}
	r.Transport.Ready()
	return nil
}

// Fill fills b with bytes from the device. It reports false when the device
// fails, stops answering or keeps answering malformed; b may then be partly
// written and must not be used.
func (r *RNG) Fill(b []byte) bool {
	spin := r.Spin
	if spin == 0 {
		spin = DefaultSpin
	}
	if r.buf == nil {
		return false
	}
	empty, bad := 0, 0
	for len(b) > 0 {
		if r.needReset {
			if bad > maxBad {
				return false
			}
			r.Resets++
			if r.bringUp() != nil {
				return false
			}
			r.needReset = false
		}
		if !r.pending {
			// With nothing in flight, anything in the used ring is
			// bogus (a request answered twice, an index run ahead).
			if _, _, ok, _ := r.queue.Used(); ok {
				r.BadAnswers++
				bad++
				r.needReset = true
				continue
			}
			n := min(len(b), len(r.buf))
			if _, err := r.queue.Post(r.bufAddr, uint32(n), true); err != nil {
				return false // cannot happen: nothing is in flight
			}
			r.pending = true
		}
		// A request left by an earlier Fill is notified again: spurious
		// notifications are the device's to ignore (spec 2.7.10).
		r.queue.Notify()
		var written uint32
		var err error
		got := false
		for i := 0; i < spin && !got; i++ {
			_, written, got, err = r.queue.Used()
		}
		if !got {
			return false // the device keeps the request
		}
		if err == nil && r.Transport.Failed() {
			err = ErrDeviceFailed
		}
		if err != nil {
			// ErrBadUsed leaves the request with the device, and
			// ErrUsedLength or a device asking for a reset make the
			// answer worthless: reset, and ask again.
			r.BadAnswers++
			bad++
			r.needReset = true
			continue
		}
		r.pending = false
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
		// written is at most the request's length, itself at most
		// len(r.buf) (Queue.Used checks it against the driver's
		// record); copy takes no more than b holds.
		b = b[copy(b, r.buf[:written]):]
	}
	return true
}
