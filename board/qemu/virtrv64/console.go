//go:build tamago && riscv64

package virtrv64

import (
	_ "unsafe"

	"github.com/teastick/teastick/board"
	"github.com/teastick/teastick/board/mmio"
)

// NS16550A registers, one byte apart (TI PC16550D Universal Asynchronous
// Receiver/Transmitter with FIFOs, datasheet SNLS378C, 8.6 Register
// Descriptions, Table 9-2).
const (
	RBR = 0 // receiver buffer (read, DLAB 0)
	THR = 0 // transmitter holding (write, DLAB 0)
	DLL = 0 // divisor latch low (DLAB 1)
	IER = 1 // interrupt enable (DLAB 0)
	DLM = 1 // divisor latch high (DLAB 1)
	FCR = 2 // FIFO control (write)
	LCR = 3 // line control
	LSR = 5 // line status

	FCR_ENABLE = 0x07 // enable and reset both FIFOs
	LCR_8N1    = 0x03 // 8 data bits, no parity, 1 stop bit
	LCR_DLAB   = 0x80
	LSR_DR     = 0 // data ready
	LSR_THRE   = 5 // transmitter holding register empty
)

// UART is an NS16550A serial port.
type UART struct {
	Base  uintptr
	Clock uint32
	Baud  uint32
}

// UART0 is the console.
var UART0 = &UART{Base: UART0_BASE, Clock: UART0_CLK, Baud: 115200}

// Init sets 8N1 at Baud with FIFOs on and the UART's interrupts off (the
// console is polled).
func (hw *UART) Init() {
	div := hw.Clock / (16 * hw.Baud)
	mmio.Write8(hw.Base+IER, 0)
	mmio.Write8(hw.Base+LCR, LCR_DLAB)
	mmio.Write8(hw.Base+DLL, uint8(div))
	mmio.Write8(hw.Base+DLM, uint8(div>>8))
	mmio.Write8(hw.Base+LCR, LCR_8N1)
	mmio.Write8(hw.Base+FCR, FCR_ENABLE)
}

// Tx transmits one byte, waiting while the transmitter is busy.
func (hw *UART) Tx(c byte) {
	for mmio.Read8(hw.Base+LSR)&(1<<LSR_THRE) == 0 {
	}
	mmio.Write8(hw.Base+THR, c)
}

// Rx returns one received byte, if any.
func (hw *UART) Rx() (c byte, ok bool) {
	if mmio.Read8(hw.Base+LSR)&(1<<LSR_DR) == 0 {
		return 0, false
	}
	return mmio.Read8(hw.Base + RBR), true
}

// Write transmits buf.
func (hw *UART) Write(buf []byte) (int, error) { return board.WriteBytes(hw.Tx, buf) }

// Read returns the bytes already received, at least one: it polls the
// receiver until input arrives (board.PollRead).
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
