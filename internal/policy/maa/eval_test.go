package maa

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func svc(typ string, v any) Claim   { return Claim{Type: typ, Value: v, Issuer: IssuerService} }
func byPol(typ string, v any) Claim { return Claim{Type: typ, Value: v, Issuer: IssuerPolicy} }

func mustParse(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v\npolicy:\n%s", err, text)
	}
	return p
}

const eventsJSON = `{"Events":[
 {"EventTypeString":"EV_EFI_VARIABLE_DRIVER_CONFIG","ProcessedData":{"VariableGuid":"8BE4DF61-93CA-11D2-AA0D-00E098032B8C","UnicodeName":"SecureBoot","VariableData":"AQ"}},
 {"EventTypeString":"EV_EFI_VARIABLE_DRIVER_CONFIG","ProcessedData":{"VariableGuid":"8BE4DF61-93CA-11D2-AA0D-00E098032B8C","UnicodeName":"PK","VariableData":"oUQ"}},
 {"EventTypeString":"EV_EFI_VARIABLE_DRIVER_CONFIG","ProcessedData":{"VariableGuid":"D719B2CB-3D3A-4596-A3BC-DAD00E67656F","UnicodeName":"SecureBoot","VariableData":"AQ"}},
 {"EventTypeString":"EV_SEPARATOR","ProcessedData":{}}
]}`

