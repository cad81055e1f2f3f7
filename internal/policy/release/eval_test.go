package release

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// numbers decodes a claim set as a JWT verifier using json.Number does.
func numbers(s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic("bad test claims: " + err.Error())
	}
	return m
}

// floats decodes a claim set with encoding/json's defaults (float64).
func floats(s string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		panic("bad test claims: " + err.Error())
	}
	return m
}

const (
	weu = "https://sharedweu.weu.attest.azure.net"
	eus = "https://sharedeus.eus.attest.azure.net"
)

// cvmGuestClaims follows the CVM guest attestation token of the SEV-SNP SKR
// how-to: azurevm at the top, the SEV-SNP facts under x-ms-isolation-tee.
const cvmGuestClaims = `{
	"exp": 1700028800, "iat": 1700000000, "nbf": 1700000000,
	"iss": "https://sharedweu.weu.attest.azure.net",
	"jti": "6d7a3f5b2a6b4c1e9f0e8d7c6b5a4938271605f4e3d2c1b0a9f8e7d6c5b4a392",
	"secureboot": true,
	"x-ms-attestation-type": "azurevm",
	"x-ms-azurevm-vmid": "B958DC88-E41D-47F1-8D20-E57B6B7E9825",
	"x-ms-isolation-tee": {
		"x-ms-attestation-type": "sevsnpvm",
		"x-ms-compliance-status": "azure-compliant-cvm",
		"x-ms-runtime": {"keys": [{"kid": "HCLAkPub", "kty": "RSA", "e": "AQAB", "n": "tXkRLAABQ"}],
			"vm-configuration": {"secure-boot": true, "tpm-enabled": true, "vmUniqueId": "B958DC88-E41D-47F1-8D20-E57B6B7E9825"}},
		"x-ms-sevsnpvm-bootloader-svn": 3,
		"x-ms-sevsnpvm-guestsvn": 2,
		"x-ms-sevsnpvm-is-debuggable": false,
		"x-ms-sevsnpvm-launchmeasurement": "04a170f39a3f702472ed0c7ecbda9babfc530e3caac475fdd607ff499177d14c278c5a15ad07ceacd5230ae63d507e9d",
		"x-ms-sevsnpvm-microcode-svn": 115,
		"x-ms-sevsnpvm-snpfw-svn": 8,
		"x-ms-sevsnpvm-tee-svn": 0,
		"x-ms-sevsnpvm-vmpl": 0
	},
	"x-ms-policy-hash": "wm9mHlvTU82e8UqoOy1Yj1FBRSNkfe99-69IYDq9eWs",
	"x-ms-runtime": {"client-payload": {"nonce": "bm9uY2U"},
		"keys": [{"e": "AQAB", "key_ops": ["encrypt"], "kid": "TpmEphemeralEncryptionKey", "kty": "RSA", "n": "kVTLSwAAQ"}]},
	"x-ms-ver": "1.0"
}`

// sgxClaims carries the SGX sample's mrsigner and, since the sample's
// mrenclave is a placeholder no enclave can produce, that placeholder too, so
// that the svn condition decides.
func sgxClaims(svn string) string {
	return `{"x-ms-attestation-type":"sgx",
		"x-ms-sgx-mrsigner":"9fa48b1629bd246a1de3d38fb7df97f6554cd65d6b3b72e85b86848ae6b578ba",
		"x-ms-sgx-mrenclave":"9fa48b1629bg677jfsaawed7772e85b86848ae6b578ba",
		"x-ms-sgx-is-debuggable":false` + svn + `}`
}

