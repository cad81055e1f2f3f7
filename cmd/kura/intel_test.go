package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/evidence"
)

// TestAttestVerifyIntelOffline: `kura collateral import` then `kura attest
// verify --type TdxVm|SgxEnclave` on MAA bodies holding real quotes: the
// claims at a time inside the collateral's window, exit 1 with the reason
// (the expired part, named) after it.
func TestAttestVerifyIntelOffline(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		typ, quote, collateral, at, after, want string
	}{
		{"TdxVm", "tdx/dcap-qvl/tdx_quote", "tdx/dcap-qvl/tdx_quote_collateral.json", "2025-07-01T00:00:00Z", "2025-09-01T00:00:00Z", `"attester_tcb_status": "UpToDate"`},
		{"SgxEnclave", "sgx/dcap-qvl/sgx_quote", "sgx/dcap-qvl/sgx_quote_collateral.json", "2025-07-01T00:00:00Z", "2025-09-01T00:00:00Z", `"attester_tcb_status": "ConfigurationAndSWHardeningNeeded"`},
	} {
		col := filepath.Join(data, c.typ+"-collateral.json")
		os.WriteFile(col, evidence.Read(t, c.collateral), 0o600)
		if _, err := runKura(t, "collateral", "import", "--data", data, col); err != nil {
			t.Fatalf("%s import: %v", c.typ, err)
		}
		b, _ := json.Marshal(map[string]string{"quote": base64.RawURLEncoding.EncodeToString(evidence.Read(t, c.quote))})
		body := filepath.Join(data, c.typ+".json")
		os.WriteFile(body, b, 0o600)
		out, err := runKura(t, "attest", "verify", "--type", c.typ, "--at", c.at, "--data", data, body)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v\n%s", c.typ, err, out)
		}
		_, err = runKura(t, "attest", "verify", "--type", c.typ, "--at", c.after, "--data", data, body)
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "expired") {
			t.Errorf("%s after the collateral's window: %v", c.typ, err)
		}
	}
}
