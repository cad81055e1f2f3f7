package sgx

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
)

// Options are what a quote is verified against.
type Options struct {
	Roots *x509.CertPool // the pinned Intel SGX Root CA (intel.Roots()); required
	Now   time.Time
	// Chains, when set, remembers PCK chains verified to Roots.
	Chains *intel.ChainCache
}

// Verified is a quote whose signatures and PCK chain verified.
type Verified struct {
	Quote *Quote
	PCK   *intel.PCK
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // as verified: PCK, PCK CA, root
	CA    string              // Intel SGX PCK Platform CA or Processor CA
}

// Verify checks q's quote signature, QE report binding and signature and
// the PCK chain to o.Roots at o.Now, saying which failed.
func Verify(q *Quote, o Options) (*Verified, error) {
	if o.Roots == nil || o.Now.IsZero() {
		return nil, errors.New("sgx: verify needs the pinned roots and a time")
	}
	chain, err := q.Signature.VerifyCached(q.Signed, o.Roots, o.Now, o.Chains)
	if err != nil {
		return nil, fmt.Errorf("sgx quote: %w", err)
	}
	leaf := chain[0]
	pck, err := intel.ParsePCK(leaf)
	if err != nil {
		return nil, fmt.Errorf("sgx quote: %w", err)
	}
	return &Verified{Quote: q, PCK: pck, Leaf: leaf, CA: leaf.Issuer.CommonName, Chain: chain}, nil
}
