package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
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

// TestCollateralExportImport: `kura collateral export` writes the
// collateral of one data directory (Intel bundles once each, AMD items)
// as files that `kura collateral import` takes into a fresh one, where
// the same real quotes verify offline; an export into a non-empty
// directory is refused.
func TestCollateralExportImport(t *testing.T) {
	src, dst, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "export")
	files := []string{"tdx/dcap-qvl/tdx_quote_collateral.json", "sgx/dcap-qvl/sgx_quote_collateral.json", "snp/milan-gce-2022/vcek.der"}
	for i, f := range files {
		p := filepath.Join(t.TempDir(), fmt.Sprintf("c%d%s", i, filepath.Ext(f)))
		os.WriteFile(p, evidence.Read(t, f), 0o600)
		if _, err := runKura(t, "collateral", "import", "--data", src, p); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := runKura(t, "collateral", "export", "--data", src, "--out", out)
	if err != nil || !strings.Contains(msg, "wrote 3 collateral file(s)") {
		t.Fatalf("export: %v %s", err, msg)
	}
	ents, _ := os.ReadDir(out)
	args := []string{"collateral", "import", "--data", dst}
	for _, e := range ents {
		args = append(args, filepath.Join(out, e.Name()))
	}
	if out, err := runKura(t, args...); err != nil || strings.Count(out, "imported 1 item(s)") != 3 {
		t.Fatalf("import of the export: %v\n%s", err, out)
	}
	for _, c := range []struct{ typ, quote string }{{"TdxVm", "tdx/dcap-qvl/tdx_quote"}, {"SgxEnclave", "sgx/dcap-qvl/sgx_quote"}} {
		b, _ := json.Marshal(map[string]string{"quote": base64.RawURLEncoding.EncodeToString(evidence.Read(t, c.quote))})
		body := filepath.Join(t.TempDir(), "body.json")
		os.WriteFile(body, b, 0o600)
		if out, err := runKura(t, "attest", "verify", "--type", c.typ, "--at", "2025-07-01T00:00:00Z", "--data", dst, body); err != nil || !strings.Contains(out, "attester_tcb_status") {
			t.Errorf("%s with the imported export: %v", c.typ, err)
		}
	}
	if _, err := runKura(t, "collateral", "export", "--data", src, "--out", out); exitCode(err) != 1 || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("export into a non-empty directory: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-data")
	if _, err := runKura(t, "collateral", "export", "--data", missing, "--out", filepath.Join(t.TempDir(), "x")); exitCode(err) != 1 || !strings.Contains(err.Error(), "no-such-data") {
		t.Errorf("export from a data directory that does not exist: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("export created the missing data directory")
	}
}

// TestCollateralImportPCSAnswers: `kura collateral import` takes Intel's
// PCS answers as Intel serves them — the TCB info and QE identity
// answers, the TCB Signing and PCK CA certificates (PEM), the PCK CRL
// (DER) and the root CA CRL (PEM) — with an AMD file among them, and the
// real TDX quote then verifies offline.
func TestCollateralImportPCSAnswers(t *testing.T) {
	var b map[string]string
	if err := json.Unmarshal(evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json"), &b); err != nil {
		t.Fatal(err)
	}
	dir, data := t.TempDir(), t.TempDir()
	first := func(chain string) []byte { blk, _ := pem.Decode([]byte(chain)); return pem.EncodeToMemory(blk) }
	pck, _ := hex.DecodeString(b["pck_crl"])
	root, _ := hex.DecodeString(b["root_ca_crl"])
	files := map[string][]byte{
		"tcbinfo.json":     []byte(`{"tcbInfo":` + b["tcb_info"] + `,"signature":"` + b["tcb_info_signature"] + `"}`),
		"qeidentity.json":  []byte(`{"enclaveIdentity":` + b["qe_identity"] + `,"signature":"` + b["qe_identity_signature"] + `"}`),
		"tcb-signing.pem":  first(b["tcb_info_issuer_chain"]),
		"pck-platform.pem": first(b["pck_crl_issuer_chain"]),
		"pckcrl.der":       pck,
		"rootcacrl.pem":    pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: root}),
		"vcek.der":         evidence.Read(t, "snp/milan-gce-2022/vcek.der"),
	}
	args := []string{"collateral", "import", "--data", data}
	for n, c := range files {
		p := filepath.Join(dir, n)
		os.WriteFile(p, c, 0o600)
		args = append(args, p)
	}
	out, err := runKura(t, args...)
	if err != nil || !strings.Contains(out, "Intel PCS answers (") || strings.Count(out, "imported 1 item(s)") != 2 {
		t.Fatalf("import: %v\n%s", err, out)
	}
	q, _ := json.Marshal(map[string]string{"quote": base64.RawURLEncoding.EncodeToString(evidence.Read(t, "tdx/dcap-qvl/tdx_quote"))})
	body := filepath.Join(dir, "body.json")
	os.WriteFile(body, q, 0o600)
	if out, err := runKura(t, "attest", "verify", "--type", "TdxVm", "--at", "2025-07-01T00:00:00Z", "--data", data, body); err != nil || !strings.Contains(out, `"attester_tcb_status": "UpToDate"`) {
		t.Errorf("verify after importing PCS answers: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dir, "tcb-signing.pem"))
	delete(files, "tcb-signing.pem")
	args = []string{"collateral", "import", "--data", t.TempDir()}
	for n := range files {
		args = append(args, filepath.Join(dir, n))
	}
	if _, err := runKura(t, args...); exitCode(err) != 1 || !strings.Contains(err.Error(), "no Intel SGX TCB Signing certificate") {
		t.Errorf("without the TCB Signing certificate: %v", err)
	}
}
