// Package sgxenclave is the SgxEnclave attestation module: Intel SGX DCAP
// quotes v3 (internal/attest/sgx) verified to the pinned Intel SGX Root CA
// and appraised against imported Intel SGX collateral, as TdxVm is.
package sgxenclave

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sgx"
)

// Type is the MAA attestation type.
const Type = "SgxEnclave"

// DefaultPolicy permits every quote that verified; the claims carry the
// TCB statuses for relying parties to judge.
const DefaultPolicy = attest.PermitAll

// Module returns the SgxEnclave registration.
func Module() attest.Module {
	return attest.Module{
		Type:               Type,
		Member:             "quote",
		ReportDataField:    "x-ms-sgx-report-data[0:32]",
		InitDataField:      "x-ms-sgx-config-id[0:32]",
		BinaryRuntimeClaim: "x-ms-sgx-ehd",
		DefaultPolicy:      DefaultPolicy,
		Collateral:         []string{intel.Kind},
		New:                build,
		Preflight:          func(attest.Deps) error { return nil },
	}
}

func build(d attest.Deps) (*attest.TEE, error) {
	v, err := NewVerifier(d)
	if err != nil {
		return nil, err
	}
	return &attest.TEE{Verifier: v, Import: v.Collateral.Import}, nil
}

// NewVerifier is the SGX verifier over d's collateral store; with
// d.Simulator it also trusts the simulated Intel root of d.DataDir and its
// collateral.
func NewVerifier(d attest.Deps) (*Verifier, error) {
	a, hint, err := intelsim.Trust(d, "SGX")
	if err != nil {
		return nil, err
	}
	return &Verifier{Roots: a.Roots, Collateral: a, Hint: hint}, nil
}

// Verifier verifies SgxEnclave evidence (the quote's bytes).
type Verifier struct {
	Roots      *x509.CertPool
	Collateral *intel.Appraiser
	// Unwrap, when set, takes the quote out of the evidence first (Open
	// Enclave's report header); its error is the evidence's.
	Unwrap func([]byte) ([]byte, error)
	Field  string // the request member named in errors; default "quote"
	// Hint, when set, explains why a quote with this PCK chain did not
	// verify (simulated evidence).
	Hint func(chain []*x509.Certificate, err error) string

	chains intel.ChainCache // PCK chains verified to Roots
	certs  intel.CertCache  // PCK chain certificates, parsed
}

func (v *Verifier) hint(chain []*x509.Certificate, err error) string {
	if v.Hint == nil {
		return ""
	}
	return v.Hint(chain, err)
}

// IntelCollateral implements intel.CollateralSource.
func (v *Verifier) IntelCollateral() (string, *intel.Appraiser) { return "sgx", v.Collateral }

// Verify implements attest.Verifier.
func (v *Verifier) Verify(ctx context.Context, evidence []byte, now time.Time) (*attest.Verified, error) {
	field := v.Field
	if field == "" {
		field = "quote"
	}
	if v.Unwrap != nil {
		var err error
		if evidence, err = v.Unwrap(evidence); err != nil {
			return nil, attest.BadWrap(field, err, "not an Open Enclave report")
		}
	}
	q, err := sgx.ParseWith(evidence, &v.certs)
	if err != nil {
		return nil, attest.BadWrap(field, err, "not an SGX quote")
	}
	vq, err := sgx.Verify(q, sgx.Options{Roots: v.Roots, Now: now, Chains: &v.chains})
	if err != nil {
		if h := v.hint(q.Signature.PCKChain, err); h != "" {
			return nil, attest.BadWrap(field, err, "does not verify (%s)", h)
		}
		return nil, attest.BadWrap(field, err, "does not verify")
	}
	tcb, err := v.Collateral.Appraise(ctx, vq.PCK, vq.Chain, now, func(c *intel.Verified) (intel.TCB, error) {
		return c.EvaluateSGX(vq.PCK, q.Signature.QEReport)
	})
	if err != nil {
		return nil, err
	}
	return &attest.Verified{AttestationType: "sgx", Claims: claims(evidence, vq, tcb),
		ReportData: q.Report.ReportData[:], InitData: q.Report.ConfigID[:]}, nil
}

// claims are MAA's SGX claims with the TCB appraisal.
func claims(raw []byte, v *sgx.Verified, tcb intel.TCB) attest.Claims {
	r, h := v.Quote.Report, hex.EncodeToString
	advisories := make([]any, len(tcb.AdvisoryIDs))
	for i, a := range tcb.AdvisoryIDs {
		advisories[i] = a
	}
	qh := sha256.Sum256(raw)
	c := attest.Claims{
		{Type: "x-ms-sgx-is-debuggable", Value: r.Attributes[0]&0x02 != 0}, // ATTRIBUTES.DEBUG
		{Type: "x-ms-sgx-product-id", Value: float64(r.ISVProdID)},
		{Type: "x-ms-sgx-mrsigner", Value: h(r.MRSigner[:])},
		{Type: "x-ms-sgx-mrenclave", Value: h(r.MREnclave[:])},
		{Type: "x-ms-sgx-svn", Value: float64(r.ISVSVN)},
		{Type: "x-ms-sgx-report-data", Value: h(r.ReportData[:])},
		{Type: "x-ms-sgx-config-id", Value: h(r.ConfigID[:])},
		{Type: "x-ms-sgx-config-svn", Value: float64(r.ConfigSVN)},
		{Type: "x-ms-sgx-isv-extended-product-id", Value: h(r.ISVExtProd[:])},
		{Type: "x-ms-sgx-isv-family-id", Value: h(r.ISVFamily[:])},
		{Type: "x-ms-sgx-collateral", Value: map[string]any{"quotehash": h(qh[:])}},
		{Type: "attester_tcb_status", Value: tcb.Status},
		{Type: "x-kura-tcb-level-status", Value: tcb.LevelStatus},
		{Type: "x-kura-tcb-date", Value: tcb.Date.UTC().Format(time.RFC3339)},
		{Type: "x-kura-tcb-advisory-ids", Value: advisories},
		{Type: "x-kura-qe-tcb-status", Value: tcb.QEStatus},
		{Type: "x-kura-tcb-evaluation-data-number", Value: float64(tcb.TCBEvaluationDataNumber)},
		{Type: "x-kura-fmspc", Value: h(v.PCK.FMSPC[:])},
	}
	if intelsim.IsSimulated(v.Chain[len(v.Chain)-1]) {
		c = append(c, attest.Claim{Type: "x-kura-simulated", Value: true})
	}
	return c
}
