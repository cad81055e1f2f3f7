// Package intel holds what Intel's DCAP attestation shares between TDX and
// SGX quotes: the ECDSA quote signature data (attestation key, QE report,
// QE authentication data, certification data), the PCK certificate chain
// to the pinned Intel SGX Root CA, and the SGX extensions of the PCK
// certificate (FMSPC, PCE SVN, CPU SVN). It parses and verifies; what the
// TCB levels make of it is the collateral's business.
package intel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Sizes of the ECDSA-256 quote signature data (Intel TDX DCAP Quoting
// Library API, "ECDSA 256-bit Quote Signature Data Structure").
const (
	SigSize      = 64  // r || s, big-endian
	KeySize      = 64  // x || y of the P-256 attestation key
	ReportSize   = 384 // an SGX REPORT body (the QE's report)
	maxCertData  = 1 << 16
	maxAuthData  = 1 << 10
	certTypePCK  = 5 // PCK certificate chain, PEM
	certTypeQERC = 6 // QE report certification data
)

// SignatureData is the signature part of a DCAP ECDSA-256 quote.
type SignatureData struct {
	Signature [SigSize]byte // over the quote's header and body, by AttestationKey
	// AttestationKey is the QE's P-256 key, x || y.
	AttestationKey [KeySize]byte
	QEReport       [ReportSize]byte // the QE's SGX report, which binds AttestationKey
	QEReportSig    [SigSize]byte    // over QEReport, by the PCK key
	QEAuthData     []byte
	PCKChain       []*x509.Certificate // leaf first, as in the quote
}

// ParseSignatureData reads the signature data of a DCAP quote: the
// quote signature, the attestation key and certification data of type 6
// (QE report certification data) holding certification data of type 5
// (the PCK chain in PEM). Trailing bytes are refused.
func ParseSignatureData(b []byte) (*SignatureData, error) { return ParseSignatureDataWith(b, nil) }

// ParseSignatureDataWith is ParseSignatureData with the PCK chain's
// certificates parsed through certs (nil: none).
func ParseSignatureDataWith(b []byte, certs *CertCache) (*SignatureData, error) {
	var s SignatureData
	if len(b) < SigSize+KeySize+6 {
		return nil, fmt.Errorf("signature data: %d bytes, fewer than the %d of a signature, a key and a certification data header", len(b), SigSize+KeySize+6)
	}
	copy(s.Signature[:], b)
	copy(s.AttestationKey[:], b[SigSize:])
	typ, data, rest, err := certData(b[SigSize+KeySize:])
	if err != nil {
		return nil, fmt.Errorf("signature data: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("signature data: %d bytes after the certification data", len(rest))
	}
	if typ != certTypeQERC {
		return nil, fmt.Errorf("signature data: certification data type %d, want %d (QE report certification data)", typ, certTypeQERC)
	}
	if err := s.parseQEReportCertData(data, certs); err != nil {
		return nil, err
	}
	return &s, nil
}

// ParseSignatureDataV3 reads the signature data of an SGX quote v3: the
// quote signature, the attestation key, then the QE report, its
// signature, the QE authentication data and certification data of type 5
// directly (no type-6 wrapper).
func ParseSignatureDataV3(b []byte) (*SignatureData, error) { return ParseSignatureDataV3With(b, nil) }

// ParseSignatureDataV3With is ParseSignatureDataV3 with the PCK chain's
// certificates parsed through certs (nil: none).
func ParseSignatureDataV3With(b []byte, certs *CertCache) (*SignatureData, error) {
	var s SignatureData
	if len(b) < SigSize+KeySize {
		return nil, fmt.Errorf("signature data: %d bytes, fewer than the %d of a signature and a key", len(b), SigSize+KeySize)
	}
	copy(s.Signature[:], b)
	copy(s.AttestationKey[:], b[SigSize:])
	if err := s.parseQEReportCertData(b[SigSize+KeySize:], certs); err != nil {
		return nil, err
	}
	return &s, nil
}

// parseQEReportCertData reads QE report, its signature, the QE
// authentication data and the PCK chain (certification data type 5);
// nothing may follow.
func (s *SignatureData) parseQEReportCertData(data []byte, certs *CertCache) error {
	if len(data) < ReportSize+SigSize+2 {
		return fmt.Errorf("QE report certification data: %d bytes, too short for a QE report, its signature and the authentication data size", len(data))
	}
	copy(s.QEReport[:], data)
	copy(s.QEReportSig[:], data[ReportSize:])
	data = data[ReportSize+SigSize:]
	n := int(binary.LittleEndian.Uint16(data))
	data = data[2:]
	if n > len(data) || n > maxAuthData {
		return fmt.Errorf("QE authentication data: %d bytes announced, %d present (at most %d)", n, len(data), maxAuthData)
	}
	s.QEAuthData = bytes.Clone(data[:n])
	typ, pemChain, rest, err := certData(data[n:])
	if err != nil {
		return fmt.Errorf("QE report certification data: %w", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("QE report certification data: %d bytes after the PCK chain", len(rest))
	}
	if typ != certTypePCK {
		return fmt.Errorf("QE report certification data: inner type %d, want %d (PCK certificate chain)", typ, certTypePCK)
	}
	if s.PCKChain, err = parsePEMChain(pemChain, certs); err != nil {
		return err
	}
	return nil
}

// certData reads one certification data item: type (u16), size (u32),
// data.
func certData(b []byte) (typ uint16, data, rest []byte, err error) {
	if len(b) < 6 {
		return 0, nil, nil, fmt.Errorf("certification data: %d bytes, fewer than its 6-byte header", len(b))
	}
	typ = binary.LittleEndian.Uint16(b)
	n := binary.LittleEndian.Uint32(b[2:])
	if uint64(n) > uint64(len(b)-6) || n > maxCertData {
		return 0, nil, nil, fmt.Errorf("certification data (type %d): %d bytes announced, %d present", typ, n, len(b)-6)
	}
	return typ, b[6 : 6+n], b[6+n:], nil
}

// parsePEMChain reads the PCK chain: PEM certificates, leaf first (a
// trailing NUL, which quoting libraries leave, is allowed).
func parsePEMChain(b []byte, certs *CertCache) ([]*x509.Certificate, error) {
	b = bytes.TrimRight(b, "\x00")
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PCK chain: a PEM block of type %q", blk.Type)
		}
		c, err := certs.parse(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PCK chain: certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("PCK chain: bytes that are not PEM after the certificates")
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("PCK chain: %d certificates, want the PCK and its CA at least", len(out))
	}
	return out, nil
}

// Verify checks the signature data of a quote whose signed part is
// signed: the quote signature by the attestation key, the QE report's
// binding of that key and the authentication data (REPORTDATA =
// SHA-256(key || auth data) || 32 zero bytes), the QE report's signature by
// the PCK, and the PCK chain to roots at now. It returns the chain as
// verified: PCK, PCK CA, root (never the quote's own listing, which no
// signature covers).
func (s *SignatureData) Verify(signed []byte, roots *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	return s.VerifyCached(signed, roots, now, nil)
}

// VerifyCached is Verify with the PCK chain's verification remembered in
// chains (nil: none), which must belong to roots.
func (s *SignatureData) VerifyCached(signed []byte, roots *x509.CertPool, now time.Time, chains *ChainCache) ([]*x509.Certificate, error) {
	ak, err := p256Key(s.AttestationKey[:])
	if err != nil {
		return nil, fmt.Errorf("attestation key: %w", err)
	}
	if !verifyRS(ak, signed, s.Signature[:]) {
		return nil, errors.New("the quote signature does not verify with the attestation key")
	}
	h := sha256.New()
	h.Write(s.AttestationKey[:])
	h.Write(s.QEAuthData)
	var want [64]byte
	copy(want[:], h.Sum(nil))
	if got := s.QEReport[320:384]; !bytes.Equal(got, want[:]) {
		return nil, errors.New("the QE report does not bind the attestation key: its REPORTDATA is not SHA-256(attestation key || QE authentication data) followed by zeros")
	}
	leaf := s.PCKChain[0]
	pk, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pk.Curve != elliptic.P256() {
		return nil, errors.New("the PCK certificate's key is not ECDSA P-256")
	}
	if !verifyRS(pk, s.QEReport[:], s.QEReportSig[:]) {
		return nil, errors.New("the QE report signature does not verify with the PCK certificate's key")
	}
	key := chainKey(s.PCKChain)
	if c, ok := chains.get(key, now); ok {
		return c, nil
	}
	inter := x509.NewCertPool()
	for _, c := range s.PCKChain[1:] {
		inter.AddCert(c)
	}
	verified, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("the PCK certificate %q does not chain to the Intel SGX Root CA at %s: %w", leaf.Subject.CommonName, now.UTC().Format(time.RFC3339), err)
	}
	for _, c := range verified {
		if len(c) == 3 { // PCK, PCK CA, root: as Intel issues them
			chains.put(key, c)
			return c, nil
		}
	}
	return nil, fmt.Errorf("the PCK certificate %q does not chain through one PCK CA to the root", leaf.Subject.CommonName)
}

// QEISVSVN is the QE's ISV SVN, from its report.
func (s *SignatureData) QEISVSVN() uint16 { return binary.LittleEndian.Uint16(s.QEReport[258:]) }

// p256Key reads x || y.
func p256Key(b []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, b...))
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// verifyRS checks an ECDSA P-256 signature r || s over SHA-256(msg).
func verifyRS(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	d := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])
	return ecdsa.Verify(pub, d[:], r, s)
}
