package intel

import (
	"crypto/x509"
	_ "embed"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// rootPEM is the Intel SGX Root CA (ECDSA P-256, 2018-05-21 to
// 2049-12-31; SHA-256 fingerprint 44a0196b…ab674d3), the root of every
// PCK chain and of the collateral's issuer chains.
//
//go:embed intel_sgx_root_ca.pem
var rootPEM []byte

// Roots is a pool holding the Intel SGX Root CA.
func Roots() *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(rootPEM) {
		panic("intel: the embedded Intel SGX Root CA does not parse") // a build defect, caught by the tests
	}
	return p
}

// RootCert is the Intel SGX Root CA.
func RootCert() *x509.Certificate {
	blk, _ := pem.Decode(rootPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		panic("intel: the embedded Intel SGX Root CA does not parse") // a build defect, caught by the tests
	}
	return c
}

// The SGX extension of a PCK certificate (Intel SGX PCK Certificate and
// Certificate Revocation List Profile Specification).
var (
	oidSGX    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidTCB    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidPCESVN = 17 // TCB component 17: PCESVN; 18: CPUSVN; 1–16: the CPUSVN's components
	oidCPUSVN = 18
)

// PCK is what a PCK certificate says of the platform's TCB.
type PCK struct {
	FMSPC      [6]byte
	PCEID      [2]byte
	PCESVN     uint16
	CPUSVN     [16]byte // the TCB components 1–16, in order
	Components [16]byte // as listed in the extension (they are CPUSVN's bytes)
}

type sgxExt struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCK reads the SGX extension of a PCK certificate.
func ParsePCK(c *x509.Certificate) (*PCK, error) {
	var raw []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSGX) {
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("PCK certificate %q: no SGX extension (%s)", c.Subject.CommonName, oidSGX)
	}
	var exts []sgxExt
	if rest, err := asn1.Unmarshal(raw, &exts); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("PCK certificate: the SGX extension does not parse: %v", err)
	}
	var p PCK
	var seen int
	for _, e := range exts {
		switch {
		case e.ID.Equal(oidFMSPC):
			if err := octets(e.Value, p.FMSPC[:]); err != nil {
				return nil, fmt.Errorf("PCK certificate: FMSPC: %w", err)
			}
			seen |= 1
		case e.ID.Equal(oidPCEID):
			if err := octets(e.Value, p.PCEID[:]); err != nil {
				return nil, fmt.Errorf("PCK certificate: PCE-ID: %w", err)
			}
			seen |= 2
		case e.ID.Equal(oidTCB):
			if err := p.parseTCB(e.Value); err != nil {
				return nil, err
			}
			seen |= 4
		}
	}
	if seen != 7 {
		return nil, errors.New("PCK certificate: the SGX extension lacks the FMSPC, the PCE-ID or the TCB")
	}
	return &p, nil
}

func (p *PCK) parseTCB(v asn1.RawValue) error {
	var comps []sgxExt
	if rest, err := asn1.Unmarshal(v.FullBytes, &comps); err != nil || len(rest) != 0 {
		return fmt.Errorf("PCK certificate: the TCB does not parse: %v", err)
	}
	var seen [19]bool
	for _, c := range comps {
		if len(c.ID) != len(oidTCB)+1 || !c.ID[:len(oidTCB)].Equal(oidTCB) {
			continue
		}
		n := c.ID[len(oidTCB)]
		switch {
		case n >= 1 && n <= 16:
			var x int
			if _, err := asn1.Unmarshal(c.Value.FullBytes, &x); err != nil || x < 0 || x > 255 {
				return fmt.Errorf("PCK certificate: TCB component %d is not a byte", n)
			}
			p.Components[n-1] = byte(x)
		case n == oidPCESVN:
			var x int
			if _, err := asn1.Unmarshal(c.Value.FullBytes, &x); err != nil || x < 0 || x > 0xffff {
				return errors.New("PCK certificate: the PCESVN is not a 16-bit number")
			}
			p.PCESVN = uint16(x)
		case n == oidCPUSVN:
			if err := octets(c.Value, p.CPUSVN[:]); err != nil {
				return fmt.Errorf("PCK certificate: CPUSVN: %w", err)
			}
		default:
			continue
		}
		seen[n] = true
	}
	for n := 1; n <= 18; n++ {
		if !seen[n] {
			return fmt.Errorf("PCK certificate: the TCB lacks component %d", n)
		}
	}
	return nil
}

// octets reads an OCTET STRING of exactly len(into) bytes.
func octets(v asn1.RawValue, into []byte) error {
	var b []byte
	if _, err := asn1.Unmarshal(v.FullBytes, &b); err != nil {
		return err
	}
	if len(b) != len(into) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(into))
	}
	copy(into, b)
	return nil
}
