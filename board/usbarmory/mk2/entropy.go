//go:build tamago && arm

package mk2

import (
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

// The random source is tamago's imx6ul runtime hook (runtime/goos.InitRNG,
// soc/nxp/imx6ul/rng.go): on an i.MX6ULL/ULZ, the Mk II's SoC, every
// random byte comes from the RNGB true random number generator; on an
// i.MX6UL from an AES-CTR DRBG seeded by the CAAM's TRNG.
//
// Emulated (imx6ul.Native false: the silicon version reads 0, as under
// QEMU's mcimx6ul-evk, which has no RNGB) tamago seeds its DRBG from the
// clock. Such a board is refused everything a secret rests on: ProbeTPM
// answers no TPM, so stage 0 measures nothing and the stick is NOT
// MEASURED, and OpenNet answers no network, so the API never listens. A
// real stick whose silicon version read as emulated would be refused the
// same way: it could never serve on a clock seed.

// EmulatedNoEntropy is what an emulated board says its entropy is.
const EmulatedNoEntropy = "NONE: emulated i.MX6 (no RNGB): tamago's clock-seeded DRBG, not secret; this board is never measured and never serves"

// Entropy says where the random source is seeded from.
func Entropy() string {
	switch {
	case !imx6ul.Native:
		return EmulatedNoEntropy
	case imx6ul.RNGB != nil:
		return "RNGB (" + imx6ul.Model() + " true random number generator)"
	case imx6ul.CAAM != nil:
		return "CAAM TRNG (" + imx6ul.Model() + ") -> aes-ctr drbg"
	}
	return "unknown"
}

// errEmulated is why an emulated board has no TPM and no network.
const errEmulated = "emulated i.MX6 without hardware entropy (see the entropy line): never measured, never serves"
