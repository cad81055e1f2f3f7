// Package snp verifies AMD SEV-SNP attestation reports.
//
// Threat model: the report bytes, the certificate chain sent with them and any
// cached certificate are untrusted input. A report is accepted only when its
// ECDSA P-384 signature verifies with a VCEK or VLEK that chains, through an
// ASK or ASVK, to an AMD root key (ARK) pinned in the Roots given to Verify;
// ARK and ASK certificates that arrive with the evidence are never trusted.
// Validity periods are judged at an injected time so recorded evidence can be
// re-verified at its own date.
//
// The package is written against the AMD SEV-SNP ABI (report versions 2 to 5)
// rather than go-sev-guest's verify path because go-sev-guest v0.15.0 cannot
// handle Turin (fmcSPL extension, 8-byte hwID, different TCB layout) and maps
// Genoa-line parts with other CPUID models to an unknown product. Here the
// product line comes from the endorsement key's issuer, which covers both.
package snp

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/kura-project/kura/internal/attest"
)

// ReportSize is the size of an SEV-SNP attestation report.
const ReportSize = 0x4A0

// SignedSize is the length of the signed prefix of a report.
const SignedSize = 0x2A0

const (
	minVersion             = 2
	maxVersion             = 5
	sigAlgoECDSAP384SHA384 = 1
)

// SigningKey says which endorsement key signed a report.
type SigningKey int

const (
	VCEK SigningKey = 0
	VLEK SigningKey = 1
	// NoKey means the report is unsigned (SIGNING_KEY = 7).
	NoKey SigningKey = 7
)

func (k SigningKey) String() string {
	switch k {
	case VCEK:
		return "VCEK"
	case VLEK:
		return "VLEK"
	case NoKey:
		return "none"
	}
	return fmt.Sprintf("reserved(%d)", int(k))
}

// Report is a parsed SEV-SNP attestation report. Byte fields alias the input.
type Report struct {
	Raw             []byte // the ReportSize bytes the report was parsed from
	Version         uint32
	GuestSVN        uint32
	Policy          uint64
	FamilyID        []byte // 16
	ImageID         []byte // 16
	VMPL            uint32
	SignatureAlgo   uint32
	CurrentTCB      uint64
	PlatformInfo    uint64
	AuthorKeyEn     bool
	MaskChipKey     bool
	SigningKey      SigningKey
	ReportData      []byte // 64
	Measurement     []byte // 48
	HostData        []byte // 32
	IDKeyDigest     []byte // 48
	AuthorKeyDigest []byte // 48
	ReportID        []byte // 32
	ReportIDMA      []byte // 32
	ReportedTCB     uint64
	// CPUID family, model and stepping; present from report version 3 on.
	HasCPUID                                       bool
	Family, Model, Stepping                        uint8
	ChipID                                         []byte // 64
	CommittedTCB                                   uint64
	CurrentBuild, CurrentMinor, CurrentMajor       uint8
	CommittedBuild, CommittedMinor, CommittedMajor uint8
	LaunchTCB                                      uint64
	LaunchMitVector                                uint64 // version 5
	CurrentMitVector                               uint64 // version 5
	SignatureR, SignatureS                         []byte // 72 bytes each, little-endian
}

// Guest policy bits (SEV-SNP ABI, GUEST_POLICY).
const (
	PolicySMT        = 1 << 16
	policyReserved1  = 1 << 17
	PolicyMigrateMA  = 1 << 18
	PolicyDebug      = 1 << 19
	PolicySingleSock = 1 << 20
)

// Debuggable reports whether the guest policy allows debugging.
func (r *Report) Debuggable() bool { return r.Policy&PolicyDebug != 0 }

