// Package sgx verifies Intel SGX DCAP quotes (version 3, ECDSA P-256):
// Parse reads the quote, Verify checks its signatures and PCK chain
// (internal/attest/intel); no maintained Go library does this.
package sgx

import (
	"encoding/binary"
	"fmt"

	"github.com/kura-project/kura/internal/attest/intel"
)

// Layout (Intel SGX ECDSA Quote Library API, quote format v3).
const (
	HeaderSize  = 48
	BodySize    = intel.ReportSize // the enclave's REPORT body
	attKeyECDSA = 2
	maxQuote    = 1 << 17
)

// Report is an SGX report body (the enclave's).
type Report struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	Attributes [16]byte
	MREnclave  [32]byte
	MRSigner   [32]byte
	ConfigID   [64]byte
	ISVProdID  uint16
	ISVSVN     uint16
	ConfigSVN  uint16
	ISVExtProd [16]byte
	ISVFamily  [16]byte
	ReportData [64]byte
}

// Quote is a parsed SGX quote.
type Quote struct {
	Version   uint16
	QESVN     uint16
	PCESVN    uint16
	Report    Report
	Signature *intel.SignatureData
	Signed    []byte // header and report body, what the attestation key signs
}

// Parse reads an SGX quote v3 with an ECDSA P-256 attestation key; bytes
// after the signature data are ignored, as for TDX quotes.
func Parse(b []byte) (*Quote, error) { return ParseWith(b, nil) }

// ParseWith is Parse with the PCK chain's certificates parsed through
// certs (nil: none).
func ParseWith(b []byte, certs *intel.CertCache) (*Quote, error) {
	if len(b) > maxQuote {
		return nil, fmt.Errorf("sgx quote: %d bytes, more than %d", len(b), maxQuote)
	}
	if len(b) < HeaderSize+BodySize+4 {
		return nil, fmt.Errorf("sgx quote: %d bytes, shorter than a header, a report and the signature size (%d)", len(b), HeaderSize+BodySize+4)
	}
	q := &Quote{Version: binary.LittleEndian.Uint16(b), QESVN: binary.LittleEndian.Uint16(b[8:]), PCESVN: binary.LittleEndian.Uint16(b[10:])}
	if q.Version != 3 {
		return nil, fmt.Errorf("sgx quote: version %d, want 3", q.Version)
	}
	if k := binary.LittleEndian.Uint16(b[2:]); k != attKeyECDSA {
		return nil, fmt.Errorf("sgx quote: attestation key type %d, want %d (ECDSA P-256)", k, attKeyECDSA)
	}
	r := b[HeaderSize : HeaderSize+BodySize]
	rep := &q.Report
	copy(rep.CPUSVN[:], r[0:16])
	rep.MiscSelect = binary.LittleEndian.Uint32(r[16:])
	copy(rep.ISVExtProd[:], r[32:48])
	copy(rep.ISVFamily[:], r[304:320])
	copy(rep.Attributes[:], r[48:64])
	copy(rep.MREnclave[:], r[64:96])
	copy(rep.MRSigner[:], r[128:160])
	copy(rep.ConfigID[:], r[192:256])
	rep.ISVProdID = binary.LittleEndian.Uint16(r[256:])
	rep.ISVSVN = binary.LittleEndian.Uint16(r[258:])
	rep.ConfigSVN = binary.LittleEndian.Uint16(r[260:])
	copy(rep.ReportData[:], r[320:384])
	n := binary.LittleEndian.Uint32(b[HeaderSize+BodySize:])
	rest := b[HeaderSize+BodySize+4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, fmt.Errorf("sgx quote: the signature data is announced as %d bytes, %d follow", n, len(rest))
	}
	sd, err := intel.ParseSignatureDataV3With(rest[:n], certs)
	if err != nil {
		return nil, fmt.Errorf("sgx quote: %w", err)
	}
	q.Signature = sd
	q.Signed = b[: HeaderSize+BodySize : HeaderSize+BodySize]
	return q, nil
}
