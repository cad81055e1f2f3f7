package maa

import (
	"errors"
	"strings"
	"testing"
)

// Sample policies from Microsoft's documentation, as collected in the kura
// MAA reference (§3.7). Texts are verbatim except where noted.
const (
	sampleSGXDefault = `version= 1.1;
configurationrules{
	=> issueproperty(type="x-ms-sgx-tcbidentifier", value="azuredefault");
};
authorizationrules{
	=> permit();
};
issuancerules{
	c:[type=="x-ms-sgx-is-debuggable"] => issue(type="is-debuggable", value=c.value);
	c:[type=="x-ms-sgx-mrsigner"] => issue(type="sgx-mrsigner", value=c.value);
	c:[type=="x-ms-sgx-mrenclave"] => issue(type="sgx-mrenclave", value=c.value);
	c:[type=="x-ms-sgx-product-id"] => issue(type="product-id", value=c.value);
	c:[type=="x-ms-sgx-svn"] => issue(type="svn", value=c.value);
	c:[type=="x-ms-attestation-type"] => issue(type="tee", value=c.value);
};
`

	sampleSGXOldDefault = `version= 1.0;authorizationrules{c:[type=="$is-debuggable"] => permit();};issuancerules{c:[type=="$is-debuggable"] => issue(type="is-debuggable", value=c.value);c:[type=="$sgx-mrsigner"] => issue(type="sgx-mrsigner", value=c.value);c:[type=="$sgx-mrenclave"] => issue(type="sgx-mrenclave", value=c.value);c:[type=="$product-id"] => issue(type="product-id", value=c.value);c:[type=="$svn"] => issue(type="svn", value=c.value);c:[type=="$tee"] => issue(type="tee", value=c.value);};`

	// The documentation elides the rest of the issuance rules with "…";
	// the elision is removed here (TestSignedSampleEllipsis covers the
	// verbatim text).
	sampleSigned = `version=1.0;authorizationrules {c:[type=="$is-debuggable"] && [value==true] => deny();=> permit();};issuancerules { c:[type=="$is-debuggable"] => issue(type="NotDebuggable", value=c.value); };`

	// The documentation's placeholders <product-id>, <mrsigner> and
	// <custom-name> are filled in.
	sampleSGXCustom = `version= 1.0;
authorizationrules
{
       [ type=="x-ms-sgx-is-debuggable", value==false ]
        && [ type=="x-ms-sgx-product-id", value==7 ]
        && [ type=="x-ms-sgx-svn", value>= 0 ]
        && [ type=="x-ms-sgx-mrsigner", value=="aabbcc"]
    => permit();
};
issuancerules {
c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-signer", value=c.value);
};
`

	sampleSGXMultiSigner = `version= 1.0;
authorizationrules
{
	[ type=="x-ms-sgx-is-debuggable", value==true ]&&
	[ type=="x-ms-sgx-mrsigner", value=="mrsigner1"] => permit();
	[ type=="x-ms-sgx-is-debuggable", value==true ]&&
	[ type=="x-ms-sgx-mrsigner", value=="mrsigner2"] => permit();
};
`

	// Described, not quoted, in the reference: the default with another TCB
	// identifier and the section keyword spelled "Issuancerules".
	sampleSGXCustomTCB = `version= 1.1;
configurationrules{
	=> issueproperty (type = "x-ms-sgx-tcbidentifier", value = "11");
};
authorizationrules{
	=> permit();
};
Issuancerules{
	c:[type=="x-ms-sgx-is-debuggable"] => issue(type="is-debuggable", value=c.value);
	c:[type=="x-ms-sgx-mrsigner"] => issue(type="sgx-mrsigner", value=c.value);
};
`

	sampleTPM11 = `version=1.1;
configurationrules{
=> issueproperty(type = "required_pcr_mask", value = 15);
=> issueproperty(type = "require_valid_aik_cert", value = false);
};
authorizationrules { => permit(); };
issuancerules
{
[type=="aikValidated", value==true]&& [type=="secureBootEnabled", value==true] &&
[type=="bootDebuggingDisabled", value==true] && [type=="notSafeMode", value==true] => issue(type="PlatformAttested", value=true);
[type=="aikValidated", value==false]&& [type=="secureBootEnabled", value==true] &&
[type=="bootDebuggingDisabled", value==true] && [type=="notSafeMode", value==true] => issue(type="PlatformAttested", value=false);
};
`

	sampleTPM12SecureBoot = `version=1.2;
authorizationrules { => permit(); };
issuancerules
{
c:[type == "events", issuer=="AttestationService"] => add(type = "efiConfigVariables", value = JmesPath(c.value, "Events[?EventTypeString == 'EV_EFI_VARIABLE_DRIVER_CONFIG' && ProcessedData.VariableGuid == '8BE4DF61-93CA-11D2-AA0D-00E098032B8C']"));
c:[type=="efiConfigVariables", issuer="AttestationPolicy"]=> issue(type = "secureBootEnabled", value = JsonToClaimValue(JmesPath(c.value, "[?ProcessedData.UnicodeName == 'SecureBoot'] | length(@) == ` + "`1`" + ` && @[0].ProcessedData.VariableData == 'AQ'")));
![type=="secureBootEnabled", issuer=="AttestationPolicy"] => issue(type="secureBootEnabled", value=false);
};
`

	// The reference quotes a single rule; it is wrapped in a policy here.
	samplePCRRule = `version=1.2;
authorizationrules { => permit(); };
issuancerules {
c:[type == "pcrs", issuer=="AttestationService"] && c1:[type=="pcrMatchesExpectedValue", value==JsonToClaimValue(JmesPath(c.value, "PCRs[? Index == ` + "`0`" + `].Digests.SHA1 | @[0] == ` + "`\\\"KCk6Ow\\\"`" + `"))] => issue(claim = c1);
};
`

	sampleGenericDeny = `version=1.0; authorizationrules { =>deny(); }; issuancerules { };`

	sampleGenericLevel = `version=1.0; authorizationrules { [type=="secureBootEnabled", value==true, issuer=="AttestationService"]=>permit(); }; issuancerules { => issue(type="SecurityLevelValue", value=100); };`

	sampleAzureGuest = `version= 1.0;
authorizationrules
{
    [type=="x-ms-azurevm-default-securebootkeysvalidated", value==false] => deny();
    [type=="x-ms-azurevm-debuggersdisabled", value==false] => deny();
    //[type=="secureboot", value==false] => deny();
    [type=="x-ms-azurevm-signingdisabled", value==false] => deny();
    [type=="x-ms-azurevm-dbvalidated", value==false] => deny();
    [type=="x-ms-azurevm-dbxvalidated", value==false] => deny();
    => permit();
};
issuancerules
{
};
`
)

