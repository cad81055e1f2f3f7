package maa

import (
	"strings"
	"testing"
)

// benchSNPPolicy is the shape of a production SEV-SNP policy: six deny
// guards, one permit, three issuance rules (one using JmesPath).
const benchSNPPolicy = `version=1.2;
authorizationrules {
	[type=="x-ms-attestation-type", value!="sevsnpvm"] => deny();
	[type=="x-ms-sevsnpvm-is-debuggable", value==true] => deny();
	[type=="x-ms-sevsnpvm-vmpl", value>0] => deny();
	[type=="x-ms-sevsnpvm-bootloader-svn", value<3] => deny();
	[type=="x-ms-sevsnpvm-snpfw-svn", value<8] => deny();
	[type=="x-ms-sevsnpvm-microcode-svn", value<115] => deny();
	[type=="x-ms-compliance-status", value=="azure-compliant-cvm"] &&
	[type=="x-ms-sevsnpvm-idkeydigest", value=="38ed94f9aab20bc5eb40e89c7cbb03aa1b9efb435892656ade789ccaa0ded82ff18bae0e849c3166351ba1fa7ff620a2"] => permit();
};
issuancerules {
	c:[type=="x-ms-sevsnpvm-launchmeasurement"] => issue(type="measurement", value=c.value);
	c:[type=="x-ms-sevsnpvm-hostdata", issuer=="AttestationService"] => issue(type="hostdata", value=c.value);
	c:[type=="x-ms-runtime"] => issue(type="kid", value=JsonToClaimValue(JmesPath(c.value, "keys[0].kid")));
};`

// benchSNPClaims follows the spec's SevSnpVm token (reference appendix A.1)
// with the TCB values of a current platform.
func benchSNPClaims() []Claim {
	zeros := func(n int) string { return strings.Repeat("0", n) }
	return []Claim{
		svc("x-ms-ver", "1.0"),
		svc("x-ms-attestation-type", "sevsnpvm"),
		svc("x-ms-compliance-status", "azure-compliant-cvm"),
		svc("x-ms-policy-hash", "9NY0VnTQ-IiBriBplVUpFbczcDaEBUwsiFYAzHu_gco"),
		svc("nonce", "noncesevsnp987"),
		svc("x-ms-runtime", map[string]any{
			"keys": []any{map[string]any{"e": "AQAB", "key_ops": []any{"encrypt"}, "kid": "HCLTransferKey", "kty": "RSA", "n": "ur08DccjGGzRo3OIq445n00Q3OthMIbR3SWIzCcicIM"}},
			"vm-configuration": map[string]any{
				"secure-boot": true, "secure-boot-template-id": "1734c6e8-3154-4dda-ba5f-a874cc483422",
				"tpm-enabled": true, "vmUniqueId": "AE5CBB2A-DC95-4870-A74A-EE4FB33B1A9C",
			},
		}),
		svc("x-ms-sevsnpvm-authorkeydigest", zeros(96)),
		svc("x-ms-sevsnpvm-bootloader-svn", 3),
		svc("x-ms-sevsnpvm-familyId", "01000000000000000000000000000000"),
		svc("x-ms-sevsnpvm-guestsvn", 2),
		svc("x-ms-sevsnpvm-hostdata", zeros(64)),
		svc("x-ms-sevsnpvm-idkeydigest", "38ed94f9aab20bc5eb40e89c7cbb03aa1b9efb435892656ade789ccaa0ded82ff18bae0e849c3166351ba1fa7ff620a2"),
		svc("x-ms-sevsnpvm-imageId", "02000000000000000000000000000000"),
		svc("x-ms-sevsnpvm-is-debuggable", false),
		svc("x-ms-sevsnpvm-launchmeasurement", "04a170f39a3f702472ed0c7ecbda9babfc530e3caac475fdd607ff499177d14c278c5a15ad07ceacd5230ae63d507e9d"),
		svc("x-ms-sevsnpvm-microcode-svn", 115),
		svc("x-ms-sevsnpvm-migration-allowed", false),
		svc("x-ms-sevsnpvm-reportdata", "99dd4593a43f4b0f5f10f1856c7326eba309b943251fededc15592e3250ca9e9"+zeros(64)),
		svc("x-ms-sevsnpvm-reportid", "d1d5c2c71596fae601433ecdfb62799de2a785cc08be3b1c8a4e26a381494787"),
		svc("x-ms-sevsnpvm-smt-allowed", true),
		svc("x-ms-sevsnpvm-snpfw-svn", 8),
		svc("x-ms-sevsnpvm-tee-svn", 0),
		svc("x-ms-sevsnpvm-vmpl", 0),
		{Type: "x-ms-client-nonce", Value: "abc"},
		{Type: "x-ms-client-hint", Value: "azure"},
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustParse(b, benchSNPPolicy)
	claims := benchSNPClaims()
	res, err := p.Evaluate(claims)
	if err != nil {
		b.Fatal(err)
	}
	if !res.Permitted || len(res.Issued) != 3 {
		b.Fatalf("benchmark policy: permitted %v (%s), issued %v", res.Permitted, res.Reason, res.Issued)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Evaluate(claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchSNPPolicy); err != nil {
			b.Fatal(err)
		}
	}
}
