package snp

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/verify/trust"

	"github.com/kura-project/kura/internal/attest"
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
	return attest.ParseCertificates(data, parse, max, "VCEK or VLEK, ASK or ASVK, ARK")
}

// IntermediateKind names an ASK ("SEV-<line>", for VCEKs) or ASVK
// ("SEV-VLEK-<line>", for VLEKs) by its subject.
func IntermediateKind(cert *x509.Certificate) (productLine string, kind SigningKey, ok bool) {
	rest, found := strings.CutPrefix(cert.Subject.CommonName, "SEV-")
	if !found || rest == "" || rest == "VCEK" || rest == "VLEK" {
		return "", 0, false
	}
	kind = VCEK
	if r, found := strings.CutPrefix(rest, "VLEK-"); found {
		kind, rest = VLEK, r
	}
	if rest == "" || strings.ContainsAny(rest, " -") {
		return "", 0, false
	}
	return rest, kind, true
}

// AddIntermediate pins an ASK or ASVK under every pinned ARK of its product
// line that signed it (AMD reissues intermediates; trust still comes from
// the ARK). It fails if no pinned ARK signed it.
func (rs *Roots) AddIntermediate(cert *x509.Certificate) error {
	pl, kind, ok := IntermediateKind(cert)
	if !ok {
		return fmt.Errorf("certificate %q is not an AMD ASK or ASVK", cert.Subject.CommonName)
	}
	added := 0
	seen := map[string]bool{}
	for _, r := range rs.roots {
		if r.ProductLine != pl || seen[string(r.ARK.Raw)] {
			continue
		}
		seen[string(r.ARK.Raw)] = true
		if bytes.Equal(r.Intermediate.Raw, cert.Raw) && r.Kind == kind {
			return nil // already pinned
		}
		if cert.CheckSignatureFrom(r.ARK) == nil {
			rs.roots = append(rs.roots, Root{ProductLine: pl, Kind: kind, ARK: r.ARK, Intermediate: cert, Simulated: r.Simulated})
			added++
		}
	}
	if added == 0 {
		return fmt.Errorf("%q is not signed by any pinned ARK-%s", cert.Subject.CommonName, pl)
	}
	return nil
}

// HasARK reports whether cert is a pinned ARK.
func (rs *Roots) HasARK(cert *x509.Certificate) bool {
	for _, r := range rs.roots {
		if bytes.Equal(r.ARK.Raw, cert.Raw) {
			return true
		}
	}
	return false
}

// AddBundle pins a bundle of an intermediate (ASK or ASVK) and its ARK, as
// AMD serves them at /vcek/v1/<line>/cert_chain: the operator's way to pin
// roots kura does not embed.
func (rs *Roots) AddBundle(pemBytes []byte) error {
	certs, err := ParseCertificates(pemBytes)
	if err != nil {
		return err
	}
	if len(certs) != 2 {
		return fmt.Errorf("root bundle holds %d certificates, want 2 (ASK or ASVK, then ARK)", len(certs))
	}
	pl, kind, ok := IntermediateKind(certs[0])
	if !ok {
		return fmt.Errorf("first certificate %q is not an AMD ASK or ASVK", certs[0].Subject.CommonName)
	}
	if certs[1].Subject.CommonName != "ARK-"+pl {
		return fmt.Errorf("second certificate %q is not ARK-%s", certs[1].Subject.CommonName, pl)
	}
	return rs.Add(Root{ProductLine: pl, Kind: kind, Intermediate: certs[0], ARK: certs[1]})
}

// Clone returns an independent copy of the set.
func (rs *Roots) Clone() *Roots { return &Roots{roots: append([]Root(nil), rs.roots...)} }

// ProductLines returns the product lines with a pinned root.
func (rs *Roots) ProductLines() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rs.roots {
		if !seen[r.ProductLine] {
			seen[r.ProductLine] = true
			out = append(out, r.ProductLine)
		}
	}
	return out
}