type samplePolicy struct {
	name    string
	text    string
	version string
}

// samplePolicies lists every sample with its expected version; the fuzz
// test seeds from it too.
func samplePolicies() []samplePolicy {
	return []samplePolicy{
		{"sgx-default", sampleSGXDefault, "1.1"},
		{"sgx-old-default", sampleSGXOldDefault, "1.0"},
		{"signed-sample", sampleSigned, "1.0"},
		{"sgx-custom", sampleSGXCustom, "1.0"},
		{"sgx-multi-signer", sampleSGXMultiSigner, "1.0"},
		{"sgx-custom-tcb", sampleSGXCustomTCB, "1.1"},
		{"tpm-1.1", sampleTPM11, "1.1"},
		{"tpm-1.2-secure-boot", sampleTPM12SecureBoot, "1.2"},
		{"pcr-golden-value", samplePCRRule, "1.2"},
		{"generic-deny", sampleGenericDeny, "1.0"},
		{"generic-level", sampleGenericLevel, "1.0"},
		{"azureguest-constellation", sampleAzureGuest, "1.0"},
	}
}

func TestSamplePoliciesParse(t *testing.T) {
	for _, s := range samplePolicies() {
		t.Run(s.name, func(t *testing.T) {
			p, err := Parse(s.text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := p.Version(); got != s.version {
				t.Errorf("Version() = %q, want %q", got, s.version)
			}
		})
	}
}

// The signed sample as printed in the documentation ends its issuance rules
// with "…", which is an elision, not policy text: it must be rejected where
// it stands rather than skipped.
func TestSignedSampleEllipsis(t *testing.T) {
	verbatim := strings.Replace(sampleSigned, "value=c.value); };", "value=c.value); …};", 1)
	_, err := Parse(verbatim)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse error = %v, want *ParseError", err)
	}
	col := strings.Index(verbatim, "…") + 1 // everything before it is ASCII
	if pe.Line != 1 || pe.Column != col || !strings.Contains(pe.Msg, "U+2026") {
		t.Errorf("got %v, want line 1, column %d, unexpected U+2026", pe, col)
	}
}
