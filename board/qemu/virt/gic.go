//go:build tamago && arm

package virt

import (
	"github.com/teastick/teastick/board/mmio"
)

// GICv2 registers (ARM IHI 0048B.b, ARM Generic Interrupt Controller
// Architecture Specification version 2.0, 4.1.2 Tables 4-1 and 4-2). tamago's
// arm/gic driver assumes the Cortex-A7 MPCore layout (CPU interface at
// distributor+0x1000); QEMU's virt machine puts the CPU interface 64 KiB
// after the distributor, so the board drives the GIC itself.
const (
	GICD_CTLR      = 0x000
	GICD_TYPER     = 0x004
	GICD_IGROUPR   = 0x080
	GICD_ISENABLER = 0x100
	GICD_ICENABLER = 0x180
	GICD_ICPENDR   = 0x280

	GICC_CTLR = 0x000
	GICC_PMR  = 0x004
	GICC_IAR  = 0x00c
	GICC_EOIR = 0x010

	// spurious interrupt ID (4.4.4)
	spurious = 1023
)

// GIC is a GICv2 with separately placed distributor and CPU interface.
type GIC struct {
	Dist uintptr
	CPU  uintptr

	lines int
}

// IRQs is the interrupt controller.
var IRQs = &GIC{Dist: GIC_DIST_BASE, CPU: GIC_CPU_BASE}

// Init disables and clears every interrupt line, leaves them in group 0
// (secure, signalled as IRQ), unmasks all priorities and enables the
// distributor and the CPU interface.
func (g *GIC) Init() {
	g.lines = int(mmio.Read32(g.Dist+GICD_TYPER)&0x1f) + 1
	for n := 0; n < g.lines; n++ {
		mmio.Write32(g.Dist+GICD_ICENABLER+uintptr(4*n), 0xffffffff)
		mmio.Write32(g.Dist+GICD_ICPENDR+uintptr(4*n), 0xffffffff)
		mmio.Write32(g.Dist+GICD_IGROUPR+uintptr(4*n), 0)
	}
	mmio.Write32(g.CPU+GICC_PMR, 0xff)
	mmio.Write32(g.CPU+GICC_CTLR, 1)
	mmio.Write32(g.Dist+GICD_CTLR, 1)
}

// Lines returns the number of interrupt IDs the distributor implements.
func (g *GIC) Lines() int { return 32 * g.lines }

// EnableInterrupt forwards interrupt id to the CPU.
func (g *GIC) EnableInterrupt(id int) {
	mmio.Write32(g.Dist+GICD_ISENABLER+uintptr(4*(id/32)), 1<<(id%32))
}

// DisableInterrupt stops forwarding interrupt id.
func (g *GIC) DisableInterrupt(id int) {
	mmio.Write32(g.Dist+GICD_ICENABLER+uintptr(4*(id/32)), 1<<(id%32))
}

// GetInterrupt acknowledges and returns the highest priority pending
// interrupt, or -1 when none is pending.
func (g *GIC) GetInterrupt() int {
	id := mmio.Read32(g.CPU+GICC_IAR) & 0x3ff
	if id >= 1020 {
		return -1
	}
	mmio.Write32(g.CPU+GICC_EOIR, id)
	return int(id)
}
