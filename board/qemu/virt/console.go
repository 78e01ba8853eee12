//go:build tamago && arm

package virt

import (
	_ "unsafe"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
)

// PL011 registers
// (ARM PrimeCell UART (PL011) Technical Reference Manual r1p5, 3.2 Summary of
// registers, Table 3-1).
const (
	UARTDR   = 0x000
	UARTFR   = 0x018
	FR_TXFF  = 5
	FR_RXFE  = 4
	UARTLCRH = 0x02c
	LCRH_FEN = 4
	// WLEN = 0b11: 8 data bits
	LCRH_WLEN8 = 0b11 << 5
	UARTCR     = 0x030
	CR_UARTEN  = 0
	CR_TXE     = 8
	CR_RXE     = 9
	UARTIMSC   = 0x038
	UARTICR    = 0x044
)

// UART is a PL011 serial port.
type UART struct {
	Base uintptr
}

// UART0 is the console.
var UART0 = &UART{Base: UART0_BASE}

// Init enables the transmitter and receiver with 8-bit words and FIFOs, and
// masks the UART's interrupts (the console is polled).
func (hw *UART) Init() {
	mmio.Write32(hw.Base+UARTCR, 0)
	mmio.Write32(hw.Base+UARTIMSC, 0)
	mmio.Write32(hw.Base+UARTICR, 0x7ff)
	mmio.Write32(hw.Base+UARTLCRH, LCRH_WLEN8|1<<LCRH_FEN)
	mmio.Write32(hw.Base+UARTCR, 1<<CR_UARTEN|1<<CR_TXE|1<<CR_RXE)
}

// Tx transmits one byte, waiting while the transmit FIFO is full.
func (hw *UART) Tx(c byte) {
	for mmio.Read32(hw.Base+UARTFR)&(1<<FR_TXFF) != 0 {
	}
	mmio.Write32(hw.Base+UARTDR, uint32(c))
}

// Rx returns one received byte, if any.
func (hw *UART) Rx() (c byte, ok bool) {
	if mmio.Read32(hw.Base+UARTFR)&(1<<FR_RXFE) != 0 {
		return 0, false
	}
	return byte(mmio.Read32(hw.Base + UARTDR)), true
}

// Write transmits buf.
func (hw *UART) Write(buf []byte) (int, error) { return board.WriteBytes(hw.Tx, buf) }

// Read returns the bytes already received, at least one: it polls the
// receive FIFO until input arrives (board.PollRead).
func (hw *UART) Read(buf []byte) (int, error) { return board.PollRead(hw.Rx, buf) }

// printk is the runtime's console output. It runs before the runtime is up,
// so it only touches registers. A newline is sent as CR LF for terminals.
//
//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	if c == '\n' {
		UART0.Tx('\r')
	}
	UART0.Tx(c)
}
