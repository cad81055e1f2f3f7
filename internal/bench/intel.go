package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sgx"
	"github.com/kura-project/kura/internal/attest/tdx"
)

// IntelRig is a running in-process kura (dev mode, simulated Intel TEE
// trusted, its collateral served) with simulated TDX or SGX evidence.
type IntelRig struct {
	*AttestRig
	TEE string // "tdx" or "sgx"

	authority *intelsim.Authority

	signed  []byte // the quote's signed part
	sig     *intel.SignatureData
	pckKey  *ecdsa.PublicKey
	attKey  *ecdsa.PublicKey
	quoteSz int
}

// StartIntel starts kura on 127.0.0.1 with tokens signed with alg and a
// TdxVm (tee "tdx", quote v4) or SgxEnclave (tee "sgx") request body.
func StartIntel(ctx context.Context, dir, alg, tee string) (*IntelRig, error) {
	rig, err := StartAttest(ctx, dir, alg)
	if err != nil {
		return nil, err
	}
	r := &IntelRig{AttestRig: rig, TEE: tee}
	fail := func(err error) (*IntelRig, error) { rig.Close(); return nil, err }
	a, err := intelsim.Load(filepath.Join(dir, "sim"))
	if err != nil {
		return fail(err)
	}
	r.authority = a
	runtime := []byte(`{"keys":[{"kid":"bench","kty":"RSA","e":"AQAB","n":"` + strings.Repeat("A", 342) + `"}]}`)
	var rd [64]byte
	sum := sha256.Sum256(runtime)
	copy(rd[:], sum[:])
	var quote []byte
	var path string
	switch tee {
	case "tdx":
		path = "/attest/TdxVm?api-version=2025-06-01"
		if quote, err = a.TDXQuote(intelsim.TDXOptions{ReportData: rd}); err != nil {
			return fail(err)
		}
		q, err := tdx.Parse(quote)
		if err != nil {
			return fail(err)
		}
		r.signed, r.sig = q.Signed, q.Signature
	case "sgx":
		path = "/attest/SgxEnclave?api-version=2025-06-01"
		if quote, err = a.SGXQuote(intelsim.SGXOptions{ReportData: rd}); err != nil {
			return fail(err)
		}
		q, err := sgx.Parse(quote)
		if err != nil {
			return fail(err)
		}
		r.signed, r.sig = q.Signed, q.Signature
	default:
		return fail(fmt.Errorf("bench: TEE %q, want tdx or sgx", tee))
	}
	r.quoteSz = len(quote)
	var ok bool
	if r.pckKey, ok = r.sig.PCKChain[0].PublicKey.(*ecdsa.PublicKey); !ok {
		return fail(errors.New("bench: the PCK key is not ECDSA"))
	}
	if r.attKey, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, r.sig.AttestationKey[:]...)); err != nil {
		return fail(err)
	}
	if rig.Body, err = intelsim.Body(quote, runtime, "JSON", ""); err != nil {
		return fail(err)
	}
	rig.lean.Close()
	rig.lean = NewLeanClient(rig.URL, rig.tlsConfig, path, rig.Body, "")
	return r, nil
}

// QuoteSize is the size of the quote sent.
func (r *IntelRig) QuoteSize() int { return r.quoteSz }

// FloorOp is one unit of the Intel attestation floor: the two ECDSA P-256
// verifications no cache can spare (the quote's signature by the
// attestation key, the QE report's by the PCK key; crypto/ecdsa) plus one
// token signature. The PCK chain and the collateral are the platform's,
// verified once and cached, as the VCEK chain is for SEV-SNP.
func (r *IntelRig) FloorOp() (func() error, error) {
	sign, err := Signer(r.Alg)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, 2400)
	verify := func(pub *ecdsa.PublicKey, msg, sig []byte) error {
		d := sha256.Sum256(msg)
		if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])) {
			return errors.New("bench: a signature does not verify")
		}
		return nil
	}
	return func() error {
		if err := verify(r.attKey, r.signed, r.sig.Signature[:]); err != nil {
			return err
		}
		if err := verify(r.pckKey, r.sig.QEReport[:], r.sig.QEReportSig[:]); err != nil {
			return err
		}
		return sign(payload)
	}, nil
}

// UncachedOp is FloorOp plus what kura would do per attestation without
// its caches: the PCK chain's verification to the root and the
// collateral's (TCB info and QE identity signatures, both CRLs, the TCB
// Signing chain), so the caches' worth is visible next to the figure.
func (r *IntelRig) UncachedOp() (func() error, error) {
	floor, err := r.FloorOp()
	if err != nil {
		return nil, err
	}
	bundle, err := r.authority.Collateral(intelsim.CollateralOptions{TEE: strings.ToUpper(r.TEE)}, time.Now())
	if err != nil {
		return nil, err
	}
	roots := r.authority.Roots()
	inter := x509.NewCertPool()
	for _, c := range r.sig.PCKChain[1:] {
		inter.AddCert(c)
	}
	leaf := r.sig.PCKChain[0]
	return func() error {
		if err := floor(); err != nil {
			return err
		}
		// The PCK chain to the root (the floor has checked the quote's
		// and the QE report's signatures already).
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		c, err := intel.ParseQVLBundle(bundle)
		if err != nil {
			return err
		}
		_, err = c.Verify(roots, time.Now())
		return err
	}, nil
}
