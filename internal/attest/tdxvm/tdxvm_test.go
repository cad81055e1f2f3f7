package tdxvm

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/evidence"
)

func hexQuote(t *testing.T, rel string) []byte {
	s := strings.TrimPrefix(strings.TrimSpace(string(evidence.Read(t, rel))), "0x")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTdxVm: a real quote with its imported collateral verifies at a time
// inside the collateral's window to MAA's TDX claims with Intel's TCB
// status; a platform no TCB level matches, a platform without collateral
// on file, and a time past the collateral's expiry are refused with the
// reason; SGX collateral and other files are not the module's.
func TestTdxVm(t *testing.T) {
	ctx := context.Background()
	st := &attesttest.Collateral{}
	tee, err := build(attest.Deps{Collateral: st, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tee.Import(ctx, evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json")); err != nil || n != 1 {
		t.Fatalf("import: %d %v", n, err)
	}
	if _, err := tee.Import(ctx, evidence.Read(t, "sgx/dcap-qvl/sgx_quote_collateral.json")); err != attest.ErrNotMine {
		t.Errorf("SGX collateral: %v, want ErrNotMine", err)
	}
	if _, err := tee.Import(ctx, []byte("-----BEGIN CERTIFICATE-----")); err != attest.ErrNotMine {
		t.Errorf("a certificate: %v, want ErrNotMine", err)
	}
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	v, err := tee.Verifier.Verify(ctx, evidence.Read(t, "tdx/dcap-qvl/tdx_quote"), at)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"attester_tcb_status": "UpToDate", "x-kura-qe-tcb-status": "UpToDate", "x-kura-tdx-module-identity": "TDX_01",
		"x-kura-tdx-module-tcb-status": "UpToDate", "x-kura-tcb-date": "2024-03-13T00:00:00Z", "tdx_td_attributes_debug": false,
		"tdx_mrtd":  "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
		"tdx_rtmr0": "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0",
		"dbgstat":   "disabled", "x-kura-tcb-evaluation-data-number": float64(17), "tdx_seamsvn": float64(0x106),
	}
	for k, w := range want {
		if g, ok := v.Claims.Get(k); !ok || g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	if v.AttestationType != "tdxvm" || len(v.ReportData) != 64 || len(v.InitData) != 48 {
		t.Errorf("verified: %+v", v)
	}
	for _, c := range []struct {
		name  string
		quote []byte
		at    time.Time
		want  string
	}{
		{"no matching TCB level", hexQuote(t, "tdx/dcap-qvl/tdx-quote.hex"), at, "no TCB level"},
		{"no collateral for the FMSPC", evidence.Read(t, "tdx/trustee/tdx_quote_4.dat"), at, "no Intel TDX collateral for FMSPC 50806F000000"},
		{"collateral expired", evidence.Read(t, "tdx/dcap-qvl/tdx_quote"), at.AddDate(0, 1, 0), "expired"},
		{"not a quote", []byte("junk"), at, "not a TDX quote"},
	} {
		_, err := tee.Verifier.Verify(ctx, c.quote, c.at)
		if err == nil || !strings.Contains(err.Error(), c.want) || !attest.IsEvidence(err) {
			t.Errorf("%s: %v, want an evidence error with %q", c.name, err, c.want)
		}
	}
}
