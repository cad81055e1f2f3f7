// Package tdxvm is the TdxVm attestation module: Intel TDX quotes v4 and
// v5 (internal/attest/tdx) verified to the pinned Intel SGX Root CA and
// appraised against Intel collateral (TCB info, QE identity, CRLs) from
// the collateral store, which operators import (`kura collateral
// import`: dcap-qvl JSON bundles). Missing, expired or unverifiable
// collateral fails closed with a reason that names it; the TCB statuses
// become claims and the policy decides.
package tdxvm

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/tdx"
)

// Type is the MAA attestation type.
const Type = "TdxVm"

// DefaultPolicy permits every quote that verified; the claims carry the
// TCB statuses for relying parties to judge.
const DefaultPolicy = attest.PermitAll

// Module returns the TdxVm registration.
func Module() attest.Module {
	return attest.Module{
		Type:            Type,
		Member:          "quote",
		ReportDataField: "tdx_report_data[0:32]",
		InitDataField:   "tdx_mrconfigid[0:32]",
		DefaultPolicy:   DefaultPolicy,
		Collateral:      []string{intel.Kind},
		Settings:        intel.PCSSettings,
		New:             build,
		Preflight: func(d attest.Deps) error {
			_, err := intel.PCSFromSettings(d.Setting)
			return err
		},
	}
}

func build(d attest.Deps) (*attest.TEE, error) {
	a, hint, err := intelsim.Trust(d, "TDX")
	if err != nil {
		return nil, err
	}
	v := &Verifier{Roots: a.Roots, Collateral: a, Hint: hint}
	return &attest.TEE{Verifier: v, Import: v.Collateral.Import}, nil
}

// Verifier verifies TdxVm evidence (the quote's bytes).
type Verifier struct {
	Roots      *x509.CertPool
	Collateral *intel.Appraiser
	// Hint, when set, explains why a quote with this PCK chain did not
	// verify (simulated evidence).
	Hint func(chain []*x509.Certificate, err error) string

	chains intel.ChainCache // PCK chains verified to Roots
	certs  intel.CertCache  // PCK chain certificates, parsed
}

// IntelCollateral implements intel.CollateralSource.
func (v *Verifier) IntelCollateral() (string, *intel.Appraiser) { return "tdx", v.Collateral }

// Verify implements attest.Verifier.
func (v *Verifier) Verify(ctx context.Context, evidence []byte, now time.Time) (*attest.Verified, error) {
	q, err := tdx.ParseWith(evidence, &v.certs)
	if err != nil {
		return nil, attest.BadWrap("quote", err, "not a TDX quote")
	}
	vq, err := tdx.Verify(q, tdx.Options{Roots: v.Roots, Now: now, Chains: &v.chains})
	if err != nil {
		if v.Hint != nil {
			if h := v.Hint(q.Signature.PCKChain, err); h != "" {
				return nil, attest.BadWrap("quote", err, "does not verify (%s)", h)
			}
		}
		return nil, attest.BadWrap("quote", err, "does not verify")
	}
	tcb, err := v.Collateral.Appraise(ctx, vq.PCK, vq.Chain, now, func(c *intel.Verified) (intel.TCB, error) {
		return c.EvaluateTDX(tdx.TDXInputOf(vq))
	})
	if err != nil {
		return nil, err
	}
	return &attest.Verified{AttestationType: "tdxvm", Claims: claims(vq, tcb),
		ReportData: q.Body.ReportData[:], InitData: q.Body.MRConfigID[:]}, nil
}

