package tdx

import (
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/evidence"
)

// loadCollateral reads the collateral files of a check: a dcap-qvl JSON
// bundle, or PCS answers (TCB info, QE identity) with the PCK CRL and the
// root CRL, their issuer chains from intel-roots (PCS sends those in
// headers) and the PCK CRL's issuer from the quote's chain.
func loadCollateral(t *testing.T, c evidence.Check, q *Quote) *intel.Collateral {
	t.Helper()
	if len(c.Files) == 2 {
		col, err := intel.ParseQVLBundle(evidence.Read(t, c.Files[1]))
		if err != nil {
			t.Fatal(err)
		}
		return col
	}
	col := &intel.Collateral{}
	var err error
	if col.TCBInfo, col.TCBInfoSig, err = intel.ParsePCSSigned(evidence.Read(t, c.Files[1]), "tcbInfo"); err != nil {
		t.Fatal(err)
	}
	if col.QEIdentity, col.QEIdentitySig, err = intel.ParsePCSSigned(evidence.Read(t, c.Files[2]), "enclaveIdentity"); err != nil {
		t.Fatal(err)
	}
	col.PCKCRL, col.RootCRL = evidence.Read(t, c.Files[3]), evidence.Read(t, c.Files[4])
	var signing []*x509.Certificate
	for _, u := range c.Uses {
		if strings.Contains(u, "TCB_Signing") {
			if signing, err = intel.ParseChain(evidence.Read(t, u)); err != nil {
				t.Fatal(err)
			}
		}
	}
	col.TCBInfoChain, col.QEIdentityChain = signing, signing
	col.PCKCRLChain = q.Signature.PCKChain[1:]
	return col
}

// TestCollateral: every TDX quote with collateral in the evidence set is
// appraised as expected.json says at its time: the collateral verifies
// (signatures, issuer chains, CRLs, validity), and the TCB level, its
// date, the QE's and the TDX module's statuses are the listed ones — or
// no TCB level matches.
func TestCollateral(t *testing.T) {
	n := 0
	for _, c := range evidence.Checks(t, "tdx") {
		if len(c.Files) < 2 || strings.Contains(c.ID, "ccel") {
			continue
		}
		n++
		t.Run(c.ID, func(t *testing.T) {
			q, err := Parse(decodeQuote(t, evidence.Read(t, c.Files[0])))
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(q, Options{Roots: intel.Roots(), Now: c.VerifyAt})
			if err != nil {
				t.Fatal(err)
			}
			col, err := loadCollateral(t, c, q).Verify(intel.Roots(), c.VerifyAt)
			if err != nil {
				t.Fatalf("collateral: %v", err)
			}
			if err := col.CheckRevoked(v.Chain); err != nil {
				t.Fatalf("revocation: %v", err)
			}
			tcb, err := col.EvaluateTDX(TDXInputOf(v))
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			if (tcb.Status != "") != (c.Expect == "ok") {
				t.Fatalf("status %q, expected %s (%s)", tcb.Status, c.Expect, c.Reason)
			}
			want := c.Claims
			if s, _ := want["tcb_status"].(string); s != tcb.Status {
				t.Errorf("tcb_status %q, want %q", tcb.Status, s)
			}
			if s, ok := want["qe_tcb_status"].(string); ok && s != tcb.QEStatus {
				t.Errorf("qe_tcb_status %q, want %q", tcb.QEStatus, s)
			}
			if n, ok := want["tcb_evaluation_data_number"].(float64); ok && int(n) != tcb.TCBEvaluationDataNumber {
				t.Errorf("tcb_evaluation_data_number %d, want %v", tcb.TCBEvaluationDataNumber, n)
			}
			if s, ok := want["tcb_date"].(string); ok && tcb.Date.UTC().Format(time.RFC3339) != s {
				t.Errorf("tcb_date %s, want %s", tcb.Date.UTC().Format(time.RFC3339), s)
			}
			if ids, ok := want["advisory_ids"].([]any); ok && fmt.Sprint(ids) != fmt.Sprint(tcb.AdvisoryIDs) {
				t.Errorf("advisory_ids %v, want %v", tcb.AdvisoryIDs, ids)
			}
			if s, ok := want["tdx_module_identity"].(string); ok && (s != tcb.Module || want["tdx_module_tcb_status"] != tcb.ModuleStatus) {
				t.Errorf("module %s %s, want %s %v", tcb.Module, tcb.ModuleStatus, s, want["tdx_module_tcb_status"])
			}
		})
	}
	if n < 6 {
		t.Errorf("%d quotes with collateral, the evidence set holds 6", n)
	}
}

// TestCollateralFailsClosed: collateral outside its window, a changed
// TCB info or QE identity, a signature by another key, a CRL of another
// CA are refused, naming what.
func TestCollateralFailsClosed(t *testing.T) {
	var c evidence.Check
	for _, x := range evidence.Checks(t, "tdx") {
		if x.ID == "tdx-dcap-qvl-emr-collateral" {
			c = x
		}
	}
	q, err := Parse(decodeQuote(t, evidence.Read(t, c.Files[0])))
	if err != nil {
		t.Fatal(err)
	}
	good := func() *intel.Collateral { return loadCollateral(t, c, q) }
	for _, tc := range []struct {
		name string
		edit func(*intel.Collateral)
		at   time.Time
		want string
	}{
		{"expired", nil, c.VerifyAt.AddDate(0, 2, 0), "expired"},
		{"not yet valid", nil, c.VerifyAt.AddDate(0, -1, 0), "not yet valid"},
		{"TCB info changed", func(col *intel.Collateral) {
			col.TCBInfo = []byte(strings.Replace(string(col.TCBInfo), `"UpToDate"`, `"uptodate"`, 1))
		}, c.VerifyAt, "TCB info: the signature does not verify"},
		{"QE identity changed", func(col *intel.Collateral) {
			col.QEIdentity = []byte(strings.Replace(string(col.QEIdentity), `"isvprodid":2`, `"isvprodid":3`, 1))
		}, c.VerifyAt, "QE identity: the signature does not verify"},
		{"TCB info signature", func(col *intel.Collateral) { col.TCBInfoSig[5] ^= 1 }, c.VerifyAt, "TCB info: the signature"},
		{"PCK CRL", func(col *intel.Collateral) { col.PCKCRL[len(col.PCKCRL)-3] ^= 1 }, c.VerifyAt, "PCK CRL"},
		{"root CRL", func(col *intel.Collateral) { col.RootCRL[len(col.RootCRL)-3] ^= 1 }, c.VerifyAt, "Root CA CRL"},
		{"no issuer chain", func(col *intel.Collateral) { col.QEIdentityChain = nil }, c.VerifyAt, "QE identity: missing"},
	} {
		col := good()
		if tc.edit != nil {
			tc.edit(col)
		}
		if _, err := col.Verify(intel.Roots(), tc.at); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