func TestEvaluate(t *testing.T) {
	const (
		debuggablePolicy = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-sevsnpvm-is-debuggable","equals":false}]}]}`
		vmplPolicy       = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-isolation-tee.x-ms-sevsnpvm-vmpl","equals":0}]}]}`
		notDebuggable    = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-sevsnpvm-is-debuggable","notEquals":true}]}]}`
		mustExist        = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-sevsnpvm-hostdata","exists":true}]}]}`
		mustNotExist     = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-sevsnpvm-is-debuggable","exists":false}]}]}`
		legacyPolicy     = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-sgx-mrsigner","condition":"equals","value":"abc"}]}]}`
		stringThree      = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"n","equals":"3"}]}]}`
		numberThree      = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"n","equals":3}]}]}`
		bigNumber        = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"n","equals":9007199254740993}]}]}`
		arrayPath        = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x-ms-runtime.keys.0.kid","exists":true}]}]}`
		twoEntries       = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"t","equals":"x"}]},{"authority":"https://a/","allOf":[{"claim":"t","equals":"y"}]}]}`
		svnBounds        = `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"svn","greaterOrEquals":3},{"claim":"svn","lessOrEquals":5},{"claim":"svn","less":5.5}]}]}`
	)
	tests := []struct {
		name    string
		policy  string
		issuer  string
		claims  map[string]any
		allowed bool
		summary string // Explanation.String()
	}{
		// (a): the nested isolation-tee path.
		{"cvm guest token", sampleA, weu, numbers(cvmGuestClaims), true,
			"anyOf[0] (authority " + weu + "): allOf: all 2 conditions met"},
		{"cvm platform token has the claims at the top level", sampleA, weu,
			numbers(`{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"}`), false,
			"anyOf[0] (authority " + weu + `): allOf[0]: claim x-ms-isolation-tee.x-ms-attestation-type equals "sevsnpvm", actual <missing>`},
		{"cvm compliance status missing", sampleA, weu,
			numbers(`{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm"}}`), false,
			"anyOf[0] (authority " + weu + `): allOf[1]: claim x-ms-isolation-tee.x-ms-compliance-status equals "azure-compliant-cvm", actual <missing>`},
		{"cvm path through a non-object", sampleA, weu,
			numbers(`{"x-ms-isolation-tee":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"}`), false,
			"anyOf[0] (authority " + weu + `): allOf[0]: claim x-ms-isolation-tee.x-ms-attestation-type equals "sevsnpvm", actual <missing>`},
		{"cvm tdx instead of snp", sampleA, weu,
			numbers(`{"x-ms-isolation-tee":{"x-ms-attestation-type":"tdxvm","x-ms-compliance-status":"azure-compliant-cvm"}}`), false,
			"anyOf[0] (authority " + weu + `): allOf[0]: claim x-ms-isolation-tee.x-ms-attestation-type equals "sevsnpvm", actual "tdxvm"`},
		{"cvm no claims at all", sampleA, weu, nil, false,
			"anyOf[0] (authority " + weu + `): allOf[0]: claim x-ms-isolation-tee.x-ms-attestation-type equals "sevsnpvm", actual <missing>`},

		// Authorities.
		{"wrong authority", sampleA, eus, numbers(cvmGuestClaims), false,
			`the token's issuer "` + eus + `" is not an authority of this policy`},
		{"issuer has a trailing slash, policy not", sampleA, weu + "/", numbers(cvmGuestClaims), true,
			"anyOf[0] (authority " + weu + "): allOf: all 2 conditions met"},
		{"policy has a trailing slash, issuer not", sampleF, eus,
			numbers(`{"x-ms-attestation-type":"tdxvm","x-ms-compliance-status":"azure-compliant-cvm"}`), true,
			"anyOf[0] (authority " + eus + "/): allOf: all 2 conditions met"},
		{"every trailing slash is trimmed, as oidc.NormalizeIssuer does", sampleF, eus + "//",
			numbers(`{"x-ms-attestation-type":"tdxvm","x-ms-compliance-status":"azure-compliant-cvm"}`), true,
			"anyOf[0] (authority " + eus + "/): allOf: all 2 conditions met"},
		{"authority case matters", sampleA, strings.ToUpper(weu), numbers(cvmGuestClaims), false,
			`the token's issuer "` + strings.ToUpper(weu) + `" is not an authority of this policy`},
		{"second authority entry matches", sampleF, weu,
			numbers(`{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"}`), true,
			"anyOf[1] (authority " + weu + "/): allOf: all 2 conditions met"},
		{"two entries for one authority, second met", twoEntries, "https://a", numbers(`{"t":"y"}`), true,
			`anyOf[1] (authority https://a/): allOf: all 1 conditions met`},
		{"two entries for one authority, none met", twoEntries, "https://a", numbers(`{"t":"z"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim t equals "x", actual "z"`},

		// Nested anyOf inside allOf (f).
		{"nested anyOf, second alternative", sampleF, eus,
			numbers(`{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"}`), true,
			"anyOf[0] (authority " + eus + "/): allOf: all 2 conditions met"},
		{"nested anyOf, no alternative", sampleF, eus,
			numbers(`{"x-ms-attestation-type":"sgx","x-ms-compliance-status":"azure-compliant-cvm"}`), false,
			"anyOf[0] (authority " + eus + `/): allOf[1]: anyOf[0]: claim x-ms-attestation-type equals "tdxvm", actual "sgx"`},

		// (g): the SDK's string "true" against a boolean claim.
		{"sdk test, boolean true", sampleGMock, sdkMockAuthority, numbers(`{"sdk-test":true}`), true,
			"anyOf[0] (authority " + sdkMockAuthority + `): anyOf[0]: claim sdk-test equals "true", actual true (compared as text: a string with a boolean, as Key Vault does; release_policy_strict_types refuses it)`},
		{"sdk test, string true", sampleGMock, sdkMockAuthority, numbers(`{"sdk-test":"true"}`), true,
			"anyOf[0] (authority " + sdkMockAuthority + `): anyOf[0]: claim sdk-test equals "true", actual "true"`},
		{"sdk test, issuer without slash", sampleGMock, strings.TrimSuffix(sdkMockAuthority, "/"), numbers(`{"sdk-test":true}`), true,
			"anyOf[0] (authority " + sdkMockAuthority + `): anyOf[0]: claim sdk-test equals "true", actual true (compared as text: a string with a boolean, as Key Vault does; release_policy_strict_types refuses it)`},
		{"sdk test, boolean false", sampleGMock, sdkMockAuthority, numbers(`{"sdk-test":false}`), false,
			"anyOf[0] (authority " + sdkMockAuthority + `): anyOf[0]: claim sdk-test equals "true", actual false (compared as text: a string with a boolean, as Key Vault does; release_policy_strict_types refuses it)`},
		{"sdk test, capitalised True", sampleGMock, sdkMockAuthority, numbers(`{"sdk-test":"True"}`), false,
			"anyOf[0] (authority " + sdkMockAuthority + `): anyOf[0]: claim sdk-test equals "true", actual "True"`},

		// The brief's example explanation.
		{"debuggable", debuggablePolicy, "https://a",
			numbers(`{"x-ms-attestation-type":"sevsnpvm","x-ms-sevsnpvm-is-debuggable":true}`), false,
			"anyOf[0] (authority https://a): allOf[1]: claim x-ms-sevsnpvm-is-debuggable equals false, actual true"},

		// Numbers: json.Number and float64, exact comparison, coercion.
		{"vmpl json.Number 0", vmplPolicy, "https://a", numbers(cvmGuestClaims), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"vmpl float64 0", vmplPolicy, "https://a", floats(cvmGuestClaims), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"vmpl json.Number 0.0e3", vmplPolicy, "https://a", numbers(`{"x-ms-isolation-tee":{"x-ms-sevsnpvm-vmpl":0.0e3}}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"vmpl json.Number 1", vmplPolicy, "https://a", numbers(`{"x-ms-isolation-tee":{"x-ms-sevsnpvm-vmpl":1}}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-isolation-tee.x-ms-sevsnpvm-vmpl equals 0, actual 1"},
		{"vmpl float64 2", vmplPolicy, "https://a", floats(`{"x-ms-isolation-tee":{"x-ms-sevsnpvm-vmpl":2}}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-isolation-tee.x-ms-sevsnpvm-vmpl equals 0, actual 2"},
		{"vmpl string 0 equals number 0", vmplPolicy, "https://a", numbers(`{"x-ms-isolation-tee":{"x-ms-sevsnpvm-vmpl":"0"}}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"vmpl boolean is not a number", vmplPolicy, "https://a", numbers(`{"x-ms-isolation-tee":{"x-ms-sevsnpvm-vmpl":false}}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-isolation-tee.x-ms-sevsnpvm-vmpl equals 0, actual false (cannot compare a boolean with a number)"},
		{"policy string 3, claim number 3", stringThree, "https://a", numbers(`{"n":3}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"policy string 3, claim float64 3", stringThree, "https://a", floats(`{"n":3}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"policy string 3, claim number 3.0 is 3", stringThree, "https://a", numbers(`{"n":3.0}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"policy number 3, claim string 3.0", numberThree, "https://a", numbers(`{"n":"3.0"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim n equals 3, actual "3.0" (compared as text: a string with a number, as Key Vault does; release_policy_strict_types refuses it)`},
		{"policy number 3, claim string 03", numberThree, "https://a", numbers(`{"n":"03"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim n equals 3, actual "03" (compared as text: a string with a number, as Key Vault does; release_policy_strict_types refuses it)`},
		{"exact big integers", bigNumber, "https://a", numbers(`{"n":9007199254740992}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim n equals 9007199254740993, actual 9007199254740992"},
		{"exact big integers equal", bigNumber, "https://a", numbers(`{"n":9007199254740993}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},

		// greater on the SGX svn (b3).
		{"sgx svn 2 greater 1", sampleB3, "https://sharedeus2.eus2.attest.azure.net", numbers(sgxClaims(`,"x-ms-sgx-svn":2`)), true,
			"anyOf[0] (authority https://sharedeus2.eus2.attest.azure.net): allOf: all 3 conditions met"},
		{"sgx svn float64 1 not greater 1", sampleB3, "https://sharedeus2.eus2.attest.azure.net", floats(sgxClaims(`,"x-ms-sgx-svn":1`)), false,
			"anyOf[0] (authority https://sharedeus2.eus2.attest.azure.net): allOf[2]: claim x-ms-sgx-svn greater 1, actual 1"},
		{"sgx svn 1.5 greater 1", sampleB3, "https://sharedeus2.eus2.attest.azure.net", floats(sgxClaims(`,"x-ms-sgx-svn":1.5`)), true,
			"anyOf[0] (authority https://sharedeus2.eus2.attest.azure.net): allOf: all 3 conditions met"},
		{"sgx svn string is not a number", sampleB3, "https://sharedeus2.eus2.attest.azure.net", numbers(sgxClaims(`,"x-ms-sgx-svn":"5"`)), false,
			`anyOf[0] (authority https://sharedeus2.eus2.attest.azure.net): allOf[2]: claim x-ms-sgx-svn greater 1, actual "5" (not a number)`},
		{"sgx svn missing", sampleB3, "https://sharedeus2.eus2.attest.azure.net", numbers(sgxClaims(``)), false,
			"anyOf[0] (authority https://sharedeus2.eus2.attest.azure.net): allOf[2]: claim x-ms-sgx-svn greater 1, actual <missing>"},
		{"svn bounds met", svnBounds, "https://a", numbers(`{"svn":5}`), true,
			"anyOf[0] (authority https://a): allOf: all 3 conditions met"},
		{"svn below greaterOrEquals", svnBounds, "https://a", numbers(`{"svn":2}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim svn greaterOrEquals 3, actual 2"},
		{"svn above lessOrEquals", svnBounds, "https://a", numbers(`{"svn":5.25}`), false,
			"anyOf[0] (authority https://a): allOf[1]: claim svn lessOrEquals 5, actual 5.25"},
		{"svn negative", svnBounds, "https://a", numbers(`{"svn":-4}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim svn greaterOrEquals 3, actual -4"},

		// notEquals: met only when present, comparable and different.
		{"notEquals met", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":false}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"notEquals not met", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":true}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual true"},
		{"notEquals string coerced", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":"true"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual "true" (compared as text: a string with a boolean, as Key Vault does; release_policy_strict_types refuses it)`},
		{"notEquals missing", notDebuggable, "https://a", numbers(`{}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual <missing>"},
		{"notEquals incomparable number", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":0}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual 0 (cannot compare a number with a boolean)"},
		{"notEquals incomparable object", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":{}}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual <object with 0 members> (an object is comparable with nothing)"},
		{"notEquals null", notDebuggable, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":null}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable notEquals true, actual null (null is comparable with nothing)"},

		// exists.
		{"exists true, present", mustExist, "https://a", numbers(`{"x-ms-sevsnpvm-hostdata":"00"}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"exists true, null is present", mustExist, "https://a", numbers(`{"x-ms-sevsnpvm-hostdata":null}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"exists true, missing", mustExist, "https://a", numbers(`{}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-hostdata exists true, actual <missing>"},
		{"exists false, missing", mustNotExist, "https://a", numbers(`{}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"exists false, present", mustNotExist, "https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":true}`), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-sevsnpvm-is-debuggable exists false, actual true"},
		{"no array indexing", arrayPath, "https://a", numbers(cvmGuestClaims), false,
			"anyOf[0] (authority https://a): allOf[0]: claim x-ms-runtime.keys.0.kid exists true, actual <missing>"},

		// Legacy condition/value form.
		{"legacy met", legacyPolicy, "https://a", numbers(`{"x-ms-sgx-mrsigner":"abc"}`), true,
			"anyOf[0] (authority https://a): allOf: all 1 conditions met"},
		{"legacy not met", legacyPolicy, "https://a", numbers(`{"x-ms-sgx-mrsigner":"xyz"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim x-ms-sgx-mrsigner equals "abc", actual "xyz"`},
		{"legacy is case-sensitive", legacyPolicy, "https://a", numbers(`{"x-ms-sgx-mrsigner":"ABC"}`), false,
			`anyOf[0] (authority https://a): allOf[0]: claim x-ms-sgx-mrsigner equals "abc", actual "ABC"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.policy))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			d := p.Evaluate(tt.issuer, tt.claims)
			if d.Allowed != tt.allowed {
				t.Errorf("Allowed = %v, want %v (%s)", d.Allowed, tt.allowed, d)
			}
			if d.Explanation == nil {
				t.Fatal("no explanation")
			}
			if d.Explanation.Met != d.Allowed {
				t.Errorf("root Met = %v, Allowed = %v", d.Explanation.Met, d.Allowed)
			}
			if got := d.Explanation.String(); got != tt.summary {
				t.Errorf("String() =\n  %s\nwant\n  %s", got, tt.summary)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("decision does not marshal: %v", err)
			}
		})
	}
}

// TestEvaluateIntegerClaims covers claims built in Go rather than decoded.
func TestEvaluateIntegerClaims(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[{"authority":"https://a","allOf":[{"claim":"svn","greater":1}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{2, int64(2), int32(2), uint(2), uint32(2), uint64(2), float32(2)} {
		if d := p.Evaluate("https://a", map[string]any{"svn": v}); !d.Allowed {
			t.Errorf("svn %T(2) greater 1: denied: %s", v, d)
		}
	}
	for _, v := range []any{1, int64(-5), uint64(0), json.Number("1e0"), json.Number("junk"), struct{}{}} {
		if d := p.Evaluate("https://a", map[string]any{"svn": v}); d.Allowed {
			t.Errorf("svn %T(%v) greater 1: allowed: %s", v, v, d)
		}
	}
}

// TestExplanationIsComplete checks that evaluation does not short-circuit:
// after a failing condition the later ones are still judged.
func TestExplanationIsComplete(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[
		{"authority":"https://other","allOf":[{"claim":"a","exists":true}]},
		{"authority":"https://a","allOf":[{"claim":"a","equals":"x"},{"claim":"b","equals":"y"},{"anyOf":[{"claim":"c","equals":1},{"claim":"c","equals":2}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Evaluate("https://a", numbers(`{"a":"no","b":"y","c":2}`))
	if d.Allowed {
		t.Fatalf("allowed: %s", d)
	}
	root := d.Explanation
	if len(root.Children) != 2 {
		t.Fatalf("root has %d children, want 2", len(root.Children))
	}
	skipped := root.Children[0]
	if !skipped.Skipped || skipped.Met || skipped.Children != nil || skipped.Authority != "https://other" {
		t.Errorf("first authority entry = %+v, want skipped without children", skipped)
	}
	auth := root.Children[1]
	if auth.Kind != KindAuthority || auth.Skipped || len(auth.Children) != 1 {
		t.Fatalf("second authority entry = %+v", auth)
	}
	all := auth.Children[0]
	if all.Kind != KindAllOf || len(all.Children) != 3 {
		t.Fatalf("authority group = %+v", all)
	}
	want := []struct {
		met            bool
		claim, actual  string
		expected, kind string
	}{
		{false, "a", `"no"`, `"x"`, KindClaim},
		{true, "b", `"y"`, `"y"`, KindClaim},
		{true, "", "", "", KindAnyOf},
	}
	for i, w := range want {
		c := all.Children[i]
		if c.Met != w.met || c.Claim != w.claim || c.Actual != w.actual || c.Expected != w.expected || c.Kind != w.kind {
			t.Errorf("child %d = %+v, want %+v", i, c, w)
		}
	}
	if nested := all.Children[2]; len(nested.Children) != 2 || nested.Children[0].Met || !nested.Children[1].Met {
		t.Errorf("nested anyOf children not all judged: %+v", nested.Children)
	}
	if got, want := d.String(), `denied: anyOf[1] (authority https://a): allOf[0]: claim a equals "x", actual "no"`; got != want {
		t.Errorf("Decision.String() = %q, want %q", got, want)
	}
}

func TestExplanationJSON(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[{"authority":"https://other","allOf":[{"claim":"a","exists":true}]},` +
		`{"authority":"https://a","allOf":[{"claim":"x-ms-sevsnpvm-is-debuggable","equals":false}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Evaluate("https://a", numbers(`{"x-ms-sevsnpvm-is-debuggable":true}`))
	got, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"allowed":false,"explanation":{"kind":"anyOf","met":false,"children":[` +
		`{"kind":"authority","authority":"https://other","met":false,"skipped":true,"note":"not the token's issuer"},` +
		`{"kind":"authority","authority":"https://a","met":false,"children":[` +
		`{"kind":"allOf","met":false,"children":[` +
		`{"kind":"claim","claim":"x-ms-sevsnpvm-is-debuggable","operator":"equals","expected":"false","actual":"true","met":false}]}]}]}}`
	if string(got) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
	var back Decision
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.String() != d.String() {
		t.Errorf("round trip changed the summary: %q, want %q", back.String(), d.String())
	}
}

func TestExplanationBoundsValues(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[{"authority":"https://a","allOf":[{"claim":"s","equals":"x"},{"claim":"o","equals":"x"},{"claim":"l","equals":"x"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 500) // 1000 bytes
	d := p.Evaluate("https://a", map[string]any{
		"s": long,
		"o": map[string]any{"big": long, "more": long},
		"l": []any{long, long, long},
	})
	kids := d.Explanation.Children[0].Children[0].Children
	if a := kids[0].Actual; len(a) > maxRendered+8 || !strings.HasSuffix(a, "…") || !strings.HasPrefix(a, `"éé`) {
		t.Errorf("long string rendered as %d bytes: %q", len(a), a)
	}
	if a := kids[1].Actual; a != "<object with 2 members>" {
		t.Errorf("object rendered as %q", a)
	}
	if a := kids[2].Actual; a != "<array of 3 elements>" {
		t.Errorf("array rendered as %q", a)
	}
	// Strings are written as JSON, without HTML escaping.
	d = p.Evaluate("https://a", map[string]any{"s": `<a & "b">`})
	if a := d.Explanation.Children[0].Children[0].Children[0].Actual; a != `"<a & \"b\">"` {
		t.Errorf("string rendered as %s", a)
	}
}

func TestEvaluateZeroPolicy(t *testing.T) {
	var p *Policy
	if d := p.Evaluate("https://a", nil); d.Allowed || d.Explanation == nil {
		t.Errorf("nil policy: %+v", d)
	}
	if d := (&Policy{}).Evaluate("https://a", nil); d.Allowed || !strings.Contains(d.String(), "no release policy") {
		t.Errorf("zero policy: %s", d)
	}
}

// TestEvaluateConcurrent runs one policy from many goroutines; with -race it
// checks that evaluation does not write to the policy.
func TestEvaluateConcurrent(t *testing.T) {
	p, err := Parse([]byte(sampleF))
	if err != nil {
		t.Fatal(err)
	}
	claims := numbers(`{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"}`)
	want, _ := json.Marshal(p.Evaluate(eus, claims))
	done := make(chan []byte)
	for range 8 {
		go func() {
			b, _ := json.Marshal(p.Evaluate(eus, claims))
			done <- b
		}()
	}
	for range 8 {
		if got := <-done; !bytes.Equal(got, want) {
			t.Errorf("concurrent evaluation differs:\n%s\n%s", got, want)
		}
	}
}

// TestStrictTypes: by default a string operand matches a boolean or number
// claim by its text, and the decision names the coercion; with StrictTypes
// it does not match, and the explanation says why.
func TestStrictTypes(t *testing.T) {
	p, err := Parse([]byte(`{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[
		{"claim":"flag","equals":"true"},{"claim":"svn","equals":"3"},{"claim":"name","equals":"x"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"flag": true, "svn": json.Number("3"), "name": "x"}
	d := p.Evaluate("https://a", claims)
	if !d.Allowed || len(d.Coerced) != 2 || !strings.Contains(d.Coerced[0], `claim flag equals "true", actual true`) {
		t.Fatalf("lenient: allowed %v, coerced %q", d.Allowed, d.Coerced)
	}
	if !strings.Contains(d.Explanation.Children[0].Children[0].Children[0].Note, "compared as text: a string with a boolean") {
		t.Errorf("the explanation does not show the coercion: %+v", d.Explanation.Children[0].Children[0].Children[0])
	}
	d = p.EvaluateOptions("https://a", claims, Options{StrictTypes: true})
	if d.Allowed || len(d.Coerced) != 0 {
		t.Fatalf("strict: allowed %v, coerced %q", d.Allowed, d.Coerced)
	}
	if s := d.Explanation.String(); !strings.Contains(s, "release_policy_strict_types: a boolean is not compared with a string") {
		t.Errorf("strict explanation: %s", s)
	}
	// Same-type comparisons are unchanged by strictness.
	q, _ := Parse([]byte(`{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"flag","equals":true},{"claim":"svn","greaterOrEquals":2}]}]}`))
	if d := q.EvaluateOptions("https://a", claims, Options{StrictTypes: true}); !d.Allowed || len(d.Coerced) != 0 {
		t.Errorf("strict same-type: %v", d)
	}
}
