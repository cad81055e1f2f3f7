package sgxenclave

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/evidence"
)

// TestSgxEnclave: the real SGX quote with its imported collateral
// verifies to MAA's SGX claims and Intel's status
// (ConfigurationAndSWHardeningNeeded); TDX collateral is not the module's;
// a quote without collateral on file is refused saying so.
func TestSgxEnclave(t *testing.T) {
	ctx := context.Background()
	tee, err := build(attest.Deps{Collateral: &attesttest.Collateral{}, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tee.Import(ctx, evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json")); err != attest.ErrNotMine {
		t.Errorf("TDX collateral: %v", err)
	}
	if n, err := tee.Import(ctx, evidence.Read(t, "sgx/dcap-qvl/sgx_quote_collateral.json")); err != nil || n != 1 {
		t.Fatalf("import: %d %v", n, err)
	}
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	v, err := tee.Verifier.Verify(ctx, evidence.Read(t, "sgx/dcap-qvl/sgx_quote"), at)
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range map[string]any{"attester_tcb_status": "ConfigurationAndSWHardeningNeeded", "x-ms-sgx-is-debuggable": false,
		"x-ms-sgx-mrenclave": "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb", "x-ms-sgx-product-id": float64(0),
		"x-ms-sgx-mrsigner": "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6", "x-kura-qe-tcb-status": "UpToDate"} {
		if g, ok := v.Claims.Get(k); !ok || g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	if v.AttestationType != "sgx" {
		t.Errorf("type %q", v.AttestationType)
	}
	if _, err := tee.Verifier.Verify(ctx, evidence.Read(t, "sgx/teekit/sgx-occlum.dat"), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil || !strings.Contains(err.Error(), "no Intel SGX collateral for FMSPC 30606A000000") {
		t.Errorf("no collateral: %v", err)
	}
}
