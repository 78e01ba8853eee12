//go:build tamago && arm

package mk2

import (
	"sync"
	"time"

	usbarmory "github.com/usbarmory/tamago/board/usbarmory/mk2"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"

	"github.com/teastick/teastick/board"
)

// The Mk II's two LEDs (white on GPIO4_21, blue on GPIO4_22, tamago's
// mk2.LED) show the stick's state:
//
//	Booting      white on, blue off
//	Serving      blue on, white off: measured, the API listens
//	Quarantine   white and blue on: the API listens but the stick is NOT
//	             MEASURED, it serves no actors
//	Failed       white blinking (2 Hz), blue off: no network to serve on,
//	             or the stick stopped on an error
//	halted       both off (the console's halt command)
//
// The blink is a goroutine while the stick runs (the one core is shared
// cooperatively, so it may pause while an actor runs) and a busy loop once
// the stick has stopped.

// The LEDs show Booting from the board's start (stage 0's too): tamago's
// mk2 package leaves both pins driven low, which lights both, the
// Quarantine pattern.
func init() { Indicate(board.Booting) }

var (
	ledMu    sync.Mutex
	blinking bool
	state    board.State
)

func leds(white, blue bool) {
	usbarmory.LED("white", white)
	usbarmory.LED("blue", blue)
}

// Indicate shows s on the LEDs.
func Indicate(s board.State) {
	ledMu.Lock()
	defer ledMu.Unlock()
	state = s
	switch s {
	case board.Booting:
		leds(true, false)
	case board.Serving:
		leds(false, true)
	case board.Quarantine:
		leds(true, true)
	case board.Failed:
		leds(true, false)
		if !blinking {
			blinking = true
			go blink()
		}
	}
}

func blink() {
	on := true
	for {
		time.Sleep(250 * time.Millisecond)
		ledMu.Lock()
		if state != board.Failed {
			blinking = false
			ledMu.Unlock()
			return
		}
		on = !on
		leds(on, false)
		ledMu.Unlock()
	}
}

// blinkForever blinks the white LED without the scheduler: the stick has
// stopped on an error.
func blinkForever() {
	on := true
	for {
		leds(on, false)
		on = !on
		until := imx6ul.ARM.GetTime() + int64(250*time.Millisecond)
		for imx6ul.ARM.GetTime() < until {
		}
	}
}
