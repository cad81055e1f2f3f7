package snp

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// AMD's VCEK/VLEK extension arc 1.3.6.1.4.1.3704.1.
var kdsArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}

// Extensions are the AMD KDS X.509 extensions of a VCEK or VLEK.
type Extensions struct {
	StructVersion int
	ProductName   string // e.g. "Milan-B0", "Genoa", "Turin"
	// SPLs are the security patch levels the key was derived for.
	FMCSPL, BLSPL, TEESPL, SNPSPL, UCODESPL int
	HasFMC                                  bool
	SPL4, SPL5, SPL6, SPL7                  int
	HWID                                    []byte // VCEK only: 64 bytes (Milan, Genoa) or 8 bytes (Turin)
	CSPID                                   string // VLEK only
}

// ParseExtensions reads the KDS extensions of an endorsement key certificate.
// Both encodings of hwID seen in the field are accepted: the raw bytes as the
// extension value, and the bytes wrapped in an OCTET STRING.
func ParseExtensions(cert *x509.Certificate) (*Extensions, error) {
	var e Extensions
	seen := map[string]bool{}
	for _, ext := range cert.Extensions {
		id := ext.Id
		if len(id) <= len(kdsArc) || !id[:len(kdsArc)].Equal(kdsArc) {
			continue
		}
		key := id[len(kdsArc):]
		ks := key.String() // "2", "3.1", ...
		if seen[ks] {
			return nil, fmt.Errorf("duplicate KDS extension %v", id)
		}
		seen[ks] = true
		var err error
		switch {
		case len(key) == 1 && key[0] == 1:
			e.StructVersion, err = asnInt(ext.Value)
		case len(key) == 1 && key[0] == 2:
			e.ProductName, err = asnString(ext.Value)
		case len(key) == 2 && key[0] == 3:
			var v int
			if v, err = asnInt(ext.Value); err == nil {
				if v < 0 || v > 255 {
					err = fmt.Errorf("SPL %d out of range", v)
				}
				switch key[1] {
				case 1:
					e.BLSPL = v
				case 2:
					e.TEESPL = v
				case 3:
					e.SNPSPL = v
				case 4:
					e.SPL4 = v
				case 5:
					e.SPL5 = v
				case 6:
					e.SPL6 = v
				case 7:
					e.SPL7 = v
				case 8:
					e.UCODESPL = v
				case 9:
					e.FMCSPL, e.HasFMC = v, true
				}
			}
		case len(key) == 1 && key[0] == 4:
			e.HWID, err = hwID(ext.Value)
		case len(key) == 1 && key[0] == 5:
			e.CSPID, err = asnString(ext.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("KDS extension %v: %w", id, err)
		}
	}
	if !seen["2"] {
		return nil, fmt.Errorf("KDS productName extension %v.2 is missing", kdsArc)
	}
	for _, k := range []string{"3.1", "3.2", "3.3", "3.8"} {
		if !seen[k] {
			return nil, fmt.Errorf("KDS SPL extension %v.%s is missing", kdsArc, k)
		}
	}
	if e.HWID != nil && e.CSPID != "" {
		return nil, fmt.Errorf("certificate carries both hwID and csp_id")
	}
	return &e, nil
}

func asnInt(b []byte) (int, error) {
	var v int
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return 0, err
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("trailing data after INTEGER")
	}
	return v, nil
}

func asnString(b []byte) (string, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(b, &raw)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("trailing data after string")
	}
	switch raw.Tag {
	case asn1.TagIA5String, asn1.TagUTF8String, asn1.TagPrintableString:
		return string(raw.Bytes), nil
	}
	return "", fmt.Errorf("unexpected ASN.1 tag %d for a string", raw.Tag)
}

// hwID reads the hwID extension. AMD has encoded it two ways: the raw bytes
// as the extension value, and the bytes wrapped in an OCTET STRING. The
// length decides (64 bytes, or 8 for Turin), so a raw hwID that happens to
// begin like an OCTET STRING header is not mistaken for one.
func hwID(b []byte) ([]byte, error) {
	if len(b) == 64 || len(b) == 8 {
		return b, nil
	}
	var inner []byte
	if rest, err := asn1.Unmarshal(b, &inner); err == nil && len(rest) == 0 && (len(inner) == 64 || len(inner) == 8) {
		return inner, nil
	}
	return nil, fmt.Errorf("hwID is neither 64 nor 8 bytes, raw or as an OCTET STRING (%d bytes)", len(b))
}

