package release

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The documented sample policies of the kura Key Vault reference, §3.5,
// copied verbatim except where noted.

// sampleA is the CVM SEV-SNP policy (concept-skr-attestation.md, comments
// removed; the same as cvm-release-policy.json).
const sampleA = `{
    "version": "1.0.0",
    "anyOf": [
        {
            "authority": "https://sharedweu.weu.attest.azure.net",
            "allOf": [
                {
                    "claim": "x-ms-isolation-tee.x-ms-attestation-type",
                    "equals": "sevsnpvm"
                },
                {
                    "claim": "x-ms-isolation-tee.x-ms-compliance-status",
                    "equals": "azure-compliant-cvm"
                }
            ]
        }
    ]
}`

// sampleB1..B3 are the SGX examples (skr-policy-examples.md). The mrenclave
// value is a 45-character non-hex placeholder that no real enclave can match
// (reference §7 #10).
const (
	sampleB1 = `{"anyOf":[{"authority":"https://sharedeus2.eus2.attest.azure.net","allOf":[{"claim":"x-ms-sgx-mrsigner","equals":"9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba"}]}],"version":"1.0.0"}`
	sampleB2 = `{"anyOf":[{"authority":"https://sharedeus2.eus2.attest.azure.net","allOf":[{"claim":"x-ms-sgx-mrsigner","equals":"9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba"},{"claim":"x-ms-sgx-mrenclave","equals":"9fa48b1629bg677jfsaawed7772e85b86848ae6b578ba"}]}],"version":"1.0.0"}`
	sampleB3 = `{"anyOf":[{"authority":"https://sharedeus2.eus2.attest.azure.net","allOf":[{"claim":"x-ms-sgx-mrsigner","equals":"9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba"},{"claim":"x-ms-sgx-mrenclave","equals":"9fa48b1629bg677jfsaawed7772e85b86848ae6b578ba"},{"claim":"x-ms-sgx-svn","greater":1}]}],"version":"1.0.0"}`
)

// sampleC is the multi-region CVM policy with top-level claims (Example 1).
// Its second authority mixes region codes, probably a documentation typo
// (reference §7 #11); it is kept verbatim here only to prove the sample
// parses, and no evaluation test treats it as a real host.
const sampleC = `{"version":"1.0.0","anyOf":[
 {"authority":"https://sharedweu.weu.attest.azure.net","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-compliance-status","equals":"azure-compliant-cvm"}]},
 {"authority":"https://sharedeus2.weu2.attest.azure.net","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-compliance-status","equals":"azure-compliant-cvm"}]}]}`

// sampleD is the VM-ID-bound sample (Example 2), whose top-level allOf
// contradicts the grammar: it must be refused.
const sampleD = `{"version":"1.0.0","allOf":[{"authority":"https://sharedweu.weu.attest.azure.net","allOf":[{"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-isolation-tee.x-ms-compliance-status","equals":"azure-compliant-cvm"},{"claim":"x-ms-azurevm-vmid","equals":"B958DC88-E41D-47F1-8D20-E57B6B7E9825"}]}]}`

// sampleE is the confidential containers on ACI policy.
const sampleE = `{"version":"1.0.0","anyOf":[{"authority":"https://fabrikam1.wus.attest.azure.net","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-compliance-status","equals":"azure-compliant-uvm"},{"claim":"x-ms-sevsnpvm-hostdata","equals":"532eaabd9574880dbf76b9b8cc00832c20a6ec113d682299550d7a6e0f345e25"}]}]}`

// sampleF has the shape of the default CVM policy (skr-policy.json) with two
// of its ~40 regional entries instead of the reference's "...one entry per
// region..." placeholder; the authorities keep the file's trailing slash.
const sampleF = `{"anyOf":[` +
	`{"allOf":[{"claim":"x-ms-compliance-status","equals":"azure-compliant-cvm"},{"anyOf":[{"claim":"x-ms-attestation-type","equals":"tdxvm"},{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}],"authority":"https://sharedeus.eus.attest.azure.net/"},` +
	`{"allOf":[{"claim":"x-ms-compliance-status","equals":"azure-compliant-cvm"},{"anyOf":[{"claim":"x-ms-attestation-type","equals":"tdxvm"},{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}],"authority":"https://sharedweu.weu.attest.azure.net/"}` +
	`],"version":"1.0.0"}`

// sampleG is the azkeys SDK test policy (utils_test.go:194) with its
// placeholder authority.
const sampleG = `{"anyOf":[{"anyOf":[{"claim":"sdk-test","equals":"true"}],"authority":"<attestationURL>"}],"version":"1.0.0"}`

// sdkMockAuthority stands for <attestationURL>: the SDK's mock attestation
// service runs on App Service and its iss ends in "/".
const sdkMockAuthority = "https://skrattestation.azurewebsites.net/"

const sampleGMock = `{"anyOf":[{"anyOf":[{"claim":"sdk-test","equals":"true"}],"authority":"` + sdkMockAuthority + `"}],"version":"1.0.0"}`

// sampleH is the grammar page's generic example, which omits version.
const sampleH = `{"anyOf":[{"authority":"my.attestation.com","allOf":[{"claim":"mr-signer","equals":"0123456789"}]}]}`

func TestSamplePolicies(t *testing.T) {
	tests := []struct {
		name        string
		policy      string
		authorities []string
	}{
		{"a cvm", sampleA, []string{"https://sharedweu.weu.attest.azure.net"}},
		{"b1 sgx mrsigner", sampleB1, []string{"https://sharedeus2.eus2.attest.azure.net"}},
		{"b2 sgx mrenclave", sampleB2, []string{"https://sharedeus2.eus2.attest.azure.net"}},
		{"b3 sgx svn greater", sampleB3, []string{"https://sharedeus2.eus2.attest.azure.net"}},
		{"c multi-region", sampleC, []string{"https://sharedweu.weu.attest.azure.net", "https://sharedeus2.weu2.attest.azure.net"}},
		{"e aci", sampleE, []string{"https://fabrikam1.wus.attest.azure.net"}},
		{"f default cvm shape", sampleF, []string{"https://sharedeus.eus.attest.azure.net", "https://sharedweu.weu.attest.azure.net"}},
		{"g sdk test", sampleG, []string{"<attestationURL>"}},
		{"g sdk test, mock authority", sampleGMock, []string{"https://skrattestation.azurewebsites.net"}},
		{"h generic, no version", sampleH, []string{"my.attestation.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.policy))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := p.Authorities(); !reflect.DeepEqual(got, tt.authorities) {
				t.Errorf("Authorities() = %q, want %q", got, tt.authorities)
			}
			if p.RequireNonce() {
				t.Errorf("RequireNonce() = true for a policy without the extension")
			}
		})
	}
}

func TestSampleDRefused(t *testing.T) {
	p, err := Parse([]byte(sampleD))
	if p != nil {
		t.Fatalf("Parse accepted the top-level allOf sample")
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.Path != "allOf" {
		t.Errorf("Path = %q, want %q", pe.Path, "allOf")
	}
	if !strings.Contains(pe.Msg, "top level must be anyOf over authorities") {
		t.Errorf("Msg = %q, want it to say the top level must be anyOf over authorities", pe.Msg)
	}
	if got, want := pe.Error(), pe.Path+": "+pe.Msg; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
