package tdx

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
)

// Options are what a quote is verified against.
type Options struct {
	Roots *x509.CertPool // the pinned Intel SGX Root CA (intel.Roots()); required
	Now   time.Time      // the verification time; required
	// Chains, when set, remembers PCK chains verified to Roots.
	Chains *intel.ChainCache
}

// Verified is a quote whose signatures and PCK chain verified.
type Verified struct {
	Quote *Quote
	PCK   *intel.PCK          // the platform's TCB as its PCK certificate states it
	Leaf  *x509.Certificate   // the PCK certificate
	Chain []*x509.Certificate // as verified: PCK, PCK CA, root
	CA    string              // the PCK's issuer: Intel SGX PCK Platform CA or Processor CA
}

// Verify checks q's DCAP signatures: the quote signature by the
// attestation key over the header and body, the QE report's binding of
// that key, the QE report's signature by the PCK certificate, and the PCK
// chain to o.Roots at o.Now. It says which one failed.
func Verify(q *Quote, o Options) (*Verified, error) {
	if o.Roots == nil || o.Now.IsZero() {
		return nil, fmt.Errorf("tdx: verify needs the pinned roots and a time")
	}
	chain, err := q.Signature.VerifyCached(q.Signed, o.Roots, o.Now, o.Chains)
	if err != nil {
		return nil, fmt.Errorf("tdx quote: %w", err)
	}
	leaf := chain[0]
	pck, err := intel.ParsePCK(leaf)
	if err != nil {
		return nil, fmt.Errorf("tdx quote: %w", err)
	}
	return &Verified{Quote: q, PCK: pck, Leaf: leaf, CA: leaf.Issuer.CommonName, Chain: chain}, nil
}

// TDXInputOf is what v gives Intel's TCB evaluation.
func TDXInputOf(v *Verified) intel.TDXInput {
	b := v.Quote.Body
	in := intel.TDXInput{PCK: v.PCK, QEReport: v.Quote.Signature.QEReport, TEETCBSVN: b.TEETCBSVN,
		MRSignerSeam: b.MRSignerSeam, SeamAttributes: b.SeamAttributes}
	if b.V15 {
		svn2 := b.TEETCBSVN2
		in.TEETCBSVN2 = &svn2
	}
	return in
}
