package tis

import "time"

// Register space of the FIFO interface, TCG PC Client Platform TPM Profile
// Specification for TPM 2.0 (PTP), version 1.05, section 6.5.2 "TPM Register
// Space" (table "Allocation of Register Space for FIFO TPM Access").
// Offsets are relative to locality 0; each locality has its own 4 KiB page.
const (
	TPM_ACCESS          = 0x0000 // 8 bit, PTP 6.5.2.3
	TPM_INT_ENABLE      = 0x0008 // 32 bit, PTP 6.5.2.4 (unused: no IRQ, we poll)
	TPM_INT_STATUS      = 0x0010 // 32 bit, PTP 6.5.2.6
	TPM_INTF_CAPABILITY = 0x0014 // 32 bit, PTP 6.5.2.7
	TPM_STS             = 0x0018 // 32 bit, PTP 6.5.2.8
	TPM_DATA_FIFO       = 0x0024 // 8..32 bit, PTP 6.5.2.9
	TPM_INTERFACE_ID    = 0x0030 // 32 bit, PTP 6.5.2.10
	TPM_DID_VID         = 0x0F00 // 32 bit, PTP 6.5.2.12
	TPM_RID             = 0x0F04 // 8 bit, PTP 6.5.2.13

	// LocalityStride is the distance between two localities' register
	// pages (PTP 6.5.2, "Register Space Addresses").
	LocalityStride = 0x1000
)

// TPM_ACCESS bits (PTP 6.5.2.3, table "TPM_ACCESS_x Register").
const (
	ACCESS_tpmEstablishment = 1 << 0
	ACCESS_requestUse       = 1 << 1
	ACCESS_pendingRequest   = 1 << 2
	ACCESS_Seize            = 1 << 3
	ACCESS_beenSeized       = 1 << 4
	ACCESS_activeLocality   = 1 << 5
	ACCESS_tpmRegValidSts   = 1 << 7

	// ACCESS_readZero are the bits that always read 0: Seize is
	// write-only and bit 6 is reserved (Linux's tpm_tis_i2c checks the
	// same mask, TPM_ACCESS_READ_ZERO 0x48, to detect failed reads).
	ACCESS_readZero = ACCESS_Seize | 1<<6
)

// TPM_STS bits and fields (PTP 6.5.2.8, table "TPM_STS_x Register").
const (
	STS_responseRetry         = 1 << 1
	STS_selfTestDone          = 1 << 2
	STS_Expect                = 1 << 3
	STS_dataAvail             = 1 << 4
	STS_tpmGo                 = 1 << 5
	STS_commandReady          = 1 << 6
	STS_stsValid              = 1 << 7
	STS_burstCount_shift      = 8
	STS_burstCount_mask       = 0xffff << STS_burstCount_shift
	STS_commandCancel         = 1 << 24
	STS_resetEstablishmentBit = 1 << 25
	STS_tpmFamily_shift       = 26
	STS_tpmFamily_mask        = 3 << STS_tpmFamily_shift

	// STS_tpmFamily_TPM20 is the tpmFamily value of a TPM 2.0.
	STS_tpmFamily_TPM20 = 1
)

// Interface timeouts (PTP 6.5.1.3, table "Interface Timeouts"). TIMEOUT_A
// bounds locality changes, TIMEOUT_B commandReady and command cancel,
// TIMEOUT_C status updates after a FIFO access and TIMEOUT_D the wait for a
// non-zero burstCount.
const (
	TIMEOUT_A = 750 * time.Millisecond
	TIMEOUT_B = 2 * time.Second
	TIMEOUT_C = 200 * time.Millisecond
	TIMEOUT_D = 30 * time.Millisecond
)