// claims are MAA's TdxVm claims, with the TCB appraisal.
func claims(v *tdx.Verified, tcb intel.TCB) attest.Claims {
	b := v.Quote.Body
	h := hex.EncodeToString
	attrs := binary.LittleEndian.Uint64(b.TDAttributes[:])
	bit := func(n uint) bool { return attrs&(1<<n) != 0 }
	advisories := make([]any, len(tcb.AdvisoryIDs))
	for i, a := range tcb.AdvisoryIDs {
		advisories[i] = a
	}
	c := attest.Claims{
		{Type: "tdx_mrseam", Value: h(b.MRSeam[:])},
		{Type: "tdx_mrsignerseam", Value: h(b.MRSignerSeam[:])},
		{Type: "tdx_mrtd", Value: h(b.MRTD[:])},
		{Type: "tdx_mrconfigid", Value: h(b.MRConfigID[:])},
		{Type: "tdx_mrowner", Value: h(b.MROwner[:])},
		{Type: "tdx_mrownerconfig", Value: h(b.MROwnerConfig[:])},
		{Type: "tdx_rtmr0", Value: h(b.RTMR[0][:])},
		{Type: "tdx_rtmr1", Value: h(b.RTMR[1][:])},
		{Type: "tdx_rtmr2", Value: h(b.RTMR[2][:])},
		{Type: "tdx_rtmr3", Value: h(b.RTMR[3][:])},
		{Type: "tdx_report_data", Value: h(b.ReportData[:])},
		{Type: "tdx_seam_attributes", Value: h(b.SeamAttributes[:])},
		{Type: "tdx_td_attributes", Value: h(b.TDAttributes[:])},
		{Type: "tdx_td_attributes_debug", Value: bit(0)},
		{Type: "tdx_td_attributes_septve_disable", Value: bit(28)},
		{Type: "tdx_td_attributes_protection_keys", Value: bit(30)},
		{Type: "tdx_td_attributes_key_locker", Value: bit(31)},
		{Type: "tdx_td_attributes_perfmon", Value: bit(63)},
		{Type: "tdx_xfam", Value: h(b.XFAM[:])},
		{Type: "tdx_tee_tcb_svn", Value: h(b.TEETCBSVN[:])},
		{Type: "tdx_seamsvn", Value: float64(binary.LittleEndian.Uint16(b.TEETCBSVN[:2]))},
		{Type: "attester_tcb_status", Value: tcb.Status},
		{Type: "x-kura-tcb-level-status", Value: tcb.LevelStatus},
		{Type: "x-kura-tcb-date", Value: tcb.Date.UTC().Format(time.RFC3339)},
		{Type: "x-kura-tcb-advisory-ids", Value: advisories},
		{Type: "x-kura-qe-tcb-status", Value: tcb.QEStatus},
		{Type: "x-kura-tcb-evaluation-data-number", Value: float64(tcb.TCBEvaluationDataNumber)},
		{Type: "x-kura-fmspc", Value: h(v.PCK.FMSPC[:])},
		{Type: "eat_profile", Value: "https://aka.ms/maa-eat-profile-tdxvm"},
		{Type: "intuse", Value: "generic"},
	}
	dbg := "disabled"
	if bit(0) {
		dbg = "enabled"
	}
	c = append(c, attest.Claim{Type: "dbgstat", Value: dbg})
	if tcb.Module != "" {
		c = append(c, attest.Claim{Type: "x-kura-tdx-module-identity", Value: tcb.Module},
			attest.Claim{Type: "x-kura-tdx-module-tcb-status", Value: tcb.ModuleStatus})
	}
	if intelsim.IsSimulated(v.Chain[len(v.Chain)-1]) {
		c = append(c, attest.Claim{Type: "x-kura-simulated", Value: true})
	}
	if b.V15 {
		relaunch := tcb.Status == intel.TDRelaunchAdvised || tcb.Status == intel.TDRelaunchAdvisedConfigurationNeeded
		c = append(c, attest.Claim{Type: "tdx_tee_tcb_svn2", Value: h(b.TEETCBSVN2[:])},
			attest.Claim{Type: "tdx_mrservicetd", Value: h(b.MRServiceTD[:])},
			attest.Claim{Type: "x-kura-tdx-relaunch-advised", Value: relaunch})
	}
	return c
}
