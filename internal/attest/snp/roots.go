package snp

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/google/go-sev-guest/verify/trust"
)

// Root is one pinned AMD trust anchor for a product line: the ARK and the
// intermediate it signed (ASK for VCEKs, ASVK for VLEKs).
type Root struct {
	ProductLine  string
	Kind         SigningKey // VCEK: Intermediate is an ASK; VLEK: an ASVK
	ARK          *x509.Certificate
	Intermediate *x509.Certificate
	// Simulated marks the test-only root of kura's simulated TEE. Evidence
	// that chains to it gets the claim x-kura-simulated=true.
	Simulated bool
}

// Roots is a set of pinned roots. The zero value trusts nothing.
type Roots struct{ roots []Root }

// Add pins r after checking that its ARK is self-signed and signed its
// intermediate.
func (rs *Roots) Add(r Root) error {
	if r.ARK == nil || r.Intermediate == nil {
		return fmt.Errorf("root for %s needs an ARK and an intermediate", r.ProductLine)
	}
	if err := r.ARK.CheckSignatureFrom(r.ARK); err != nil {
		return fmt.Errorf("ARK %q is not self-signed: %w", r.ARK.Subject.CommonName, err)
	}
	if err := r.Intermediate.CheckSignatureFrom(r.ARK); err != nil {
		return fmt.Errorf("intermediate %q is not signed by ARK %q: %w", r.Intermediate.Subject.CommonName, r.ARK.Subject.CommonName, err)
	}
	rs.roots = append(rs.roots, r)
	return nil
}

// AddPEM pins an AMD KDS cert_chain bundle (intermediate, then ARK).
func (rs *Roots) AddPEM(productLine string, kind SigningKey, bundle []byte, simulated bool) error {
	certs, err := ParseCertificates(bundle)
	if err != nil {
		return err
	}
	if len(certs) != 2 {
		return fmt.Errorf("%s root bundle holds %d certificates, want 2 (intermediate, ARK)", productLine, len(certs))
	}
	return rs.Add(Root{ProductLine: productLine, Kind: kind, Intermediate: certs[0], ARK: certs[1], Simulated: simulated})
}

// For returns the pinned roots for a product line and key kind.
func (rs *Roots) For(productLine string, kind SigningKey) []Root {
	var out []Root
	for _, r := range rs.roots {
		if r.ProductLine == productLine && r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// All returns every pinned root.
func (rs *Roots) All() []Root { return append([]Root(nil), rs.roots...) }

// AMDRoots returns AMD's published ARK/ASK and ARK/ASVK pairs for Milan, Genoa
// and Turin, as embedded in go-sev-guest.
func AMDRoots() (*Roots, error) {
	rs := &Roots{}
	for _, b := range []struct {
		pl   string
		kind SigningKey
		pem  []byte
	}{
		{"Milan", VCEK, trust.AskArkMilanVcekBytes},
		{"Milan", VLEK, trust.AskArkMilanVlekBytes},
		{"Genoa", VCEK, trust.AskArkGenoaVcekBytes},
		{"Genoa", VLEK, trust.AskArkGenoaVlekBytes},
		{"Turin", VCEK, trust.AskArkTurinVcekBytes},
		{"Turin", VLEK, trust.AskArkTurinVlekBytes},
	} {
		if err := rs.AddPEM(b.pl, b.kind, b.pem, false); err != nil {
			return nil, fmt.Errorf("embedded AMD roots: %w", err)
		}
	}
	return rs, nil
}

// ParseCertificates reads one or more certificates, PEM or DER.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	return parseCertificates(data, x509.ParseCertificate)
}

func parseCertificates(data []byte, parse func([]byte) (*x509.Certificate, error)) ([]*x509.Certificate, error) {
	return parseCertificatesMax(data, parse, 0)
}

// parseCertificatesMax refuses more than max PEM blocks (0: no limit) before
// parsing any, so a request cannot make the server parse (and cache) more
// certificates than an SNP chain holds.
func parseCertificatesMax(data []byte, parse func([]byte) (*x509.Certificate, error), max int) ([]*x509.Certificate, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("no certificate data")
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN")) {
		c, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("parse DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	if n := bytes.Count(data, []byte("-----BEGIN")); max > 0 && n > max {
		return nil, fmt.Errorf("%d PEM blocks; at most %d (VCEK or VLEK, ASK or ASVK, ARK)", n, max)
	}
	var out []*x509.Certificate
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		c, err := parse(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", n, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, fmt.Errorf("trailing data after the last PEM certificate")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return out, nil
}
