//go:build tamago && arm

package virt

import (
	"time"

	"github.com/usbarmory/tamago/arm"
)

// TimerIRQ is the secure physical timer's interrupt (PPI 13, INTID 29): the
// timer tamago's arm.CPU.SetAlarm programs when running in the secure world.
const TimerIRQ = arm.TIMER_IRQ

// CheckInterrupts arms the generic timer to fire after d and waits for its
// interrupt to travel through the GIC and the IRQ vector to a goroutine. It
// returns how long after d the handler ran, or false after timeout: proof
// that drivers can take interrupts on this board.
func CheckInterrupts(d, timeout time.Duration) (late time.Duration, ok bool) {
	fired := make(chan int64, 1)
	go arm.ServiceInterrupts(func() {
		for {
			id := IRQs.GetInterrupt()
			if id < 0 {
				return
			}
			if id == TimerIRQ {
				ARM.SetAlarm(0)
				select {
				case fired <- ARM.GetTime():
				default:
				}
			}
		}
	})
	IRQs.EnableInterrupt(TimerIRQ)
	defer IRQs.DisableInterrupt(TimerIRQ)

	due := ARM.GetTime() + int64(d)
	ARM.SetAlarm(due)
	select {
	case at := <-fired:
		return time.Duration(at - due), true
	case <-time.After(timeout):
		ARM.SetAlarm(0)
		return 0, false
	}
}