// ParseReport parses a raw report strictly: exactly ReportSize bytes, a known
// version and signature algorithm, and reserved fields that must be zero are
// zero. A failure is an *attest.EvidenceError naming the offset at fault.
func ParseReport(raw []byte) (*Report, error) {
	const field = "SnpReport"
	if len(raw) != ReportSize {
		return nil, attest.Bad(field, "report is %d bytes, want %d", len(raw), ReportSize)
	}
	le := binary.LittleEndian
	r := &Report{Raw: raw}
	r.Version = le.Uint32(raw[0x00:])
	if r.Version < minVersion || r.Version > maxVersion {
		return nil, attest.Bad(field, "report version %d is not supported (want %d to %d)", r.Version, minVersion, maxVersion)
	}
	r.GuestSVN = le.Uint32(raw[0x04:])
	r.Policy = le.Uint64(raw[0x08:])
	if r.Policy&policyReserved1 == 0 {
		return nil, attest.Bad(field, "guest policy 0x%x: reserved bit 17 must be one", r.Policy)
	}
	r.FamilyID = raw[0x10:0x20]
	r.ImageID = raw[0x20:0x30]
	r.VMPL = le.Uint32(raw[0x30:])
	if r.VMPL > 3 {
		return nil, attest.Bad(field, "VMPL %d at offset 0x30 is out of range 0..3", r.VMPL)
	}
	r.SignatureAlgo = le.Uint32(raw[0x34:])
	if r.SignatureAlgo != sigAlgoECDSAP384SHA384 {
		return nil, attest.Bad(field, "signature algorithm %d at offset 0x34 is not ECDSA P-384 with SHA-384 (1)", r.SignatureAlgo)
	}
	r.CurrentTCB = le.Uint64(raw[0x38:])
	r.PlatformInfo = le.Uint64(raw[0x40:])
	signer := le.Uint32(raw[0x48:])
	r.AuthorKeyEn = signer&1 != 0
	r.MaskChipKey = signer&2 != 0
	r.SigningKey = SigningKey((signer >> 2) & 7)
	if signer>>5 != 0 {
		return nil, attest.Bad(field, "signer info 0x%x at offset 0x48 has reserved bits set", signer)
	}
	switch r.SigningKey {
	case VCEK, VLEK:
	case NoKey:
		return nil, attest.Bad(field, "report is unsigned (signing key 7 at offset 0x48)")
	default:
		return nil, attest.Bad(field, "signing key %d at offset 0x48 is reserved", int(r.SigningKey))
	}
	if err := mbz(raw, 0x4C, 0x50); err != nil {
		return nil, err
	}
	r.ReportData = raw[0x50:0x90]
	r.Measurement = raw[0x90:0xC0]
	r.HostData = raw[0xC0:0xE0]
	r.IDKeyDigest = raw[0xE0:0x110]
	r.AuthorKeyDigest = raw[0x110:0x140]
	r.ReportID = raw[0x140:0x160]
	r.ReportIDMA = raw[0x160:0x180]
	r.ReportedTCB = le.Uint64(raw[0x180:])
	mbzFrom := 0x188
	if r.Version >= 3 {
		r.HasCPUID = true
		r.Family, r.Model, r.Stepping = raw[0x188], raw[0x189], raw[0x18A]
		mbzFrom = 0x18B
	}
	if err := mbz(raw, mbzFrom, 0x1A0); err != nil {
		return nil, err
	}
	r.ChipID = raw[0x1A0:0x1E0]
	r.CommittedTCB = le.Uint64(raw[0x1E0:])
	r.CurrentBuild, r.CurrentMinor, r.CurrentMajor = raw[0x1E8], raw[0x1E9], raw[0x1EA]
	r.CommittedBuild, r.CommittedMinor, r.CommittedMajor = raw[0x1EC], raw[0x1ED], raw[0x1EE]
	if err := mbz(raw, 0x1EB, 0x1EC); err != nil {
		return nil, err
	}
	if err := mbz(raw, 0x1EF, 0x1F0); err != nil {
		return nil, err
	}
	r.LaunchTCB = le.Uint64(raw[0x1F0:])
	mbzFrom = 0x1F8
	if r.Version >= 5 {
		r.LaunchMitVector = le.Uint64(raw[0x1F8:])
		r.CurrentMitVector = le.Uint64(raw[0x200:])
		mbzFrom = 0x208
	}
	if err := mbz(raw, mbzFrom, SignedSize); err != nil {
		return nil, err
	}
	r.SignatureR = raw[0x2A0:0x2E8]
	r.SignatureS = raw[0x2E8:0x330]
	if err := mbz(raw, 0x330, ReportSize); err != nil {
		return nil, err
	}
	return r, nil
}

func mbz(raw []byte, lo, hi int) error {
	for i := lo; i < hi; i++ {
		if raw[i] != 0 {
			return attest.Bad("SnpReport", "reserved bytes 0x%x..0x%x must be zero, byte 0x%x is 0x%02x", lo, hi-1, i, raw[i])
		}
	}
	return nil
}

// TCB is a decoded TCB_VERSION. Milan and Genoa use one byte layout, Turin
// another; Layout records which one produced it.
type TCB struct {
	Raw                      uint64
	FMC, BL, TEE, SNP, UCODE uint8
	Turin                    bool
}

// DecodeTCB decodes raw with the layout of productLine.
func DecodeTCB(raw uint64, productLine string) TCB {
	b := func(i int) uint8 { return uint8(raw >> (8 * i)) }
	if productLine == "Turin" {
		return TCB{Raw: raw, FMC: b(0), BL: b(1), TEE: b(2), SNP: b(3), UCODE: b(7), Turin: true}
	}
	return TCB{Raw: raw, BL: b(0), TEE: b(1), SNP: b(6), UCODE: b(7)}
}

// String formats the TCB as 0x%016x.
func (t TCB) String() string { return fmt.Sprintf("0x%016x", t.Raw) }

// hexs is a short alias used by the claim builders.
func hexs(b []byte) string { return hex.EncodeToString(b) }
