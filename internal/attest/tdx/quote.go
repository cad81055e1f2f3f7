// Package tdx verifies Intel TDX quotes: version 4 (TD report 1.0) and
// version 5 (TD report 1.0 or 1.5), which go-tdx-guest cannot parse. Parse
// reads the quote, Verify checks its DCAP ECDSA signatures and PCK chain
// (internal/attest/intel); TCB evaluation against Intel's collateral comes
// on top.
package tdx

import (
	"encoding/binary"
	"fmt"

	"github.com/kura-project/kura/internal/attest/intel"
)

// Layout (Intel TDX DCAP Quoting Library API, quote format v4 and v5).
const (
	HeaderSize   = 48
	Body10Size   = 584 // TD report 1.0
	Body15Size   = 648 // TD report 1.5: 1.0 + TEE_TCB_SVN2 + MRSERVICETD
	teeTypeTDX   = 0x81
	attKeyECDSA  = 2 // ECDSA-256-with-P-256
	bodyTypeTD10 = 2
	bodyTypeTD15 = 3
	maxQuote     = 1 << 17
)

// Header is a quote's header.
type Header struct {
	Version    uint16
	AttKeyType uint16
	TEEType    uint32
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
}

// Body is a TD report (1.0, or 1.5 with TEETCBSVN2 and MRServiceTD).
type Body struct {
	TEETCBSVN      [16]byte
	MRSeam         [48]byte
	MRSignerSeam   [48]byte
	SeamAttributes [8]byte
	TDAttributes   [8]byte
	XFAM           [8]byte
	MRTD           [48]byte
	MRConfigID     [48]byte
	MROwner        [48]byte
	MROwnerConfig  [48]byte
	RTMR           [4][48]byte
	ReportData     [64]byte
	// TD report 1.5 only.
	V15         bool
	TEETCBSVN2  [16]byte
	MRServiceTD [48]byte
}

// Quote is a parsed TDX quote.
type Quote struct {
	Header    Header
	Body      Body
	Signature *intel.SignatureData
	// Signed is the part the attestation key signs: the header and the
	// body (with, in v5, the body's type and size).
	Signed []byte
}

// Parse reads a TDX quote v4 or v5 (attestation key type ECDSA P-256,
// TEE type TDX); bytes after the signature data are ignored.
func Parse(b []byte) (*Quote, error) { return ParseWith(b, nil) }

// ParseWith is Parse with the PCK chain's certificates parsed through
// certs (nil: none).
func ParseWith(b []byte, certs *intel.CertCache) (*Quote, error) {
	if len(b) > maxQuote {
		return nil, fmt.Errorf("tdx quote: %d bytes, more than %d", len(b), maxQuote)
	}
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("tdx quote: %d bytes, shorter than its %d-byte header", len(b), HeaderSize)
	}
	var q Quote
	h := &q.Header
	h.Version = binary.LittleEndian.Uint16(b[0:])
	h.AttKeyType = binary.LittleEndian.Uint16(b[2:])
	h.TEEType = binary.LittleEndian.Uint32(b[4:])
	h.QESVN = binary.LittleEndian.Uint16(b[8:])
	h.PCESVN = binary.LittleEndian.Uint16(b[10:])
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
	if h.TEEType != teeTypeTDX {
		return nil, fmt.Errorf("tdx quote: TEE type %#x, not TDX (%#x)", h.TEEType, teeTypeTDX)
	}
	if h.AttKeyType != attKeyECDSA {
		return nil, fmt.Errorf("tdx quote: attestation key type %d, want %d (ECDSA P-256)", h.AttKeyType, attKeyECDSA)
	}
	rest := b[HeaderSize:]
	var bodySize int
	switch h.Version {
	case 4:
		bodySize = Body10Size
	case 5:
		if len(rest) < 6 {
			return nil, fmt.Errorf("tdx quote v5: %d bytes after the header, too short for the body descriptor", len(rest))
		}
		typ, size := binary.LittleEndian.Uint16(rest), binary.LittleEndian.Uint32(rest[2:])
		switch {
		case typ == bodyTypeTD10 && size == Body10Size:
		case typ == bodyTypeTD15 && size == Body15Size:
			q.Body.V15 = true
		default:
			return nil, fmt.Errorf("tdx quote v5: body type %d of %d bytes, want type 2 (TD report 1.0, %d bytes) or 3 (TD report 1.5, %d bytes)", typ, size, Body10Size, Body15Size)
		}
		bodySize = int(size)
		rest = rest[6:]
	default:
		return nil, fmt.Errorf("tdx quote: version %d, want 4 or 5", h.Version)
	}
	if len(rest) < bodySize+4 {
		return nil, fmt.Errorf("tdx quote: %d bytes after the header, too short for a %d-byte body and the signature size", len(rest), bodySize)
	}
	q.Body.parse(rest[:bodySize])
	signedLen := len(b) - len(rest) + bodySize
	q.Signed = b[:signedLen:signedLen]
	rest = rest[bodySize:]
	n := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, fmt.Errorf("tdx quote: the signature data is announced as %d bytes, %d follow", n, len(rest))
	}
	// Bytes after the signature data are not the quote's: quoting
	// libraries hand out their zero-padded buffer, and go-tdx-guest's
	// sample carries text there. They are signed by nothing and ignored.
	sd, err := intel.ParseSignatureDataWith(rest[:n], certs)
	if err != nil {
		return nil, fmt.Errorf("tdx quote: %w", err)
	}
	q.Signature = sd
	return &q, nil
}

func (d *Body) parse(b []byte) {
	off := 0
	take := func(dst []byte) { copy(dst, b[off:]); off += len(dst) }
	take(d.TEETCBSVN[:])
	take(d.MRSeam[:])
	take(d.MRSignerSeam[:])
	take(d.SeamAttributes[:])
	take(d.TDAttributes[:])
	take(d.XFAM[:])
	take(d.MRTD[:])
	take(d.MRConfigID[:])
	take(d.MROwner[:])
	take(d.MROwnerConfig[:])
	for i := range d.RTMR {
		take(d.RTMR[i][:])
	}
	take(d.ReportData[:])
	if d.V15 {
		take(d.TEETCBSVN2[:])
		take(d.MRServiceTD[:])
	}
}
