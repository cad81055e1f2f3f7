package snp

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/evidence"
)

// TestRealEvidence verifies every SEV-SNP sample of the shared evidence set at
// its pinned time and compares the claims with expected.json.
func TestRealEvidence(t *testing.T) {
	roots, err := AMDRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range evidence.Checks(t, "sev-snp") {
		t.Run(c.ID, func(t *testing.T) {
			raw := evidence.Read(t, c.Files[0])
			if len(raw) > ReportSize { // Azure: report followed by the runtime-data header
				raw = raw[:ReportSize]
			}
			rep, err := ParseReport(raw)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			certs, err := ParseCertificates(evidence.Read(t, c.Files[1]))
			if err != nil {
				t.Fatalf("certificate: %v", err)
			}
			// The pinned roots must be the ones the manifest names.
			uses, err := ParseCertificates(evidence.Read(t, c.Uses[0]))
			if err != nil {
				t.Fatal(err)
			}
			assertPinned(t, roots, uses)

			v := NewVerifier(roots, nil, nil)
			res, err := v.Verify(context.Background(), Evidence{Report: rep, Certs: certs}, c.VerifyAt)
			if c.Expect == "reject" {
				if err == nil {
					t.Fatalf("verified, want rejection (%s)", c.Reason)
				}
				if !attest.IsEvidence(err) {
					t.Fatalf("error %v is not an evidence error", err)
				}
				t.Logf("rejected as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("verify at %s: %v", c.VerifyAt, err)
			}
			checkClaims(t, res, c.Claims)
		})
	}
}

func assertPinned(t *testing.T, roots *Roots, certs []*x509.Certificate) {
	t.Helper()
	for _, c := range certs {
		found := false
		for _, r := range roots.All() {
			if r.ARK.Equal(c) || r.Intermediate.Equal(c) {
				found = true
			}
		}
		if !found {
			t.Fatalf("certificate %q of the evidence set is not among the pinned roots", c.Subject.CommonName)
		}
	}
}

func checkClaims(t *testing.T, res *Result, want map[string]any) {
	t.Helper()
	cl := res.Claims()
	get := func(name string) any {
		v, ok := cl.Get(name)
		if !ok {
			t.Fatalf("claim %s missing", name)
		}
		return v
	}
	eq := func(what string, got, exp any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("%s = %v, want %v", what, got, exp)
		}
	}
	r := res.Report
	for k, exp := range want {
		switch k {
		case "report_version":
			eq(k, r.Version, exp)
		case "product_line":
			eq(k, res.ProductLine, exp)
		case "signing_key":
			eq(k, r.SigningKey, exp)
		case "policy":
			eq(k, get("x-kura-sevsnpvm-policy"), exp)
		case "vmpl":
			eq(k, get("x-ms-sevsnpvm-vmpl"), exp)
		case "guest_svn":
			eq(k, get("x-ms-sevsnpvm-guestsvn"), exp)
		case "reported_tcb":
			eq(k, get("x-kura-sevsnpvm-reported-tcb"), exp)
		case "reported_tcb_fields":
			m := exp.(map[string]any)
			tcb := DecodeTCB(r.ReportedTCB, res.ProductLine)
			fields := map[string]uint8{"fmc": tcb.FMC, "bl": tcb.BL, "tee": tcb.TEE, "snp": tcb.SNP, "ucode": tcb.UCODE}
			for f, v := range m {
				eq("tcb."+f, fields[f], v)
			}
			eq("bootloader-svn claim", get("x-ms-sevsnpvm-bootloader-svn"), m["bl"])
			eq("snpfw-svn claim", get("x-ms-sevsnpvm-snpfw-svn"), m["snp"])
			eq("microcode-svn claim", get("x-ms-sevsnpvm-microcode-svn"), m["ucode"])
		case "cpuid_family_model_stepping":
			eq(k, fmt.Sprintf("%02x/%02x/%02x", r.Family, r.Model, r.Stepping), exp)
		case "firmware_version":
			eq(k, get("x-kura-sevsnpvm-firmware-version"), exp)
		case "measurement":
			eq(k, get("x-ms-sevsnpvm-launchmeasurement"), exp)
		case "report_data":
			eq(k, get("x-ms-sevsnpvm-reportdata"), exp)
		case "host_data":
			eq(k, get("x-ms-sevsnpvm-hostdata"), exp)
		case "id_key_digest":
			eq(k, get("x-ms-sevsnpvm-idkeydigest"), exp)
		case "report_id":
			eq(k, get("x-ms-sevsnpvm-reportid"), exp)
		case "chip_id":
			eq(k, get("x-kura-sevsnpvm-chipid"), exp)
		case "ek_issuer_cn":
			eq(k, res.Key.Issuer.CommonName, exp)
		case "ek_not_before":
			eq(k, res.Key.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), exp)
		case "ek_not_after":
			eq(k, res.Key.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), exp)
		case "policy_debug_allowed":
			eq(k, get("x-ms-sevsnpvm-is-debuggable"), exp)
		case "vlek_csp_id":
			eq(k, get("x-kura-sevsnpvm-vlek-csp-id"), exp)
		case "vcek_hwid_ext":
			eq(k, hexs(res.Extensions.HWID), exp)
		case "kds_vcek_url":
			eq(k, KDSURL("https://kdsintf.amd.com", res.ProductLine, r.ChipID, r.ReportedTCB), exp)
		case "runtime_data_sha256":
			// The runtime-data binding is checked where runtime data arrives (the API); see api/maa tests.
		default:
			if !strings.HasPrefix(k, "_") {
				t.Errorf("expected.json claim %q is not checked by this test", k)
			}
		}
	}
}
