package intelsim_test

import (
	"context"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sgx"
	"github.com/kura-project/kura/internal/attest/sgxenclave"
	"github.com/kura-project/kura/internal/attest/tdx"
	"github.com/kura-project/kura/internal/attest/tdxvm"
	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/store"
)

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func newAuthority(t *testing.T) *intelsim.Authority {
	t.Helper()
	a, err := intelsim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// level returns the i-th element of a document's list member.
func level(d intelsim.Doc, member string, i int) map[string]any {
	return d[member].([]any)[i].(map[string]any)
}

func module(d intelsim.Doc) map[string]any { return level(d, "tdxModuleIdentities", 0) }

// stored is a collateral store holding bundle b as the simulated
// platform's row.
func stored(t *testing.T, tee string, b []byte) *attesttest.Collateral {
	st := &attesttest.Collateral{}
	if err := st.PutCollateral(context.Background(), store.Collateral{Kind: intel.Kind, Key: tee + "/" + intelsim.FMSPC, DER: b}); err != nil {
		t.Fatal(err)
	}
	return st
}

// appraiseTDX verifies a simulated quote and appraises it against the
// collateral o shapes, as the TdxVm module does.
func appraiseTDX(t *testing.T, a *intelsim.Authority, o intelsim.CollateralOptions, at time.Time, v5 bool) (intel.TCB, error) {
	t.Helper()
	raw, err := a.TDXQuote(intelsim.TDXOptions{V5: v5})
	if err != nil {
		t.Fatal(err)
	}
	q, err := tdx.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	vq, err := tdx.Verify(q, tdx.Options{Roots: a.Roots(), Now: at})
	if err != nil {
		t.Fatal(err)
	}
	o.TEE = "TDX"
	b, err := a.Collateral(o, now)
	if err != nil {
		t.Fatal(err)
	}
	// Stored as a row of the (untrusted) store under this platform's key,
	// not through Import, so that rows Import would refuse or file under
	// another key are judged by Appraise too.
	ap := &intel.Appraiser{TEE: "TDX", Roots: a.Roots(), Store: stored(t, "tdx", b)}
	return ap.Appraise(context.Background(), vq.PCK, vq.Chain, at, func(c *intel.Verified) (intel.TCB, error) {
		return c.EvaluateTDX(tdx.TDXInputOf(vq))
	})
}

// TestTDXAppraisal: every branch of Intel's TCB evaluation on collateral
// shaped for it — each status and its convergence with the TDX module's
// and the QE's, each identity mismatch, each revocation, each window —
// gives the status, or the refusal, Intel's library gives.
func TestTDXAppraisal(t *testing.T) {
	a := newAuthority(t)
	other := newAuthority(t)
	cases := []struct {
		name   string
		edit   func(ti, qe intelsim.Doc)
		o      intelsim.CollateralOptions
		at     time.Time
		status string // converged status on success
		module string // module status on success
		qe     string
		adv    string
		err    string // refusal
	}{
		{name: "up to date", status: "UpToDate", module: "UpToDate", qe: "UpToDate"},
		{name: "SW hardening needed", edit: func(ti, _ intelsim.Doc) {
			level(ti, "tcbLevels", 0)["tcbStatus"] = "SWHardeningNeeded"
			level(ti, "tcbLevels", 0)["advisoryIDs"] = []any{"INTEL-SA-00615"}
		}, status: "SWHardeningNeeded", module: "UpToDate", qe: "UpToDate", adv: "INTEL-SA-00615"},
		{name: "platform below the first level", edit: func(ti, _ intelsim.Doc) {
			ti["tcbLevels"] = ti["tcbLevels"].([]any)[1:]
		}, status: "OutOfDate", module: "UpToDate", qe: "UpToDate", adv: "INTEL-SA-00837"},
		{name: "TDX components below the first level", edit: func(ti, _ intelsim.Doc) {
			level(ti, "tcbLevels", 0)["tcb"].(map[string]any)["tdxtcbcomponents"].([]any)[2] = map[string]any{"svn": 9}
		}, status: "OutOfDate", module: "UpToDate", qe: "UpToDate"},
		{name: "module out of date converges", edit: func(ti, _ intelsim.Doc) {
			level(module(ti), "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 9}
		}, status: "OutOfDate", module: "OutOfDate", qe: "UpToDate"},
		{name: "configuration needed and module out of date", edit: func(ti, _ intelsim.Doc) {
			level(ti, "tcbLevels", 0)["tcbStatus"] = "ConfigurationNeeded"
			level(module(ti), "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 9}
		}, status: "OutOfDateConfigurationNeeded", module: "OutOfDate", qe: "UpToDate"},
		{name: "QE out of date converges", edit: func(_, qe intelsim.Doc) {
			level(qe, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 99}
		}, status: "OutOfDate", module: "UpToDate", qe: "OutOfDate"},
		{name: "QE out of date, configuration and SW hardening needed", edit: func(ti, qe intelsim.Doc) {
			level(ti, "tcbLevels", 0)["tcbStatus"] = "ConfigurationAndSWHardeningNeeded"
			level(qe, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 99}
		}, status: "OutOfDateConfigurationNeeded", module: "UpToDate", qe: "OutOfDate"},
		{name: "TCB level revoked", edit: func(ti, _ intelsim.Doc) {
			level(ti, "tcbLevels", 0)["tcbStatus"] = "Revoked"
		}, err: "marks this platform's TCB, quoting enclave or TDX module revoked"},
		{name: "module revoked", edit: func(ti, _ intelsim.Doc) {
			level(module(ti), "tcbLevels", 0)["tcbStatus"] = "Revoked"
		}, err: "marks this platform's TCB, quoting enclave or TDX module revoked"},
		{name: "QE revoked", edit: func(_, qe intelsim.Doc) {
			level(qe, "tcbLevels", 0)["tcbStatus"] = "Revoked"
		}, err: "marks this platform's TCB, quoting enclave or TDX module revoked"},
		{name: "no TCB level matches", edit: func(ti, _ intelsim.Doc) {
			ti["tcbLevels"] = ti["tcbLevels"].([]any)[:1]
			level(ti, "tcbLevels", 0)["tcb"].(map[string]any)["pcesvn"] = 99
		}, err: "no TCB level"},
		{name: "no module level matches", edit: func(ti, _ intelsim.Doc) {
			m := module(ti)
			m["tcbLevels"] = m["tcbLevels"].([]any)[:1]
			level(m, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 9}
		}, err: "no TCB level"},
		{name: "no QE level matches", edit: func(_, qe intelsim.Doc) {
			qe["tcbLevels"] = qe["tcbLevels"].([]any)[:1]
			level(qe, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 99}
		}, err: "no TCB level"},
		{name: "FMSPC", edit: func(ti, _ intelsim.Doc) { ti["fmspc"] = "00906ED50000" }, err: "FMSPC 00906ED50000"},
		{name: "PCE-ID", edit: func(ti, _ intelsim.Doc) { ti["pceId"] = "0100" }, err: "PCE-ID 0100"},
		{name: "QE signer", edit: func(_, qe intelsim.Doc) { qe["mrsigner"] = strings.Repeat("AB", 32) }, err: "the QE's signer"},
		{name: "QE product", edit: func(_, qe intelsim.Doc) { qe["isvprodid"] = 1 }, err: "product id 2"},
		{name: "QE MISCSELECT", edit: func(_, qe intelsim.Doc) { qe["miscselect"] = "00000001" }, err: "MISCSELECT"},
		{name: "QE ATTRIBUTES", edit: func(_, qe intelsim.Doc) { qe["attributes"] = "13000000000000000000000000000000" }, err: "ATTRIBUTES"},
		{name: "SGX QE identity", edit: func(_, qe intelsim.Doc) { qe["id"] = "QE" }, err: `want "TD_QE"`},
		{name: "module signer", edit: func(ti, _ intelsim.Doc) { module(ti)["mrsigner"] = strings.Repeat("11", 48) }, err: "not identity TDX_01's"},
		{name: "module attributes", edit: func(ti, _ intelsim.Doc) { module(ti)["attributes"] = "0100000000000000" }, err: "not identity TDX_01's"},
		{name: "module identity missing", edit: func(ti, _ intelsim.Doc) { ti["tdxModuleIdentities"] = []any{} }, err: "no TDX module identity TDX_01"},
		{name: "SGX TCB info", edit: func(ti, _ intelsim.Doc) { ti["id"] = "SGX" }, err: "is not TDX's"},
		{name: "TCB info version 2", edit: func(ti, _ intelsim.Doc) { ti["version"] = 2 }, err: "version 2, want 3"},
		{name: "QE identity version 1", edit: func(_, qe intelsim.Doc) { qe["version"] = 1 }, err: "version 1, want 2"},
		{name: "PCK revoked", o: intelsim.CollateralOptions{RevokedPCK: []*big.Int{a.PCK.SerialNumber}}, err: "PCK certificate (serial 4) is revoked"},
		{name: "PCK CA revoked", o: intelsim.CollateralOptions{RevokedByRoot: []*big.Int{a.PCKCA.SerialNumber}}, err: "PCK CA \"Intel SGX PCK Platform CA\" (serial 2) is revoked"},
		{name: "TCB signer revoked", o: intelsim.CollateralOptions{RevokedByRoot: []*big.Int{a.TCBSigner.SerialNumber}}, err: "signer (serial 3) is revoked"},
		{name: "other serials revoked", o: intelsim.CollateralOptions{RevokedPCK: []*big.Int{big.NewInt(77)}, RevokedByRoot: []*big.Int{big.NewInt(78)}}, status: "UpToDate", module: "UpToDate", qe: "UpToDate"},
		{name: "TCB info tampered", o: intelsim.CollateralOptions{TamperTCBInfo: true}, err: "TCB info: the signature does not verify"},
		{name: "expired", at: now.AddDate(0, 2, 0), err: "expired"},
		{name: "not yet valid", o: intelsim.CollateralOptions{From: now.AddDate(0, 0, 1)}, err: "not yet valid"},
	}
	for _, c := range cases {
		for _, v5 := range []bool{false, true} {
			at := c.at
			if at.IsZero() {
				at = now
			}
			o := c.o
			o.Edit = c.edit
			tcb, err := appraiseTDX(t, a, o, at, v5)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("%s (v5 %v): %v, want an error with %q", c.name, v5, err, c.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (v5 %v): %v", c.name, v5, err)
				continue
			}
			if tcb.Status != c.status || tcb.ModuleStatus != c.module || tcb.QEStatus != c.qe || tcb.Module != "TDX_01" {
				t.Errorf("%s (v5 %v): %+v, want status %s, module %s, QE %s", c.name, v5, tcb, c.status, c.module, c.qe)
			}
			if c.adv != "" && (len(tcb.AdvisoryIDs) != 1 || tcb.AdvisoryIDs[0] != c.adv) {
				t.Errorf("%s: advisories %v, want %s", c.name, tcb.AdvisoryIDs, c.adv)
			}
		}
	}
	// Collateral of another (simulated) root never judges this platform,
	// even with both roots pinned.
	b, _ := other.Collateral(intelsim.CollateralOptions{TEE: "TDX"}, now)
	roots := a.Roots()
	roots.AddCert(other.Root)
	st := &attesttest.Collateral{}
	ap := &intel.Appraiser{TEE: "TDX", Roots: roots, Store: st}
	if _, err := ap.Import(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	raw, _ := a.TDXQuote(intelsim.TDXOptions{})
	q, _ := tdx.Parse(raw)
	vq, err := tdx.Verify(q, tdx.Options{Roots: roots, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ap.Appraise(context.Background(), vq.PCK, vq.Chain, now, func(c *intel.Verified) (intel.TCB, error) { return c.EvaluateTDX(tdx.TDXInputOf(vq)) })
	if err == nil || !strings.Contains(err.Error(), "another root") {
		t.Errorf("another root's collateral: %v", err)
	}
}

// TestSGXAppraisal: the SGX evaluation's statuses and its QE identity
// check on shaped collateral.
func TestSGXAppraisal(t *testing.T) {
	a := newAuthority(t)
	for _, c := range []struct {
		name, status, err string
		edit              func(ti, qe intelsim.Doc)
	}{
		{name: "up to date", status: "UpToDate"},
		{name: "configuration needed", status: "ConfigurationNeeded", edit: func(ti, _ intelsim.Doc) { level(ti, "tcbLevels", 0)["tcbStatus"] = "ConfigurationNeeded" }},
		{name: "out of date", status: "OutOfDate", edit: func(ti, _ intelsim.Doc) { ti["tcbLevels"] = ti["tcbLevels"].([]any)[1:] }},
		{name: "QE out of date", status: "OutOfDate", edit: func(_, qe intelsim.Doc) { level(qe, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 99} }},
		{name: "TD_QE identity", err: `want "QE"`, edit: func(_, qe intelsim.Doc) { qe["id"] = "TD_QE" }},
		{name: "TDX TCB info", err: "is not SGX's", edit: func(ti, _ intelsim.Doc) { ti["id"] = "TDX" }},
	} {
		raw, err := a.SGXQuote(intelsim.SGXOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q, err := sgx.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		vq, err := sgx.Verify(q, sgx.Options{Roots: a.Roots(), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		b, err := a.Collateral(intelsim.CollateralOptions{TEE: "SGX", Edit: c.edit}, now)
		if err != nil {
			t.Fatal(err)
		}
		ap := &intel.Appraiser{TEE: "SGX", Roots: a.Roots(), Store: stored(t, "sgx", b)}
		tcb, err := ap.Appraise(context.Background(), vq.PCK, vq.Chain, now, func(v *intel.Verified) (intel.TCB, error) {
			return v.EvaluateSGX(vq.PCK, q.Signature.QEReport)
		})
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case tcb.Status != c.status:
			t.Errorf("%s: %+v, want %s", c.name, tcb, c.status)
		}
	}
}

// TestDevTrust: a --dev module trusts its own data directory's simulated
// root and serves its simulated collateral, marking the claims simulated;
// a production module, or a --dev module of another directory, refuses
// the quote and says why.
func TestDevTrust(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := func() time.Time { return now }
	deps := attest.Deps{Collateral: &attesttest.Collateral{}, Now: clock, DataDir: dir, Simulator: true}
	tdxTEE, err := tdxvm.Module().New(deps)
	if err != nil {
		t.Fatal(err)
	}
	sgxTEE, err := sgxenclave.Module().New(deps)
	if err != nil {
		t.Fatal(err)
	}
	a, err := intelsim.Load(dir + "/sim")
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], "bound")
	tq, _ := a.TDXQuote(intelsim.TDXOptions{ReportData: rd, Debug: true})
	sq, _ := a.SGXQuote(intelsim.SGXOptions{ReportData: rd, ProductID: 7, SVN: 2})
	for _, c := range []struct {
		v     attest.Verifier
		quote []byte
		want  map[string]any
	}{
		{tdxTEE.Verifier, tq, map[string]any{"attester_tcb_status": "UpToDate", "x-kura-simulated": true, "tdx_td_attributes_debug": true, "dbgstat": "enabled",
			"x-kura-fmspc": "4b5552410000", "tdx_seamsvn": float64(0x103), "x-kura-tdx-module-identity": "TDX_01"}},
		{sgxTEE.Verifier, sq, map[string]any{"attester_tcb_status": "UpToDate", "x-kura-simulated": true, "x-ms-sgx-product-id": float64(7), "x-ms-sgx-svn": float64(2),
			"x-ms-sgx-is-debuggable": false}},
	} {
		v, err := c.v.Verify(ctx, c.quote, now)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range c.want {
			if g, ok := v.Claims.Get(k); !ok || g != w {
				t.Errorf("%s: %s = %v, want %v", v.AttestationType, k, g, w)
			}
		}
		if string(v.ReportData[:5]) != "bound" {
			t.Errorf("%s: report data %x", v.AttestationType, v.ReportData)
		}
	}
	// The simulated collateral is served, never stored.
	if items, _ := deps.Collateral.Collateral(ctx, intel.Kind, "tdx/"+intelsim.FMSPC); len(items) != 0 {
		t.Errorf("simulated collateral written to the store: %d items", len(items))
	}
	prod, err := tdxvm.Module().New(attest.Deps{Collateral: &attesttest.Collateral{}, Now: clock, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Verifier.Verify(ctx, tq, now); err == nil || !strings.Contains(err.Error(), "only with --dev") || !attest.IsEvidence(err) {
		t.Errorf("production server: %v", err)
	}
	otherDir := t.TempDir()
	otherDev, err := sgxenclave.Module().New(attest.Deps{Collateral: &attesttest.Collateral{}, Now: clock, DataDir: otherDir, Simulator: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherDev.Verifier.Verify(ctx, sq, now); err == nil || !strings.Contains(err.Error(), "another data directory") {
		t.Errorf("another directory's server: %v", err)
	}
	// The registry's modules all build in --dev mode over one directory.
	if _, err := tees.Registry().Build(deps); err != nil {
		t.Errorf("registry in --dev mode: %v", err)
	}
}

// TestSaveLoad: a saved authority loads with every key (its quotes and
// collateral verify under the first root), and a truncated file is
// refused.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	a, err := intelsim.LoadOrCreate(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := intelsim.LoadOrCreate(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Root.Equal(b.Root) {
		t.Fatal("a second LoadOrCreate made another root")
	}
	raw, err := b.TDXQuote(intelsim.TDXOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := tdx.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tdx.Verify(q, tdx.Options{Roots: a.Roots(), Now: now}); err != nil {
		t.Errorf("loaded authority's quote: %v", err)
	}
	bundle, err := b.Collateral(intelsim.CollateralOptions{TEE: "TDX"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if col, err := intel.ParseQVLBundle(bundle); err != nil {
		t.Fatal(err)
	} else if _, err := col.Verify(a.Roots(), now); err != nil {
		t.Errorf("loaded authority's collateral: %v", err)
	}
	f := filepath.Join(dir, intelsim.File)
	full, _ := os.ReadFile(f)
	os.WriteFile(f, full[:len(full)/2], 0o600)
	if _, err := intelsim.Load(dir); err == nil || !strings.Contains(err.Error(), "lacks a certificate or key") {
		t.Errorf("truncated file: %v", err)
	}
}

// TestCaches: a module's PCK-chain and collateral caches never outlive
// what they cache — a quote verified now is refused once its PCK has
// expired, and collateral once it has — and an import applies at once.
func TestCaches(t *testing.T) {
	ctx := context.Background()
	a := newAuthority(t)
	st := &attesttest.Collateral{}
	tee, err := tdxvm.Module().New(attest.Deps{Collateral: st, Now: func() time.Time { return now }, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	v := tee.Verifier.(*tdxvm.Verifier)
	v.Roots = a.Roots() // this authority's root, not --dev's
	v.Collateral.Roots = a.Roots()
	raw, _ := a.TDXQuote(intelsim.TDXOptions{})
	if _, err := v.Verify(ctx, raw, now); err == nil || !strings.Contains(err.Error(), "no Intel TDX collateral") {
		t.Fatalf("before the import: %v", err)
	}
	b, _ := a.Collateral(intelsim.CollateralOptions{TEE: "TDX", To: now.AddDate(20, 0, 0)}, now)
	if _, err := tee.Import(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatalf("after the import (at once, within the memory TTL): %v", err)
	}
	if _, err := v.Verify(ctx, raw, a.PCK.NotAfter.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), `the PCK certificate "Intel SGX PCK Certificate" does not chain`) {
		t.Errorf("after the PCK's expiry: %v", err)
	}
	short, _ := a.Collateral(intelsim.CollateralOptions{TEE: "TDX"}, now)
	st2 := &attesttest.Collateral{}
	tee2, _ := tdxvm.Module().New(attest.Deps{Collateral: st2, Now: func() time.Time { return now }, DataDir: t.TempDir()})
	v2 := tee2.Verifier.(*tdxvm.Verifier)
	v2.Roots, v2.Collateral.Roots = a.Roots(), a.Roots()
	if _, err := tee2.Import(ctx, short); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(ctx, raw, now); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(ctx, raw, now.AddDate(0, 2, 0)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("after the collateral's expiry: %v", err)
	}
}

// TestSplicedCollateral: with two roots pinned (a --dev server's), a
// bundle that takes its CRLs and their chain from one root and its TCB
// info or QE identity from the other's TCB Signing certificate is
// refused: every signed part must come from the root of the CRLs. And a
// bundle of another root filed under the platform's key is passed over
// for the platform's own.
func TestSplicedCollateral(t *testing.T) {
	a, b := newAuthority(t), newAuthority(t)
	roots := a.Roots()
	roots.AddCert(b.Root)
	raw, _ := a.TDXQuote(intelsim.TDXOptions{})
	q, _ := tdx.Parse(raw)
	vq, err := tdx.Verify(q, tdx.Options{Roots: roots, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(x *intelsim.Authority) map[string]string {
		raw, err := x.Collateral(intelsim.CollateralOptions{TEE: "TDX"}, now)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	appraise := func(items ...[]byte) error {
		st := &attesttest.Collateral{}
		for _, it := range items {
			st.PutCollateral(context.Background(), store.Collateral{Kind: intel.Kind, Key: "tdx/" + intelsim.FMSPC, DER: it})
		}
		ap := &intel.Appraiser{TEE: "TDX", Roots: roots, Store: st}
		_, err := ap.Appraise(context.Background(), vq.PCK, vq.Chain, now, func(c *intel.Verified) (intel.TCB, error) { return c.EvaluateTDX(tdx.TDXInputOf(vq)) })
		return err
	}
	for _, parts := range [][]string{{"tcb_info", "tcb_info_signature", "tcb_info_issuer_chain"}, {"qe_identity", "qe_identity_signature", "qe_identity_issuer_chain"}} {
		m, other := bundle(a), bundle(b)
		for _, k := range parts {
			m[k] = other[k]
		}
		spliced, _ := json.Marshal(m)
		if err := appraise(spliced); err == nil || !strings.Contains(err.Error(), "issued by another root than the CRLs'") {
			t.Errorf("%s from another root: %v", parts[0], err)
		}
	}
	own, _ := json.Marshal(bundle(a))
	foreign, _ := json.Marshal(bundle(b))
	if err := appraise(foreign, own); err != nil {
		t.Errorf("another root's bundle before the platform's own: %v", err)
	}
	if err := appraise(foreign); err == nil || !strings.Contains(err.Error(), "collateral of another root") {
		t.Errorf("only another root's bundle: %v", err)
	}
	// A bundle whose PCK CRL is another CA's does not fit this PCK: the
	// next bundle judges it; alone, it is refused, naming the CRL. A CA of
	// the PCK CA's name but another key is another CA.
	for _, issuer := range []string{"processor", "rekeyed", "root"} {
		other, err := a.Collateral(intelsim.CollateralOptions{TEE: "TDX", PCKCRLIssuer: issuer}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := appraise(other, own); err != nil {
			t.Errorf("a %s CRL's bundle before the platform's own: %v", issuer, err)
		}
		if err := appraise(other); err == nil || !strings.Contains(err.Error(), "not signed by the PCK's CA") {
			t.Errorf("only a %s CRL's bundle: %v", issuer, err)
		}
	}
}

// TestTDRelaunch: Intel's TD relaunch check on TD report 1.5 quotes: a TD
// out of date only by its TDX module, whose TEE_TCB_SVN2 shows a current
// module loaded since, is TDRelaunchAdvised (…ConfigurationNeeded when
// its level needs configuration); the claim says so. A module loaded
// since that is still out of date, an out-of-date QE, TD report 1.0, or
// a platform out of date for other reasons get no advice.
func TestTDRelaunch(t *testing.T) {
	a := newAuthority(t)
	ctx := context.Background()
	current := intelsim.TDXComponents()
	current[0] = 9 // the module now loaded: SVN 9
	moduleOutOfDate := func(ti, _ intelsim.Doc) { level(module(ti), "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 9} }
	for _, c := range []struct {
		name   string
		svn2   [16]byte
		v5     bool
		edit   func(ti, qe intelsim.Doc)
		status string
	}{
		{"module updated since launch", current, true, moduleOutOfDate, "TDRelaunchAdvised"},
		{"and configuration needed", current, true, func(ti, qe intelsim.Doc) {
			moduleOutOfDate(ti, qe)
			level(ti, "tcbLevels", 0)["tcbStatus"] = "ConfigurationNeeded"
		}, "TDRelaunchAdvisedConfigurationNeeded"},
		{"module loaded since still out of date", [16]byte{8, 1, 2}, true, moduleOutOfDate, "OutOfDate"},
		{"TDX components loaded since out of date", [16]byte{9, 1, 1}, true, moduleOutOfDate, "OutOfDate"},
		{"QE out of date", current, true, func(ti, qe intelsim.Doc) {
			moduleOutOfDate(ti, qe)
			level(qe, "tcbLevels", 0)["tcb"] = map[string]any{"isvsvn": 99}
		}, "OutOfDate"},
		{"TD report 1.0", current, false, moduleOutOfDate, "OutOfDate"},
		{"module current", current, true, nil, "UpToDate"},
	} {
		raw, err := a.TDXQuote(intelsim.TDXOptions{V5: c.v5, TEETCBSVN2: c.svn2})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := a.Collateral(intelsim.CollateralOptions{TEE: "TDX", Edit: c.edit}, now)
		v := &tdxvm.Verifier{Roots: a.Roots(), Collateral: &intel.Appraiser{TEE: "TDX", Roots: a.Roots(), Store: stored(t, "tdx", b)}}
		got, err := v.Verify(ctx, raw, now)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		st, _ := got.Claims.Get("attester_tcb_status")
		adv, has := got.Claims.Get("x-kura-tdx-relaunch-advised")
		wantAdv := strings.HasPrefix(c.status, "TDRelaunch")
		if st != c.status || has != c.v5 || (has && adv != wantAdv) {
			t.Errorf("%s: status %v, relaunch claim %v (present %v), want %s", c.name, st, adv, has, c.status)
		}
	}
}