func TestEvaluate(t *testing.T) {
	runtime := map[string]any{"keys": []any{map[string]any{"kid": "k1", "kty": "RSA"}}}
	// The first SecureBoot variable is the one under the EFI global GUID.
	secureBootOff := strings.Replace(eventsJSON, `"VariableData":"AQ"`, `"VariableData":"AA"`, 1)
	if secureBootOff == eventsJSON {
		t.Fatal("test setup: secure-boot-off events equal the on events")
	}
	var eventsValue any
	if err := json.Unmarshal([]byte(eventsJSON), &eventsValue); err != nil {
		t.Fatal(err)
	}

	order := `version=1.0;
authorizationrules {
	[type=="x-ms-sevsnpvm-is-debuggable", value==true] => deny();
	[type=="x-ms-sevsnpvm-vmpl", value==0] => permit();
	=> deny();
};`
	tests := []struct {
		name      string
		policy    string
		claims    []Claim
		permitted bool
		reason    string // substring of Result.Reason
		issued    []Claim
		props     []Claim
	}{
		{
			name:   "deny rule before permit decides",
			policy: order,
			claims: []Claim{svc("x-ms-sevsnpvm-is-debuggable", true), svc("x-ms-sevsnpvm-vmpl", 0)},
			reason: "authorizationrules rule 1 (line 3): deny()",
		},
		{
			name:      "permit when the deny rule does not match",
			policy:    order,
			claims:    []Claim{svc("x-ms-sevsnpvm-is-debuggable", false), svc("x-ms-sevsnpvm-vmpl", 0)},
			permitted: true,
			reason:    "authorizationrules rule 2 (line 4): permit()",
		},
		{
			name:   "catch-all deny",
			policy: order,
			claims: []Claim{svc("x-ms-sevsnpvm-is-debuggable", false), svc("x-ms-sevsnpvm-vmpl", 2)},
			reason: "authorizationrules rule 3 (line 5): deny()",
		},
		{
			name:   "no rule matches",
			policy: `version=1.0; authorizationrules { [type=="a", value=="x"] => permit(); };`,
			claims: []Claim{svc("a", "y")},
			reason: "no authorization rule permitted the claims",
		},
		{
			name:   "no claims at all",
			policy: `version=1.0; authorizationrules { [type=="a"] => permit(); };`,
			reason: "no authorization rule permitted the claims",
		},
		{
			name:   "no authorizationrules section denies",
			policy: `version=1.0; issuancerules { => issue(type="x", value=1); };`,
			reason: "no authorizationrules section",
		},
		{
			name:      "&& all conditions hold",
			policy:    sampleSGXCustom,
			claims:    []Claim{svc("x-ms-sgx-is-debuggable", false), svc("x-ms-sgx-product-id", 7), svc("x-ms-sgx-svn", 3), svc("x-ms-sgx-mrsigner", "aabbcc")},
			permitted: true,
			issued:    []Claim{byPol("custom-signer", "aabbcc")},
		},
		{
			name:   "&& one condition fails",
			policy: sampleSGXCustom,
			claims: []Claim{svc("x-ms-sgx-is-debuggable", false), svc("x-ms-sgx-product-id", 8), svc("x-ms-sgx-svn", 3), svc("x-ms-sgx-mrsigner", "aabbcc")},
			reason: "no authorization rule permitted",
		},
		{
			name:      "OR through two rules, second matches",
			policy:    sampleSGXMultiSigner,
			claims:    []Claim{svc("x-ms-sgx-is-debuggable", true), svc("x-ms-sgx-mrsigner", "mrsigner2")},
			permitted: true,
			reason:    "rule 2 (line 6): permit()",
		},
		{
			name:   "OR through two rules, neither matches",
			policy: sampleSGXMultiSigner,
			claims: []Claim{svc("x-ms-sgx-is-debuggable", true), svc("x-ms-sgx-mrsigner", "mrsigner3")},
			reason: "no authorization rule permitted",
		},
		{
			name:      "! absence holds",
			policy:    `version=1.2; authorizationrules { ![type=="x-ms-sevsnpvm-is-debuggable", value==true] => permit(); };`,
			claims:    []Claim{svc("x-ms-sevsnpvm-is-debuggable", false)},
			permitted: true,
		},
		{
			name:   "! absence fails",
			policy: `version=1.2; authorizationrules { ![type=="x-ms-sevsnpvm-is-debuggable", value==true] => permit(); };`,
			claims: []Claim{svc("x-ms-sevsnpvm-is-debuggable", true)},
			reason: "no authorization rule permitted",
		},
		{
			name: "! absence refers to an earlier identifier",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules { c:[type=="want"] && ![type=="have", value==c.value] => issue(type="missing", value=c.value); };`,
			claims:    []Claim{svc("want", "a"), svc("want", "b"), svc("have", "a")},
			permitted: true,
			issued:    []Claim{byPol("missing", "b")},
		},
		{
			name:      "identifier binding and issue(claim=c) per matching claim",
			policy:    `version=1.0; authorizationrules { => permit(); }; issuancerules { c:[type=="svn"] => issue(claim=c); };`,
			claims:    []Claim{svc("svn", 3), {Type: "other", Value: "x"}, svc("svn", 4)},
			permitted: true,
			issued:    []Claim{byPol("svn", int64(3)), byPol("svn", int64(4))},
		},
		{
			name: "two identifiers run the action for every combination",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules { c1:[type=="a"] && c2:[type=="b"] => issue(type="pair", value=AppendString(c1.value, c2.value)); };`,
			claims:    []Claim{svc("a", "1"), svc("b", "x"), svc("a", "2"), svc("b", "y")},
			permitted: true,
			issued:    []Claim{byPol("pair", "1x"), byPol("pair", "1y"), byPol("pair", "2x"), byPol("pair", "2y")},
		},
		{
			name: "later condition compares with an earlier identifier",
			policy: `version=1.0; authorizationrules {
	F1:[type=="OSName", issuer=="CustomClaim"] && [type=="OSName", issuer=="AttestationService", value==F1.value] => permit();
};`,
			claims:    []Claim{{Type: "OSName", Value: "Windows"}, svc("OSName", "Windows")},
			permitted: true,
		},
		{
			name: "later condition compares with an earlier identifier, mismatch",
			policy: `version=1.0; authorizationrules {
	F1:[type=="OSName", issuer=="CustomClaim"] && [type=="OSName", issuer=="AttestationService", value==F1.value] => permit();
};`,
			claims: []Claim{{Type: "OSName", Value: "Linux"}, svc("OSName", "Windows")},
		},
		{
			name:   "c.value, c.type, c.issuer and c.valueType into issue",
			policy: sampleSGXDefault,
			claims: []Claim{svc("x-ms-sgx-is-debuggable", false), svc("x-ms-sgx-mrsigner", "aa"), svc("x-ms-sgx-svn", 2), svc("x-ms-attestation-type", "sgx")},
			issued: []Claim{
				byPol("is-debuggable", false), byPol("sgx-mrsigner", "aa"), byPol("svn", int64(2)), byPol("tee", "sgx"),
			},
			permitted: true,
			props:     []Claim{byPol("x-ms-sgx-tcbidentifier", "azuredefault")},
		},
		{
			name: "claim properties as values",
			policy: `version=1.0; authorizationrules { => permit(); };
issuancerules { c:[type=="svn"] => issue(type="t", value=c.type); c:[type=="svn"] => issue(type="i", value=c.issuer); c:[type=="svn"] => issue(type="vt", value=c.valueType); };`,
			claims:    []Claim{svc("svn", 2)},
			permitted: true,
			issued:    []Claim{byPol("t", "svn"), byPol("i", IssuerService), byPol("vt", "Integer")},
		},
		{
			name:      "integer >= and < hold",
			policy:    `version=1.0; authorizationrules { [type=="svn", value>=2] && [type=="svn", value<10] && [type=="vmpl", value!=1] => permit(); };`,
			claims:    []Claim{svc("svn", 2), svc("vmpl", 0)},
			permitted: true,
		},
		{
			name:   "integer >= fails",
			policy: `version=1.0; authorizationrules { [type=="svn", value>=2] && [type=="svn", value<10] && [type=="vmpl", value!=1] => permit(); };`,
			claims: []Claim{svc("svn", 1), svc("vmpl", 0)},
		},
		{
			name:   "integer < fails",
			policy: `version=1.0; authorizationrules { [type=="svn", value>=2] && [type=="svn", value<10] && [type=="vmpl", value!=1] => permit(); };`,
			claims: []Claim{svc("svn", 10), svc("vmpl", 0)},
		},
		{
			name:   "integer != fails",
			policy: `version=1.0; authorizationrules { [type=="svn", value>=2] && [type=="svn", value<10] && [type=="vmpl", value!=1] => permit(); };`,
			claims: []Claim{svc("svn", 5), svc("vmpl", 1)},
		},
		{
			name:      "negative integers and > <=",
			policy:    `version=1.0; authorizationrules { [type=="n", value > -5, value <= -1] => permit(); };`,
			claims:    []Claim{svc("n", -3)},
			permitted: true,
		},
		{
			name:      "JSON numbers from a decoded token are integers",
			policy:    `version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-guestsvn", value>=1, valueType=="Integer"] => permit(); };`,
			claims:    []Claim{svc("x-ms-sevsnpvm-guestsvn", float64(1))},
			permitted: true,
		},
		{
			name:   "string \"false\" is not Boolean false",
			policy: `version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-is-debuggable", value==false] => permit(); };`,
			claims: []Claim{svc("x-ms-sevsnpvm-is-debuggable", "false")},
			reason: "no authorization rule permitted",
		},
		{
			name:   "!= between different types is false too",
			policy: `version=1.0; authorizationrules { [type=="x-ms-sevsnpvm-is-debuggable", value!=true] => permit(); };`,
			claims: []Claim{svc("x-ms-sevsnpvm-is-debuggable", "false")},
		},
		{
			name:   "integer 1 is not string \"1\"",
			policy: `version=1.0; authorizationrules { [type=="svn", value=="1"] => permit(); };`,
			claims: []Claim{svc("svn", 1)},
		},
		{
			name:      "ordering against a claim value of another type is false",
			policy:    `version=1.0; authorizationrules { c:[type=="min"] && [type=="svn", value>=c.value] => deny(); => permit(); };`,
			claims:    []Claim{svc("min", "2"), svc("svn", 5)},
			permitted: true,
		},
		{
			name:      "issuer condition and default issuer",
			policy:    `version=1.0; authorizationrules { [type=="a", issuer=="CustomClaim"] => permit(); };`,
			claims:    []Claim{{Type: "a", Value: "x"}},
			permitted: true,
		},
		{
			name:   "issuer condition rejects a client claim posing as a service claim",
			policy: `version=1.0; authorizationrules { [type=="secureBootEnabled", value==true, issuer=="AttestationService"] => permit(); };`,
			claims: []Claim{{Type: "secureBootEnabled", Value: true, Issuer: IssuerCustom}},
		},
		{
			name: "add in authorizationrules is seen by a later rule",
			policy: `version=1.0; authorizationrules {
	[type=="svn", value>=2] => add(type="svnOK", value=true);
	[type=="svnOK", value==true, issuer=="AttestationPolicy"] => permit();
};`,
			claims:    []Claim{svc("svn", 3)},
			permitted: true,
			reason:    "rule 2 (line 3)",
		},
		{
			name: "add in authorizationrules is not issued",
			policy: `version=1.0; authorizationrules { => add(type="tmp", value="x"); => permit(); };
issuancerules { c:[type=="tmp"] => issue(type="seen", value=c.value); };`,
			permitted: true,
			issued:    []Claim{byPol("seen", "x")},
		},
		{
			name: "issue is visible to later issuance rules; add is not issued",
			policy: `version=1.0; authorizationrules { => permit(); };
issuancerules {
	=> issue(type="level", value=100);
	=> add(type="hidden", value=1);
	c:[type=="level", value>=100, issuer=="AttestationPolicy"] && h:[type=="hidden"] => issue(type="high", value=h.value);
};`,
			permitted: true,
			issued:    []Claim{byPol("level", int64(100)), byPol("high", int64(1))},
		},
		{
			name: "a rule does not see the claims it adds itself",
			policy: `version=1.0; authorizationrules { => permit(); };
issuancerules { c:[type=="a"] => add(type="a", value=c.value); c:[type=="a"] => issue(type="copy", value=c.value); };`,
			claims:    []Claim{svc("a", 1)},
			permitted: true,
			issued:    []Claim{byPol("copy", int64(1)), byPol("copy", int64(1))},
		},
		{
			name:   "issuance does not run after deny",
			policy: `version=1.0; authorizationrules { => deny(); }; issuancerules { => issue(type="x", value=1); };`,
			reason: "deny()",
		},
		{
			name:      "issueproperty in configurationrules and issuancerules; typed literals",
			policy:    sampleTPM11,
			claims:    []Claim{svc("aikValidated", true), svc("secureBootEnabled", true), svc("bootDebuggingDisabled", true), svc("notSafeMode", true)},
			permitted: true,
			issued:    []Claim{byPol("PlatformAttested", true)},
			props:     []Claim{byPol("required_pcr_mask", int64(15)), byPol("require_valid_aik_cert", false)},
		},
		{
			name:      "TPM 1.1 sample, AIK not validated",
			policy:    sampleTPM11,
			claims:    []Claim{svc("aikValidated", false), svc("secureBootEnabled", true), svc("bootDebuggingDisabled", true), svc("notSafeMode", true)},
			permitted: true,
			issued:    []Claim{byPol("PlatformAttested", false)},
			props:     []Claim{byPol("required_pcr_mask", int64(15)), byPol("require_valid_aik_cert", false)},
		},
		{
			name: "issueproperty in issuancerules",
			policy: `version=1.1; authorizationrules { => permit(); };
issuancerules { c:[type=="x-ms-sgx-svn"] => issueproperty(type="svn-seen", value=c.value); };`,
			claims:    []Claim{svc("x-ms-sgx-svn", 4)},
			permitted: true,
			props:     []Claim{byPol("svn-seen", int64(4))},
		},
		{
			name:      "generic sample issues an Integer",
			policy:    sampleGenericLevel,
			claims:    []Claim{svc("secureBootEnabled", true)},
			permitted: true,
			issued:    []Claim{byPol("SecurityLevelValue", int64(100))},
		},
		{
			name:   "AzureGuest sample denies on a false check",
			policy: sampleAzureGuest,
			claims: []Claim{svc("x-ms-azurevm-default-securebootkeysvalidated", true), svc("x-ms-azurevm-debuggersdisabled", true), svc("x-ms-azurevm-signingdisabled", false)},
			reason: "authorizationrules rule 3 (line 7): deny()",
		},
		{
			name: "JmesPath over a JSON claim",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules {
	c:[type=="x-ms-runtime"] => issue(type="kid", value=JsonToClaimValue(JmesPath(c.value, "keys[0].kid")));
	c:[type=="x-ms-runtime"] => issue(type="kid-json", value=JmesPath(c.value, "keys[0].kid"));
	c:[type=="x-ms-runtime", valueType=="Json"] => issue(type="runtime", value=c.value);
};`,
			claims:    []Claim{svc("x-ms-runtime", runtime)},
			permitted: true,
			issued:    []Claim{byPol("kid", "k1"), byPol("kid-json", `"k1"`), byPol("runtime", runtime)},
		},
		{
			name: "JmesPath over JSON text in a literal",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules { => add(type="JmesPathResult", value=JmesPath("{\"foo\": \"bar\"}", "foo")); c:[type=="JmesPathResult"] => issue(claim=c); };`,
			permitted: true,
			issued:    []Claim{byPol("JmesPathResult", `"bar"`)},
		},
		{
			name: "JsonToClaimValue of an array issues one claim per distinct element; null issues none",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules {
	=> issue(type="n", value=JsonToClaimValue("[1, 2, 2, 3]"));
	=> issue(type="s", value=JsonToClaimValue("[\"a\", true]"));
	=> issue(type="none", value=JsonToClaimValue("null"));
	=> issue(type="empty", value=JsonToClaimValue("[]"));
};`,
			permitted: true,
			issued:    []Claim{byPol("n", int64(1)), byPol("n", int64(2)), byPol("n", int64(3)), byPol("s", "a"), byPol("s", true)},
		},
		{
			name: "JsonToClaimValue null satisfies no comparison",
			policy: `version=1.2; authorizationrules {
	[type=="a", value==JsonToClaimValue("null")] => deny();
	[type=="a", value!=JsonToClaimValue("null")] => deny();
	=> permit();
};`,
			claims:    []Claim{svc("a", "x")},
			permitted: true,
		},
		{
			name: "set functions",
			policy: `version=1.2; authorizationrules { => permit(); };
issuancerules {
	=> issue(type="subset", value=IsSubsetOf(JsonToClaimValue("[1,2]"), JsonToClaimValue("[3,2,1]")));
	=> issue(type="notSubset", value=IsSubsetOf(JsonToClaimValue("[1,4]"), JsonToClaimValue("[3,2,1]")));
	=> issue(type="emptySubset", value=IsSubsetOf(JsonToClaimValue("[]"), JsonToClaimValue("[1]")));
	=> issue(type="only", value=ContainsOnlyValue(JsonToClaimValue("[\"x\",\"x\"]"), "x"));
	=> issue(type="notOnly", value=ContainsOnlyValue(JsonToClaimValue("[\"x\",\"y\"]"), "x"));
	=> issue(type="emptyOnly", value=ContainsOnlyValue(JsonToClaimValue("[]"), "x"));
	=> issue(type="typedOnly", value=ContainsOnlyValue(JsonToClaimValue("[1]"), "1"));
	=> issue(type="append", value=AppendString("ab", "cd"));
	=> issue(type="negate", value=NegateBool(false));
};`,
			permitted: true,
			issued: []Claim{
				byPol("subset", true), byPol("notSubset", false), byPol("emptySubset", true),
				byPol("only", true), byPol("notOnly", false), byPol("emptyOnly", false), byPol("typedOnly", false),
				byPol("append", "abcd"), byPol("negate", true),
			},
		},
		{
			name: "functions in conditions and JSON array claims as sets",
			policy: `version=1.2; authorizationrules {
	c:[type=="key_ops"] && [type=="dbg", value==NegateBool(true)] && [type=="name", value==AppendString("k", "1")] && [type=="name", value!=AppendString(c.type, "")] => add(type="ok", value=IsSubsetOf(c.value, JsonToClaimValue("[\"encrypt\",\"decrypt\"]")));
	[type=="ok", value==true] => permit();
};`,
			claims:    []Claim{svc("key_ops", []any{"encrypt"}), svc("dbg", false), svc("name", "k1")},
			permitted: true,
		},
		{
			name:      "TPM 1.2 secure-boot sample, secure boot on",
			policy:    sampleTPM12SecureBoot,
			claims:    []Claim{svc("events", eventsJSON)},
			permitted: true,
			issued:    []Claim{byPol("secureBootEnabled", true)},
		},
		{
			name:      "TPM 1.2 secure-boot sample, events as a JSON value",
			policy:    sampleTPM12SecureBoot,
			claims:    []Claim{svc("events", eventsValue)},
			permitted: true,
			issued:    []Claim{byPol("secureBootEnabled", true)},
		},
		{
			name:      "TPM 1.2 secure-boot sample, secure boot off",
			policy:    sampleTPM12SecureBoot,
			claims:    []Claim{svc("events", secureBootOff)},
			permitted: true,
			issued:    []Claim{byPol("secureBootEnabled", false)},
		},
		{
			name:      "TPM 1.2 secure-boot sample, events from the client are ignored",
			policy:    sampleTPM12SecureBoot,
			claims:    []Claim{{Type: "events", Value: eventsJSON, Issuer: IssuerCustom}},
			permitted: true,
			issued:    []Claim{byPol("secureBootEnabled", false)},
		},
		{
			name:      "PCR golden-value rule matches",
			policy:    samplePCRRule,
			claims:    []Claim{svc("pcrs", `{"PCRs":[{"Index":0,"Digests":{"SHA1":"KCk6Ow"}},{"Index":1,"Digests":{"SHA1":"AAAA"}}]}`), byPol("pcrMatchesExpectedValue", true)},
			permitted: true,
			issued:    []Claim{byPol("pcrMatchesExpectedValue", true)},
		},
		{
			name:      "PCR golden-value rule, digest differs",
			policy:    samplePCRRule,
			claims:    []Claim{svc("pcrs", `{"PCRs":[{"Index":0,"Digests":{"SHA1":"ZZZZ"}}]}`), byPol("pcrMatchesExpectedValue", true)},
			permitted: true,
		},
		{
			name:      "keywords are case-insensitive",
			policy:    `VERSION=1.0; AuthorizationRules { [Type=="a", VALUE==TRUE] => Permit(); };`,
			claims:    []Claim{svc("a", true)},
			permitted: true,
		},
		{
			name:      "comments",
			policy:    "version=1.0; // trailing\n/* block\n comment */ authorizationrules { /* inline */ => permit(); // done\n};",
			permitted: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.policy)
			res, err := p.Evaluate(tc.claims)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if res.Permitted != tc.permitted {
				t.Errorf("Permitted = %v, want %v (reason %q)", res.Permitted, tc.permitted, res.Reason)
			}
			if !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", res.Reason, tc.reason)
			}
			if !tc.permitted && res.Reason == "" {
				t.Error("deny without a Reason")
			}
			if !reflect.DeepEqual(res.Issued, tc.issued) {
				t.Errorf("Issued =\n%s\nwant\n%s", fmtClaims(res.Issued), fmtClaims(tc.issued))
			}
			if !reflect.DeepEqual(res.Properties, tc.props) {
				t.Errorf("Properties =\n%s\nwant\n%s", fmtClaims(res.Properties), fmtClaims(tc.props))
			}
		})
	}
}

func fmtClaims(cs []Claim) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s = %#v (%s)\n", c.Type, c.Value, c.Issuer)
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return b.String()
}

func TestEvaluateErrors(t *testing.T) {
	many := make([]Claim, 30)
	for i := range many {
		many[i] = svc("x", i)
	}
	tooMany := make([]Claim, maxClaims+1)
	for i := range tooMany {
		tooMany[i] = svc("x", i)
	}
	bigArray := make([]int, maxClaims+1)
	for i := range bigArray {
		bigArray[i] = i
	}
	bigJSON, err := json.Marshal(bigArray)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", maxStringBytes/2+1)

	tests := []struct {
		name   string
		policy string
		claims []Claim
		limit  bool   // want a *LimitError
		rule   string // want an *EvalError naming this rule; "" for input errors
		msg    string // substring of the error
	}{
		{
			name:   "combinations exceed the claim bound",
			policy: `version=1.0; authorizationrules { => permit(); }; issuancerules { c1:[type=="x"] && c2:[type=="x"] && c3:[type=="x"] => issue(type="y", value=1); };`,
			claims: many,
			limit:  true,
			rule:   "issuancerules rule 1 (line 1)",
			msg:    "more than 1000 claims",
		},
		{
			name:   "permit search exceeds the step bound",
			policy: `version=1.0; authorizationrules { c1:[type=="x"] && c2:[type=="x"] && c3:[type=="x"] && [type=="never"] => permit(); };`,
			claims: many,
			limit:  true,
			rule:   "authorizationrules rule 1",
			msg:    "more than 10000 evaluation steps",
		},
		{
			name:   "too many incoming claims",
			policy: sampleGenericDeny,
			claims: tooMany,
			limit:  true,
			msg:    "more than 1000 claims in the incoming set",
		},
		{
			name:   "a set expands beyond the claim bound",
			policy: `version=1.2; authorizationrules { => add(type="n", value=JsonToClaimValue("` + string(bigJSON) + `")); => permit(); };`,
			limit:  true,
			rule:   "authorizationrules rule 1",
			msg:    "claims in the incoming set",
		},
		{
			name:   "AppendString result too long",
			policy: `version=1.2; authorizationrules { c:[type=="s"] => add(type="t", value=AppendString(AppendString(c.value, c.value), c.value)); };`,
			claims: []Claim{svc("s", long)},
			limit:  true,
			rule:   "authorizationrules rule 1",
			msg:    "AppendString",
		},
		{
			name:   "NegateBool of a string",
			policy: "version=1.2;\nauthorizationrules {\n => permit(); };\nissuancerules {\n c:[type==\"s\"] => issue(type=\"t\", value=NegateBool(c.value)); };",
			claims: []Claim{svc("s", "true")},
			rule:   "issuancerules rule 1 (line 5)",
			msg:    "NegateBool: argument must be a Boolean, found a string",
		},
		{
			name:   "JsonToClaimValue of an object",
			policy: `version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type="t", value=JsonToClaimValue("{\"a\":1}")); };`,
			rule:   "issuancerules rule 1",
			msg:    "JsonToClaimValue: a JSON object cannot be a claim value",
		},
		{
			name:   "JsonToClaimValue of a fraction",
			policy: `version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type="t", value=JsonToClaimValue("1.5")); };`,
			rule:   "issuancerules rule 1",
			msg:    "not an integer",
		},
		{
			name:   "JmesPath on text that is not JSON",
			policy: `version=1.2; authorizationrules { c:[type=="j"] => add(type="t", value=JmesPath(c.value, "a")); };`,
			claims: []Claim{svc("j", "{not json")},
			rule:   "authorizationrules rule 1",
			msg:    "JmesPath: argument 1 is not valid JSON",
		},
		{
			name:   "JmesPath on an integer claim",
			policy: `version=1.2; authorizationrules { c:[type=="j"] => add(type="t", value=JmesPath(c.value, "a")); };`,
			claims: []Claim{svc("j", 5)},
			rule:   "authorizationrules rule 1",
			msg:    "must be JSON text or a JSON claim value, found an integer",
		},
		{
			name:   "JmesPath function type error inside go-jmespath",
			policy: `version=1.2; authorizationrules { c:[type=="j"] => add(type="t", value=JmesPath(c.value, "length(@)")); };`,
			claims: []Claim{svc("j", "5")},
			rule:   "authorizationrules rule 1",
			msg:    "JmesPath: query failed",
		},
		{
			name:   "IsSubsetOf of a string",
			policy: `version=1.2; authorizationrules { c:[type=="s"] => add(type="t", value=IsSubsetOf(c.value, JsonToClaimValue("[1]"))); };`,
			claims: []Claim{svc("s", "x")},
			rule:   "authorizationrules rule 1",
			msg:    "IsSubsetOf: argument 1 must be a set, found a string",
		},
		{
			name:   "null passed on to another function",
			policy: `version=1.2; authorizationrules { => add(type="t", value=NegateBool(JsonToClaimValue("null"))); };`,
			rule:   "authorizationrules rule 1",
			msg:    "NegateBool: argument 1 has no value",
		},
		{
			name:   "configurationrules fault",
			policy: `version=1.2; configurationrules { => issueproperty(type="p", value=JsonToClaimValue("{")); }; authorizationrules { => permit(); };`,
			rule:   "configurationrules rule 1",
			msg:    "JsonToClaimValue: argument is not valid JSON",
		},
		{
			name:   "claim with an empty type",
			policy: sampleGenericDeny,
			claims: []Claim{{Type: "", Value: 1}},
			msg:    "incoming claim 0 (\"\"): empty claim type",
		},
		{
			name:   "claim with an unknown issuer",
			policy: sampleGenericDeny,
			claims: []Claim{{Type: "a", Value: 1, Issuer: "Me"}},
			msg:    `unknown issuer "Me"`,
		},
		{
			name:   "claim value that is not JSON",
			policy: sampleGenericDeny,
			claims: []Claim{{Type: "a", Value: make(chan int)}},
			msg:    "is not JSON",
		},
		{
			name:   "uint64 beyond int64",
			policy: sampleGenericDeny,
			claims: []Claim{{Type: "a", Value: uint64(1) << 63}},
			msg:    "overflows int64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.policy)
			res, err := p.Evaluate(tc.claims)
			if err == nil {
				t.Fatalf("Evaluate = %+v, want an error", res)
			}
			if res != nil {
				t.Errorf("Evaluate returned a result with the error: %+v", res)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			var le *LimitError
			if errors.As(err, &le) != tc.limit {
				t.Errorf("error %q: LimitError = %v, want %v", err, !tc.limit, tc.limit)
			}
			var ee *EvalError
			switch {
			case tc.rule == "" && errors.As(err, &ee):
				t.Errorf("error %q is an EvalError, want an input error", err)
			case tc.rule != "" && !errors.As(err, &ee):
				t.Errorf("error %q is not an EvalError", err)
			case tc.rule != "" && !strings.HasPrefix(err.Error(), tc.rule):
				t.Errorf("error %q does not start with %q", err, tc.rule)
			}
		})
	}
}

// A Policy is shared by concurrent requests; run with -race to check.
func TestEvaluateConcurrent(t *testing.T) {
	p := mustParse(t, sampleTPM12SecureBoot)
	done := make(chan error)
	for range 4 {
		go func() {
			for range 50 {
				res, err := p.Evaluate([]Claim{svc("events", eventsJSON)})
				if err == nil && (len(res.Issued) != 1 || res.Issued[0].Value != true) {
					err = fmt.Errorf("issued %v", res.Issued)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Evaluate must not modify the caller's claims.
func TestEvaluateDoesNotModifyInput(t *testing.T) {
	p := mustParse(t, sampleSGXDefault)
	in := []Claim{svc("x-ms-sgx-mrsigner", "aa"), {Type: "x", Value: 1}}
	before := append([]Claim(nil), in...)
	if _, err := p.Evaluate(in); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, before) {
		t.Errorf("input changed: %v, was %v", in, before)
	}
}