// TCB composes the extensions' SPLs into a TCB_VERSION in productLine's layout.
func (e *Extensions) TCB(productLine string) uint64 {
	p := func(v int, i int) uint64 { return uint64(uint8(v)) << (8 * i) }
	if productLine == "Turin" {
		return p(e.FMCSPL, 0) | p(e.BLSPL, 1) | p(e.TEESPL, 2) | p(e.SNPSPL, 3) |
			p(e.SPL5, 4) | p(e.SPL6, 5) | p(e.SPL7, 6) | p(e.UCODESPL, 7)
	}
	return p(e.BLSPL, 0) | p(e.TEESPL, 1) | p(e.SPL4, 2) | p(e.SPL5, 3) |
		p(e.SPL6, 4) | p(e.SPL7, 5) | p(e.SNPSPL, 6) | p(e.UCODESPL, 7)
}

// KeyKind is VCEK or VLEK as named by an endorsement certificate.
type certIdentity struct {
	productLine string
	kind        SigningKey
}

// identify returns the product line and key kind from the certificate's issuer
// common name ("SEV-Milan", "SEV-VLEK-Genoa", ...). The issuer, not the CPUID
// model, decides the product line: AMD signs every Genoa-line part (Siena,
// Bergamo, ...) with the Genoa ASK.
func identify(cert *x509.Certificate) (certIdentity, error) {
	cn := cert.Issuer.CommonName
	rest, ok := strings.CutPrefix(cn, "SEV-")
	if !ok {
		return certIdentity{}, fmt.Errorf("issuer %q is not an AMD SEV signing key", cn)
	}
	id := certIdentity{kind: VCEK}
	if r, ok := strings.CutPrefix(rest, "VLEK-"); ok {
		id.kind, rest = VLEK, r
	}
	if rest == "" || strings.ContainsAny(rest, " -") {
		return certIdentity{}, fmt.Errorf("issuer %q names no product line", cn)
	}
	id.productLine = rest
	return id, nil
}

// ProductLineFromCPUID maps a report's CPUID family and model to a product
// line, for reports (version 3 and later) that arrive without a certificate.
// Families are exact; models are ranges, so new steppings and Zen 4c/Zen 5c
// derivatives map to the line AMD signs them under.
func ProductLineFromCPUID(family, model uint8) (string, bool) {
	switch family {
	case 0x19:
		switch {
		case model <= 0x0F: // Milan (01h)
			return "Milan", true
		case model >= 0x10 && model <= 0x1F, model >= 0xA0 && model <= 0xAF: // Genoa, Bergamo, Siena
			return "Genoa", true
		}
	case 0x1A:
		if model <= 0x1F { // Turin, Turin dense
			return "Turin", true
		}
	}
	return "", false
}

// KDSURL is the AMD Key Distribution Service URL of the VCEK for a chip and
// TCB. Turin keys are addressed by the first 8 bytes of CHIP_ID and carry an
// fmcSPL parameter; earlier lines use all 64 bytes.
func KDSURL(base, productLine string, chipID []byte, tcb uint64) string {
	t := DecodeTCB(tcb, productLine)
	q := url.Values{}
	hw := chipID
	if productLine == "Turin" {
		hw = chipID[:8]
		q.Set("fmcSPL", fmt.Sprint(t.FMC))
	}
	q.Set("blSPL", fmt.Sprint(t.BL))
	q.Set("teeSPL", fmt.Sprint(t.TEE))
	q.Set("snpSPL", fmt.Sprint(t.SNP))
	q.Set("ucodeSPL", fmt.Sprint(t.UCODE))
	// Keep AMD's documented parameter order (fmc, bl, tee, snp, ucode).
	order := []string{"fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL"}
	var parts []string
	for _, k := range order {
		if v := q.Get(k); v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return fmt.Sprintf("%s/vcek/v1/%s/%s?%s", strings.TrimRight(base, "/"), productLine, hex.EncodeToString(hw), strings.Join(parts, "&"))
}
