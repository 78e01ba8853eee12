package board

import "time"

// UARTPollInterval is how often PollRead looks at a receiver while it
// waits for input.
const UARTPollInterval = 5 * time.Millisecond

// WriteBytes transmits buf one byte at a time through tx, a UART's
// blocking transmit: the Write of every board's console.
func WriteBytes(tx func(byte), buf []byte) (int, error) {
	for _, c := range buf {
		tx(c)
	}
	return len(buf), nil
}

// PollRead is the Read of a console whose UART takes no interrupts: it
// returns the bytes already received through rx (a non-blocking receive),
// at least one, looking every UARTPollInterval until input arrives.
func PollRead(rx func() (byte, bool), buf []byte) (n int, err error) {
	for n < len(buf) {
		c, ok := rx()
		if !ok {
			if n > 0 {
				break
			}
			time.Sleep(UARTPollInterval)
			continue
		}
		buf[n] = c
		n++
	}
	return n, nil
}
